//! Event types the engine adds (issue 17): `FLOW_PAUSED`, `FLOW_THIRD_PARTY_RATE_LIMITED` and
//! unknown but well-formed types (`FLOW_RESUMED`) pass ingest and the topic, reach the streams
//! that take `"all"` with their `event_type` unchanged, and not a stream whose list does not
//! name them; malformed types still get a 400 naming the field; a settings file written before
//! unknown types existed loads unchanged.

use std::time::Duration;

use anyhow::{ensure, Result};
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

/// One event of `event_type` for `org`, with the metadata its type carries.
fn event(org: &str, event_type: &str) -> Value {
    let mut e = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": event_type,
        "execution_id": uuid::Uuid::new_v4().to_string(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "flow_id": "flo-1", "flow_name": "Onboard",
        "org_id": org, "org_name": "Acme", "org_hostname": format!("{org}.example.com"),
        "user_id": "user-1", "user_email": "Alice@Example.com"
    });
    match event_type {
        "FLOW_PAUSED" => {
            e["pause"] =
                json!({"pause_type": "wait_for", "step_name": "Wait For", "resume_after_ms": 60000})
        }
        "FLOW_THIRD_PARTY_RATE_LIMITED" => {
            e["third_party_limit"] = json!({"service": "slack", "retry_after_ms": 30000})
        }
        "FLOW_FAILED" => e["error"] = json!({"error_code": "E42", "error_message": "boom"}),
        // An unknown type's own fields pass through as they are.
        _ => e["resumed_by"] = json!("approval"),
    }
    e
}

/// A stream's settings as ELS wrote them before unknown types existed (every field).
fn stored_before(sim: &Sim, events: Value) -> Value {
    json!({
        "enabled": true,
        "url": sim.hec_url(),
        "endpoint": "hec",
        "events": events,
        "flows": {"mode": "all", "flow_ids": []},
        "auth_headers": [{"name": "Authorization", "value": format!("Splunk {HEC_TOKEN}")}],
        "custom_headers": [],
        "custom_fields": [],
        "hec": {"source": "els", "sourcetype": "els:execution"},
        "allow_http": true
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_unknown_types_reach_streams_that_take_all() -> Result<()> {
    let dir = test_dir("event-types");
    let broker = Kafka::single(&dir)?;
    broker.create_topic(TOPIC, 3).await?;
    let sim = Sim::start(&dir, "siem-sim", &[])?;
    let all = stored_before(&sim, json!("all"));
    let listed = stored_before(&sim, json!(["FLOW_START", "FLOW_FAILED"]));
    let settings = json!({"orgs": {"org-all": all, "org-list": listed}});
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[("ELS_SETTINGS_TOPIC", "")],
    )?;
    let producer = ProducerProc::start(&dir, &broker, &[])?;
    consumer.wait_ready(Duration::from_secs(60)).await?;

    // The settings file from before loads unchanged (only the secret is redacted).
    for (org, file) in [("org-all", &all), ("org-list", &listed)] {
        let shown: Value = http()
            .get(format!("{}/v1/orgs/{org}/settings", consumer.admin_url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let mut expected = file.clone();
        expected["auth_headers"][0]["value"] = json!("********");
        ensure!(shown == expected, "{org}: {shown} != {expected}");
    }
    println!("settings file from before: both orgs load unchanged");

    // Malformed types are still refused, naming the field, at ingest and in settings.
    let client = http();
    for bad in ["flow_paused", "FLOW PAUSED", "", &"F".repeat(65)] {
        let batch = json!([event("org-all", "FLOW_FAILED"), event("org-all", bad)]);
        let r = client
            .post(format!("{}/v1/events", producer.url))
            .json(&batch)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        ensure!(status == 400, "{bad:?}: {status} {body}");
        ensure!(body["field"] == "events[1].event_type", "{bad:?}: {body}");
        let mut doc = stored_before(&sim, json!(["FLOW_FAILED", bad]));
        doc["auth_headers"] = json!([]);
        let r = client
            .put(format!("{}/v1/orgs/org-new/settings", consumer.admin_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&doc)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        ensure!(status == 400, "settings {bad:?}: {status} {body}");
        ensure!(body["field"] == "events", "settings {bad:?}: {body}");
    }
    println!("malformed types: 4 refused at ingest (events[1].event_type), 4 in settings (events)");

    // Every type to both orgs: org-all takes everything, org-list only FLOW_FAILED.
    let types = [
        "FLOW_PAUSED",
        "FLOW_THIRD_PARTY_RATE_LIMITED",
        "FLOW_RESUMED",
        "FLOW_FAILED",
    ];
    let mut events = Vec::new();
    for org in ["org-all", "org-list"] {
        for t in types {
            events.push(event(org, t));
        }
    }
    let ids = producer.post_all(&events, 100).await?;
    ensure!(
        ids.len() == events.len(),
        "accepted {} of {}",
        ids.len(),
        events.len()
    );
    let expected: Vec<String> = events
        .iter()
        .zip(&ids)
        .filter(|(e, _)| e["org_id"] == "org-all" || e["event_type"] == "FLOW_FAILED")
        .map(|(_, id)| id.clone())
        .collect();
    let (arrived, _) = wait_arrived(&[&sim], &expected, Duration::from_secs(60)).await;
    ensure!(
        arrived == expected.len(),
        "{arrived} of {} arrived",
        expected.len()
    );
    // Let anything that should not arrive have its chance to.
    let metrics = wait_for("every event finished", Duration::from_secs(30), || async {
        let m = consumer.metrics().await.ok()?;
        let done = metric_total(&m, "els_events_delivered_total")
            + metric_total(&m, "els_events_filtered_total");
        (done >= events.len() as f64).then_some(m)
    })
    .await?;

    let records = sim.records().await?;
    let mut received: Vec<(String, String)> = Vec::new();
    for r in &records {
        let e = &r["body"]["event"];
        let org = e["org_hostname"].as_str().unwrap_or_default();
        let t = e["event_type"].as_str().unwrap_or_default().to_string();
        ensure!(
            r["body"]["fields"]["event_type"] == t.as_str(),
            "HEC fields carry the type unchanged: {r}"
        );
        match t.as_str() {
            "FLOW_PAUSED" => ensure!(e["pause"]["resume_after_ms"] == 60000, "{e}"),
            "FLOW_THIRD_PARTY_RATE_LIMITED" => {
                ensure!(e["third_party_limit"]["service"] == "slack", "{e}")
            }
            "FLOW_RESUMED" => ensure!(e["resumed_by"] == "approval", "{e}"),
            _ => {}
        }
        received.push((org.split('.').next().unwrap_or_default().to_string(), t));
    }
    received.sort();
    let mut want: Vec<(String, String)> = types
        .iter()
        .map(|t| ("org-all".to_string(), t.to_string()))
        .chain([("org-list".to_string(), "FLOW_FAILED".to_string())])
        .collect();
    want.sort();
    ensure!(
        received == want,
        "siem-sim received {received:?}, want {want:?}"
    );

    let producer_metrics = parse_metrics(
        &get(format!("{}/metrics", producer.url))
            .await?
            .text()
            .await?,
    );
    let unknown_in = metric_total(&producer_metrics, "els_producer_unknown_event_types_total");
    let unknown_read = metric_total(&metrics, "els_events_unknown_type_total");
    let delivered = metric_total(&metrics, "els_events_delivered_total");
    let filtered = metric_total(&metrics, "els_events_filtered_total");
    let invalid = metrics
        .get("els_events_dead_lettered_total{reason=\"invalid_event\"}")
        .copied()
        .unwrap_or(0.0);
    println!(
        "posted {} events ({} types x 2 orgs): siem-sim received {} (org-all: {}, org-list: {}); \
         delivered {delivered}, filtered {filtered}, invalid_event {invalid}; unknown types: \
         producer {unknown_in}, consumer {unknown_read}",
        events.len(),
        types.len(),
        records.len(),
        received.iter().filter(|(o, _)| o == "org-all").count(),
        received.iter().filter(|(o, _)| o == "org-list").count(),
    );
    for (org, t) in &received {
        println!("  {org}: {t}");
    }
    ensure!(records.len() == 5, "{} records", records.len());
    ensure!(delivered == 5.0 && filtered == 3.0 && invalid == 0.0);
    ensure!(unknown_in == 2.0 && unknown_read == 2.0);
    Ok(())
}
