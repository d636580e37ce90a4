//! Batched streams other than HEC: requests within the stream's caps, a refused batch split
//! down to its bad event, and Elasticsearch's per-item answers (only failed items re-sent).

use super::*;
use crate::state::Reason;
use els_model::settings::{ElasticOpType, ElasticOptions, HttpFormat, HttpOptions};

fn batched(format: HttpFormat, max_events: u32) -> OrgSettings {
    OrgSettings {
        http: HttpOptions {
            format,
            max_events,
            max_bytes: 1 << 20,
        },
        ..http()
    }
}

fn elastic() -> OrgSettings {
    OrgSettings {
        endpoint: EndpointKind::Elasticsearch,
        elasticsearch: Some(ElasticOptions {
            index: "els-events".into(),
            op_type: ElasticOpType::Create,
            max_events: 500,
            max_bytes: 8 << 20,
        }),
        ..hec()
    }
}

fn big_knobs() -> EngineKnobs {
    EngineKnobs {
        batch_max_events: 2000,
        batch_max_bytes: 16 << 20,
        ..knobs()
    }
}

#[tokio::test(start_paused = true)]
async fn ndjson_and_array_requests_keep_to_the_stream_caps() {
    for format in [HttpFormat::Ndjson, HttpFormat::JsonArray] {
        let mut h = Harness::new(batched(format, 400), big_knobs(), FakeSiem::ok());
        let _tx = h.worker((0..1000).map(job));
        h.finished(1000).await;
        let sizes: Vec<usize> = h.siem.bodies().iter().map(Vec::len).collect();
        assert_eq!(sizes, [400, 400, 200], "{format:?}");
        let mut all: Vec<u32> = h.siem.bodies().concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<u32>>());
        assert!(h.dead_letters().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_split_down_to_its_bad_event() {
    // 400 for any body holding event 5, 413 for any body of more than 4 events.
    let siem = FakeSiem::new(|_, events| {
        if events.len() > 4 {
            413
        } else if events.contains(&5) {
            400
        } else {
            200
        }
    });
    let mut h = Harness::new(batched(HttpFormat::Ndjson, 500), big_knobs(), siem);
    let _tx = h.worker((0..10).map(job));
    h.finished(10).await;
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].offset, dead[0].reason), (5, Reason::Rejected));
    assert_eq!(h.services.metrics.delivered.get(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_credential_pauses_a_batched_stream_instead_of_dead_lettering() {
    let mut h = Harness::new(
        batched(HttpFormat::JsonArray, 500),
        big_knobs(),
        FakeSiem::scripted(&[401]),
    );
    let _tx = h.worker((0..20).map(job));
    let held = h.held(20).await;
    assert_eq!(held.len(), 20);
    assert!(h.dead_letters().is_empty());
}

/// A `_bulk` answer for `events`: status 429 for those in `retry`, 400 (a mapping error) for
/// those in `bad`, 201 for the rest.
fn bulk_reply(events: &[u32], retry: &[u32], bad: &[u32]) -> (u16, String) {
    let items: Vec<serde_json::Value> = events
        .iter()
        .map(|n| {
            let (status, error) = if retry.contains(n) {
                (429, Some(("es_rejected_execution_exception", "queue full")))
            } else if bad.contains(n) {
                (
                    400,
                    Some((
                        "document_parsing_exception",
                        "failed to parse field [depth]",
                    )),
                )
            } else {
                (201, None)
            };
            let mut item =
                serde_json::json!({"_index": "els-events", "_id": n.to_string(), "status": status});
            if let Some((kind, reason)) = error {
                item["error"] = serde_json::json!({"type": kind, "reason": reason});
            }
            serde_json::json!({ "create": item })
        })
        .collect();
    let errors = items.iter().any(|i| i["create"]["status"] != 201);
    (
        200,
        serde_json::json!({"took": 3, "errors": errors, "items": items}).to_string(),
    )
}

#[tokio::test(start_paused = true)]
async fn bulk_resends_only_the_failed_items_and_dead_letters_a_mapping_error_alone() {
    // First request: items 10, 200 and 499 are rejected with 429, item 77 has a mapping
    // error; later requests: 77 fails again if sent (it must not be), the rest are stored.
    let siem = FakeSiem::replying(|i, events| {
        if i == 0 {
            bulk_reply(events, &[10, 200, 499], &[77])
        } else {
            bulk_reply(events, &[], &[77])
        }
    });
    let mut h = Harness::new(elastic(), big_knobs(), siem);
    let _tx = h.worker((0..500).map(job));
    h.finished(500).await;
    let bodies = h.siem.bodies();
    assert_eq!(
        bodies.len(),
        2,
        "one bulk and one re-send: {:?}",
        bodies.len()
    );
    assert_eq!(bodies[0].len(), 500);
    assert_eq!(bodies[1], [10, 200, 499]);
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].offset, dead[0].reason), (77, Reason::Rejected));
    assert_eq!(dead[0].last_status, Some(400));
    assert!(dead[0].last_error.contains("document_parsing_exception"));
    assert_eq!(h.services.metrics.delivered.get(), 499);
    // The re-send came after a backoff (100 ms initially).
    let requests = h.siem.requests();
    assert!(requests[1].at_ms >= 100, "{requests:?}");
}

#[tokio::test(start_paused = true)]
async fn a_create_answered_409_was_stored_before_and_counts_as_delivered() {
    let siem = FakeSiem::replying(|_, events| {
        let items: Vec<serde_json::Value> = events
            .iter()
            .map(|n| serde_json::json!({"create": {"_index": "els-events", "_id": n.to_string(), "status": 409,
                "error": {"type": "version_conflict_engine_exception", "reason": "document already exists"}}}))
            .collect();
        (
            200,
            serde_json::json!({"took": 1, "errors": true, "items": items}).to_string(),
        )
    });
    let mut h = Harness::new(elastic(), big_knobs(), siem);
    let _tx = h.worker((0..3).map(job));
    h.finished(3).await;
    assert_eq!(h.siem.bodies().len(), 1);
    assert!(h.dead_letters().is_empty());
    assert_eq!(h.services.metrics.delivered.get(), 3);
}
