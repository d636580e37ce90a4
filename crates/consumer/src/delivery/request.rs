//! Request bodies for a stream's SIEM: one envelope per event for HEC batches, one event in
//! the stream's body template for `http` streams of format `single`, or batches of such
//! events as NDJSON, a JSON array, Datadog log entries or Elasticsearch `_bulk` items. The outbound event (hashed email, custom
//! fields) is written straight into the body, with no intermediate JSON value.

use els_model::hec::write_envelope;
use els_model::privacy::write_outbound;
use els_model::topic::TopicEvent;

use els_model::settings::{EndpointKind, HttpFormat, DATADOG_MAX_BYTES, DATADOG_MAX_EVENTS};

use super::elastic;
use crate::settings::OrgRuntime;

/// Write the value sent for `event` under `runtime`'s settings: the outbound event (hashed
/// email, custom fields; see [`write_outbound`]) inside the org's body template, straight
/// into `out`.
pub fn write_event(out: &mut Vec<u8>, event: &TopicEvent, runtime: &OrgRuntime) {
    let write = |o: &mut Vec<u8>| write_outbound(o, event, &runtime.settings.custom_fields);
    match &runtime.template {
        Some(t) => t.write(out, write),
        None => write(out),
    }
}

/// The body of a one-event request to a generic endpoint.
pub fn event_body(event: &TopicEvent, runtime: &OrgRuntime) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_event(&mut out, event, runtime);
    out
}

/// Room for one HEC envelope beyond the event's own bytes.
const ENVELOPE_BYTES: usize = 320;

/// The HEC body for a batch: one envelope per event. The buffer is sized from the events'
/// text, so it is allocated once.
pub fn hec_body<'a>(
    events: impl Iterator<Item = &'a TopicEvent> + Clone,
    runtime: &OrgRuntime,
) -> Vec<u8> {
    let capacity = events.clone().map(|e| e.len() + ENVELOPE_BYTES).sum();
    let mut out = Vec::with_capacity(capacity);
    for event in events {
        write_envelope(&mut out, event, &runtime.settings.hec, |o| {
            write_event(o, event, runtime)
        });
    }
    out
}

/// The body of a batch for a batched format: NDJSON lines or a JSON array for `http`
/// streams, an array of log entries for `datadog`, `_bulk` action and source lines for
/// `elasticsearch`. (HEC batches are [`hec_body`]; `http` streams of format `single` send
/// [`event_body`] per event.)
pub fn batch_body<'a>(
    events: impl Iterator<Item = &'a TopicEvent> + Clone,
    runtime: &OrgRuntime,
) -> Vec<u8> {
    let settings = &runtime.settings;
    let capacity = events.clone().map(|e| e.len() + BATCH_ITEM_BYTES).sum();
    let mut out = Vec::with_capacity(capacity);
    match settings.endpoint {
        EndpointKind::Elasticsearch => {
            if let Some(options) = &settings.elasticsearch {
                let mut id = uuid::Uuid::encode_buffer();
                for event in events {
                    let id = event.event_id.hyphenated().encode_lower(&mut id);
                    elastic::write_item(&mut out, options, id, |o| write_event(o, event, runtime));
                }
            }
        }
        EndpointKind::Http if settings.http.format == HttpFormat::Ndjson => {
            for event in events {
                write_event(&mut out, event, runtime);
                out.push(b'\n');
            }
        }
        EndpointKind::Datadog => write_array(&mut out, events, runtime, write_datadog_entry),
        _ => write_array(&mut out, events, runtime, write_event),
    }
    out
}

/// A JSON array of `events`, each written by `write`.
fn write_array<'a>(
    out: &mut Vec<u8>,
    events: impl Iterator<Item = &'a TopicEvent>,
    runtime: &OrgRuntime,
    write: fn(&mut Vec<u8>, &TopicEvent, &OrgRuntime),
) {
    out.push(b'[');
    for (i, event) in events.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, event, runtime);
    }
    out.push(b']');
}

/// Room for one event's framing in a batched body beyond its own bytes (an action line,
/// Datadog's attributes, separators).
const BATCH_ITEM_BYTES: usize = 160;

/// One Datadog log entry: Datadog's reserved attributes (`ddsource`, `service`, `ddtags`),
/// then the outbound event's own fields as attributes; an event rendered (through the body
/// template) as something other than a JSON object goes in `message`.
fn write_datadog_entry(out: &mut Vec<u8>, event: &TopicEvent, runtime: &OrgRuntime) {
    let dd = &runtime.settings.datadog;
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    out.extend_from_slice(b"{\"ddsource\":");
    out.extend_from_slice(quote(&dd.ddsource).as_bytes());
    out.extend_from_slice(b",\"service\":");
    out.extend_from_slice(quote(&dd.service).as_bytes());
    if let Some(tags) = &dd.ddtags {
        out.extend_from_slice(b",\"ddtags\":");
        out.extend_from_slice(quote(tags).as_bytes());
    }
    let mut rendered = Vec::with_capacity(event.len() + 64);
    write_event(&mut rendered, event, runtime);
    let fields = rendered
        .strip_prefix(b"{")
        .filter(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}'));
    match fields {
        Some(rest) => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        None => {
            out.extend_from_slice(b",\"message\":");
            out.extend_from_slice(&rendered);
            out.push(b'}');
        }
    }
}

/// The stream's per-request caps for batched formats: (events, bytes).
pub fn batch_caps(runtime: &OrgRuntime) -> (usize, usize) {
    let s = &runtime.settings;
    match s.endpoint {
        EndpointKind::Elasticsearch => s.elasticsearch.as_ref().map_or((500, 1 << 20), |e| {
            (e.max_events as usize, e.max_bytes as usize)
        }),
        EndpointKind::Datadog => (DATADOG_MAX_EVENTS, DATADOG_MAX_BYTES),
        _ => (s.http.max_events as usize, s.http.max_bytes as usize),
    }
}

/// Cut `jobs` into requests of at most `max_events` events and, by their estimated size,
/// `max_bytes` bytes (an event estimated larger goes alone: the SIEM's 413 decides).
pub fn chunks<T>(
    jobs: Vec<T>,
    size: impl Fn(&T) -> usize,
    max_events: usize,
    max_bytes: usize,
) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 2;
    for job in jobs {
        let n = size(&job) + BATCH_ITEM_BYTES;
        if !current.is_empty() && (current.len() >= max_events || bytes + n > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 2;
        }
        bytes += n;
        current.push(job);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_model::settings::{CustomField, OrgSettings};

    fn event() -> TopicEvent {
        let event = els_model::ingest::parse_event(serde_json::json!({
            "event_type": "FLOW_COMPLETE", "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "f1", "flow_name": "F",
            "org_id": "org-1", "org_name": "Acme", "org_hostname": "acme.example.com",
            "user_id": "u1", "user_email": "Bob@Example.com"
        }))
        .unwrap();
        TopicEvent::from_event(&event).unwrap()
    }

    #[test]
    fn ids_only_when_asked_and_template_applied() {
        let mut s = OrgSettings::hec("https://siem.example.com/services/collector/event", "t");
        let render = |s: &OrgSettings| -> serde_json::Value {
            serde_json::from_slice(&event_body(&event(), &OrgRuntime::new(s.clone()).unwrap()))
                .unwrap()
        };
        let plain = render(&s);
        assert!(plain.get("org_id").is_none() && plain.get("user_id").is_none());
        assert_eq!(
            plain["user_email"],
            els_model::privacy::hash_email("bob@example.com")
        );
        s.custom_fields = vec![CustomField {
            key: "okta_org".into(),
            value: "${org_id}".into(),
        }];
        s.body_template = Some(r#"{"wrapper":{"e":"${event}"},"v":1}"#.into());
        let templated = render(&s);
        assert_eq!(templated["v"], 1);
        assert_eq!(templated["wrapper"]["e"]["okta_org"], "org-1");
        let body = hec_body(
            [event(), event()].iter(),
            &OrgRuntime::new(OrgSettings::hec("https://x/y", "t")).unwrap(),
        );
        assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(!String::from_utf8(body).unwrap().contains("Example.com"));
    }

    #[test]
    fn batched_bodies_for_each_format() {
        use els_model::settings::{DatadogOptions, ElasticOptions, HttpOptions};
        let events = [event(), event()];
        let body = |s: OrgSettings| {
            let rt = OrgRuntime::new(s).unwrap();
            String::from_utf8(batch_body(events.iter(), &rt)).unwrap()
        };
        let http = |format| OrgSettings {
            endpoint: EndpointKind::Http,
            http: HttpOptions {
                format,
                ..HttpOptions::default()
            },
            ..OrgSettings::hec("https://x/y", "t")
        };
        let ndjson = body(http(HttpFormat::Ndjson));
        let lines: Vec<serde_json::Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(ndjson.ends_with('\n') && lines[1]["event_type"] == "FLOW_COMPLETE");
        let array: serde_json::Value =
            serde_json::from_str(&body(http(HttpFormat::JsonArray))).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 2);
        let mut dd = OrgSettings::hec("https://x/api/v2/logs", "t");
        dd.endpoint = EndpointKind::Datadog;
        dd.auth_headers[0] = els_model::settings::Header {
            name: "DD-API-KEY".into(),
            value: els_model::settings::Secret::new("k"),
        };
        dd.datadog = DatadogOptions {
            ddtags: Some("env:prod".into()),
            ..DatadogOptions::default()
        };
        let entries: serde_json::Value = serde_json::from_str(&body(dd.clone())).unwrap();
        assert_eq!(entries[0]["ddsource"], "els");
        assert_eq!(entries[0]["ddtags"], "env:prod");
        assert_eq!(
            entries[1]["event_type"], "FLOW_COMPLETE",
            "the event's fields as attributes"
        );
        // An event templated into something other than an object goes in `message`.
        dd.body_template = Some(r#"["${event}"]"#.into());
        let entries: serde_json::Value = serde_json::from_str(&body(dd)).unwrap();
        assert_eq!(entries[0]["message"][0]["event_type"], "FLOW_COMPLETE");
        let mut es = OrgSettings::hec("https://x/_bulk", "t");
        es.endpoint = EndpointKind::Elasticsearch;
        es.elasticsearch = Some(ElasticOptions {
            index: "els".into(),
            op_type: Default::default(),
            max_events: 500,
            max_bytes: 1 << 20,
        });
        let bulk = body(es);
        let lines: Vec<serde_json::Value> = bulk
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["create"]["_index"], "els");
        assert_eq!(lines[0]["create"]["_id"], lines[1]["event_id"]);
    }

    #[test]
    fn chunks_keep_to_events_and_bytes() {
        let sizes = chunks((0..10).collect(), |_| 100, 4, 10_000);
        assert_eq!(sizes.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let by_bytes = chunks(
            (0..10).collect(),
            |_| 1000,
            100,
            2 * (1000 + BATCH_ITEM_BYTES) + 2,
        );
        assert!(by_bytes.iter().all(|c| c.len() == 2), "{by_bytes:?}");
        // An event over the cap alone still goes (the SIEM's 413 decides).
        assert_eq!(chunks(vec![1], |_| 1 << 30, 10, 1000), vec![vec![1]]);
    }
}
