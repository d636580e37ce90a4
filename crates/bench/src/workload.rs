//! What is measured: the matrix of cases (orgs, event size, endpoint kind, count) and the
//! events themselves.
//!
//! Events come from the producer's demo generator (realistic types, names and child flows)
//! and are then put through [`els_model::ingest::parse_event`], exactly as the ingest API
//! does, so the topic holds what production holds: validated events with hashed emails.
//! The small variant keeps only the base schema fields (the smallest valid event: two UUIDs,
//! a SHA-256 and a timestamp make up most of it); the large one pads `folder_id_path`.

use els_model::event::BASE_FIELDS;
use els_model::ExecutionEvent;
use serde_json::Value;

use crate::error::Result;

/// Payload size class of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Base schema fields only (the smallest valid event), about 420 bytes.
    Small,
    /// A demo event with `folder_id_path` padded to about 2 KiB.
    Large,
}

impl Size {
    pub fn label(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "2 KB",
        }
    }
}

/// Where the pipeline delivers in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Splunk HEC, batched envelopes.
    Hec,
    /// Splunk HEC with a token that has indexer acknowledgement on: a batch is finished
    /// when `/services/collector/ack` confirms it (the consumer polls every
    /// [`ACK_POLL_MS`]); the drain ends when every event is acked.
    HecAck,
    /// The generic HTTP endpoint: one event per request.
    Generic,
    /// A generic HTTP stream batched as NDJSON (`http.format: ndjson`, 500 events a request).
    Ndjson,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Hec => "HEC",
            Endpoint::HecAck => "HEC, indexer acks (poll 1 s)",
            Endpoint::Generic => "generic",
            Endpoint::Ndjson => "generic, NDJSON batches",
        }
    }

    /// siem-sim's path for this endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Hec | Endpoint::HecAck => "/services/collector/event",
            Endpoint::Generic => "/generic",
            Endpoint::Ndjson => "/http/ndjson",
        }
    }
}

/// One row of the drain matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Short name used in tables and topic names.
    pub name: String,
    pub orgs: usize,
    pub size: Size,
    pub endpoint: Endpoint,
    /// Events preloaded and drained.
    pub events: usize,
}

impl Case {
    pub fn label(&self) -> String {
        format!(
            "{} org{}, {}, {}",
            group_digits(self.orgs as u64),
            if self.orgs == 1 { "" } else { "s" },
            self.size.label(),
            self.endpoint.label()
        )
    }
}

/// Events per org of the 10,000-org case in a full run (issue 19: 10,000 × 50 = 500,000), so
/// its batches can grow past a handful of events and the per-event cost is comparable with
/// the 1-org case.
pub const ORG10K_EVENTS_PER_ORG: usize = 50;

/// The cases of a run. The first is the main case of the targets (HEC, small events);
/// `events` is the main case's count, side cases use fewer to keep the run short. With
/// `full` (not `--quick`) the 10,000-org case has [`ORG10K_EVENTS_PER_ORG`] events per org;
/// otherwise half the main case's count like the other side cases.
pub fn matrix(events: usize, full: bool) -> Vec<Case> {
    let side = (events / 2).max(1000);
    let org10k = if full {
        10_000 * ORG10K_EVENTS_PER_ORG
    } else {
        side
    };
    let case = |name: &str, orgs, size, endpoint, events| Case {
        name: name.into(),
        orgs,
        size,
        endpoint,
        events,
    };
    vec![
        case("main", 100, Size::Small, Endpoint::Hec, events),
        case("main-ack", 100, Size::Small, Endpoint::HecAck, events),
        case("org1", 1, Size::Small, Endpoint::Hec, side),
        case("org10k", 10_000, Size::Small, Endpoint::Hec, org10k),
        case(
            "large",
            100,
            Size::Large,
            Endpoint::Hec,
            (events / 4).max(1000),
        ),
        case(
            "generic",
            100,
            Size::Small,
            Endpoint::Generic,
            (events / 10).max(1000),
        ),
        case("ndjson", 100, Size::Small, Endpoint::Ndjson, side),
    ]
}

/// The consumer's ack poll interval in the [`Endpoint::HecAck`] case (the default, 10 s,
/// would be most of a drain of a few seconds).
pub const ACK_POLL_MS: u64 = 1000;

/// Payload target of [`Size::Large`].
pub const LARGE_BYTES: usize = 2048;

/// `count` validated events over `orgs` orgs (seeded, so runs are comparable).
pub fn events(orgs: usize, size: Size, count: usize, seed: u64) -> Result<Vec<ExecutionEvent>> {
    els_producer::generate::demo_events(orgs, count, seed)
        .into_iter()
        .map(|raw| {
            let raw = shape(raw, size);
            let event = els_model::ingest::parse_event(raw)?;
            Ok(match size {
                Size::Small => event,
                Size::Large => pad(event, LARGE_BYTES),
            })
        })
        .collect()
}

fn shape(mut raw: Value, size: Size) -> Value {
    if size == Size::Small {
        if let Some(obj) = raw.as_object_mut() {
            obj.retain(|k, _| BASE_FIELDS.contains(&k.as_str()));
        }
    }
    raw
}

/// Pad `folder_id_path` so the serialised event is about `target` bytes.
fn pad(mut event: ExecutionEvent, target: usize) -> ExecutionEvent {
    let len = payload(&event).len();
    if len < target {
        let segment = "/fld0123456789";
        let path: String = segment.repeat((target - len) / segment.len() + 1);
        // The key and quotes of a new field take 20 bytes; trim to land near the target.
        let keep = (target - len).saturating_sub(20).min(path.len());
        event.folder_id_path = Some(path[..keep].to_string());
    }
    event
}

/// The Kafka payload of an event: its JSON, as the producer writes it.
pub fn payload(event: &ExecutionEvent) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

/// `12345678` -> `12,345,678`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_land_near_their_targets() {
        let small = events(10, Size::Small, 50, 1).unwrap();
        let mean = small.iter().map(|e| payload(e).len()).sum::<usize>() / small.len();
        assert!((380..460).contains(&mean), "small mean {mean}");
        assert!(small.iter().all(|e| e.user_email.len() == 64));
        let large = events(10, Size::Large, 50, 1).unwrap();
        for e in &large {
            let len = payload(e).len();
            assert!((LARGE_BYTES - 40..LARGE_BYTES + 40).contains(&len), "{len}");
        }
    }

    #[test]
    fn orgs_spread() {
        let evs = events(100, Size::Small, 2000, 7).unwrap();
        let orgs: std::collections::HashSet<_> = evs.iter().map(|e| &e.org_id).collect();
        assert!(orgs.len() > 90, "{}", orgs.len());
    }

    #[test]
    fn org10k_has_50_events_per_org_in_a_full_run() {
        let org10k = |full| {
            matrix(200_000, full)
                .into_iter()
                .find(|c| c.name == "org10k")
                .unwrap()
        };
        assert_eq!(org10k(true).events, 500_000);
        assert_eq!(org10k(true).orgs, 10_000);
        assert_eq!(org10k(false).events, 100_000);
        assert_eq!(matrix(20_000, false)[0].events, 20_000);
    }

    #[test]
    fn digits_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(200_000), "200,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}
