//! The receiving side: the kit's `siem-sim` with the answers typed as a run reads them, and
//! the raw POST rate (L2) of pre-built request bodies at the pipeline's batch size and
//! concurrency.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use els_model::hec::{write_envelope, HecOptions};
use els_model::privacy::write_outbound;
use els_model::topic::TopicEvent;
use els_model::ExecutionEvent;
use els_testkit::sim::Stored;
use els_testkit::{built_bin_or_path, SimProc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::workload::Endpoint;

pub use els_testkit::sim::HEC_TOKEN;

/// A second token of the benchmark's siem-sim, with indexer acknowledgement on.
pub const HEC_ACK_TOKEN: &str = "els-bench-ack-token-0001";
/// The consumer's default batch limits (`ELS_BATCH_MAX_EVENTS`, `ELS_BATCH_MAX_BYTES`).
pub const BATCH_MAX_EVENTS: usize = 500;
pub const BATCH_MAX_BYTES: usize = 1024 * 1024;

/// `GET /sim/stats`, the fields we use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub events: u64,
    pub distinct_event_ids: u64,
    #[serde(default)]
    pub first_received_at: Option<String>,
    #[serde(default)]
    pub last_received_at: Option<String>,
    pub duplicates: u64,
}

/// One stored record of `GET /sim/events`.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub received_at: String,
    pub body: Value,
}

impl Record {
    pub fn received(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.received_at)
    }

    /// The event's own `timestamp` (HEC envelope `event.timestamp`, or a generic body's).
    pub fn event_time(&self) -> Option<DateTime<Utc>> {
        let event = self.body.get("event").unwrap_or(&self.body);
        event
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(parse_time)
    }
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Stored for Record {
    fn seq(&self) -> Option<u64> {
        Some(self.seq)
    }
}

/// The benchmark's siem-sim: the kit's [`SimProc`] (its `url`, `proc` and query API, reached
/// through `Deref`) with typed answers, and the waits and timings of a run.
pub struct Sim(SimProc);

impl Deref for Sim {
    type Target = SimProc;

    fn deref(&self) -> &SimProc {
        &self.0
    }
}

impl Sim {
    /// Start siem-sim keeping up to `max_stored` full records (for latencies).
    pub fn start(dir: &Path, max_stored: usize) -> Result<Self> {
        let max_stored = max_stored.to_string();
        Ok(Self(SimProc::start(
            &built_bin_or_path("siem-sim"),
            dir,
            "siem-sim",
            &["--max-stored", &max_stored, "--ack-token", HEC_ACK_TOKEN],
            &[("RUST_LOG", "warn")],
        )?))
    }

    pub fn endpoint_url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.url, endpoint.path())
    }

    /// `GET /sim/stats`, the fields the benchmark reads.
    pub async fn counts(&self) -> Result<Stats> {
        Ok(self.stats_as().await?)
    }

    /// Every stored record, paging through `/sim/events`.
    pub async fn all_records(&self) -> Result<Vec<Record>> {
        Ok(self.records_as().await?)
    }

    /// Arrival times of the first stored record and of the last one received.
    pub async fn first_and_last(&self) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        // From the counters, not the stored records: siem-sim keeps a bounded number of
        // records, so with a large run the oldest one is not the first arrival.
        let stats = self.counts().await?;
        let parse = |t: &Option<String>| t.as_deref().and_then(parse_time);
        match (
            parse(&stats.first_received_at),
            parse(&stats.last_received_at),
        ) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(BenchError::step("siem-sim received nothing to time")),
        }
    }

    /// Poll until `expect` distinct event ids arrived; `check` runs between polls (e.g. to
    /// notice a crashed consumer).
    pub async fn wait_distinct(
        &self,
        expect: u64,
        timeout: Duration,
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<Stats> {
        let start = Instant::now();
        loop {
            let stats = self.counts().await?;
            if stats.distinct_event_ids >= expect {
                return Ok(stats);
            }
            check()?;
            if start.elapsed() > timeout {
                return Err(BenchError::timeout(
                    format!(
                        "{expect} events at siem-sim (have {})",
                        stats.distinct_event_ids
                    ),
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Request bodies as the consumer would build them for `events`: per org, batches of up to
/// [`BATCH_MAX_EVENTS`] events or [`BATCH_MAX_BYTES`] of payload (HEC envelopes, default
/// HEC options, no custom fields), or one outbound event per body (generic). Returns
/// `(body, events in it)`.
pub fn build_bodies(events: &[ExecutionEvent], endpoint: Endpoint) -> Vec<(Vec<u8>, usize)> {
    let events: Vec<TopicEvent> = events
        .iter()
        .filter_map(|e| TopicEvent::from_event(e).ok())
        .collect();
    if endpoint == Endpoint::Generic {
        return events
            .iter()
            .map(|e| {
                let mut out = Vec::with_capacity(e.len());
                write_outbound(&mut out, e, &[]);
                (out, 1)
            })
            .collect();
    }
    let mut by_org: BTreeMap<&str, Vec<&TopicEvent>> = BTreeMap::new();
    for e in &events {
        by_org.entry(e.org_id()).or_default().push(e);
    }
    if endpoint == Endpoint::Ndjson {
        // Per org, NDJSON bodies of up to 500 events (the bench stream's `http.max_events`).
        let mut bodies = Vec::new();
        for org_events in by_org.values() {
            for chunk in org_events.chunks(500) {
                let mut body = Vec::new();
                for e in chunk {
                    write_outbound(&mut body, e, &[]);
                    body.push(b'\n');
                }
                bodies.push((body, chunk.len()));
            }
        }
        return bodies;
    }
    let opts = HecOptions::default();
    let mut bodies = Vec::new();
    for org_events in by_org.values() {
        let mut body = Vec::new();
        let (mut n, mut bytes) = (0usize, 0usize);
        for e in org_events {
            write_envelope(&mut body, e, &opts, |o| write_outbound(o, e, &[]));
            n += 1;
            bytes += e.len();
            if n >= BATCH_MAX_EVENTS || bytes >= BATCH_MAX_BYTES {
                bodies.push((std::mem::take(&mut body), n));
                (n, bytes) = (0, 0);
            }
        }
        if n > 0 {
            bodies.push((body, n));
        }
    }
    bodies
}

/// What a raw POST run (L2) saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPost {
    pub events: u64,
    pub requests: u64,
    pub body_bytes: u64,
    pub seconds: f64,
}

/// L2: POST pre-built `bodies` to `url` with `concurrency` requests in flight, as fast as
/// siem-sim answers. Every answer must be 200.
pub async fn raw_post(
    url: &str,
    endpoint: Endpoint,
    bodies: Arc<Vec<(Vec<u8>, usize)>>,
    concurrency: usize,
    timeout: Duration,
) -> Result<RawPost> {
    let content_type = match endpoint {
        Endpoint::Ndjson => "application/x-ndjson",
        _ => "application/json",
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, bodies, next, url) =
            (client.clone(), bodies.clone(), next.clone(), url.to_owned());
        tasks.spawn(async move {
            let mut done = RawPost::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, n)) = bodies.get(i) else {
                    return Ok(done);
                };
                let response = client
                    .post(&url)
                    .header("authorization", format!("Splunk {HEC_TOKEN}"))
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await?;
                let status = response.status();
                let _ = response.bytes().await?;
                if !status.is_success() {
                    return Err(BenchError::step(format!("siem-sim answered {status}")));
                }
                done.events += *n as u64;
                done.requests += 1;
                done.body_bytes += body.len() as u64;
            }
        });
    }
    let mut total = RawPost::default();
    let joined = tokio::time::timeout(timeout, async {
        while let Some(r) = tasks.join_next().await {
            let r = r.map_err(|e| BenchError::step(format!("L2 task: {e}")))??;
            total.events += r.events;
            total.requests += r.requests;
            total.body_bytes += r.body_bytes;
        }
        Ok::<_, BenchError>(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => return Err(BenchError::timeout("raw POST run", timeout)),
    }
    total.seconds = start.elapsed().as_secs_f64();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{events, Size};

    #[test]
    fn bodies_batch_per_org_and_cap_at_500() {
        let evs = events(2, Size::Small, 1200, 3).unwrap();
        let bodies = build_bodies(&evs, Endpoint::Hec);
        assert_eq!(bodies.iter().map(|b| b.1).sum::<usize>(), 1200);
        assert!(bodies.iter().all(|b| b.1 <= BATCH_MAX_EVENTS));
        // Per org: full batches of 500 and one remainder.
        let mut per_org = BTreeMap::new();
        for e in &evs {
            *per_org.entry(e.org_id.clone()).or_insert(0usize) += 1;
        }
        let expected: usize = per_org.values().map(|n| n.div_ceil(BATCH_MAX_EVENTS)).sum();
        assert_eq!(bodies.len(), expected);
        let text = String::from_utf8(bodies[0].0.clone()).unwrap();
        assert_eq!(text.lines().count(), bodies[0].1);
        assert!(!text.contains("\"org_id\""));
        let generic = build_bodies(&evs[..3], Endpoint::Generic);
        assert_eq!(generic.len(), 3);
    }

    #[test]
    fn record_times() {
        let r = Record {
            seq: 1,
            received_at: "2026-01-01T00:00:01.250Z".into(),
            body: serde_json::json!({"event": {"timestamp": "2026-01-01T00:00:01.000Z"}}),
        };
        let ms = (r.received().unwrap() - r.event_time().unwrap()).num_milliseconds();
        assert_eq!(ms, 250);
    }
}
