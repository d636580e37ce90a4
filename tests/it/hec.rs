//! ELS against a siem-sim that answers as a real Splunk HEC does (issue 15, first part):
//! an indexer-acknowledgement token that refuses requests without a channel, a token that may
//! not write to the org's index, and a `max_content_length` smaller than ELS's batches. Each
//! scenario compares the ids the ingest API acknowledged with those that arrived or were
//! dead-lettered, and prints the counts.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use els_producer::generate::demo_events;
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

async fn dead_letter_total(c: &ConsumerProc) -> f64 {
    let m = c.metrics().await.unwrap_or_default();
    m.iter()
        .filter(|(k, _)| k.starts_with("els_events_dead_lettered_total"))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_token_gets_a_channel_on_every_request_and_nothing_is_dead_lettered() {
    let dir = test_dir("hec-channel");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    // The demo token with indexer acknowledgement on: no channel would be 400 code 10.
    let sim = Sim::start(&dir, "siem-sim", &["--ack-token", HEC_TOKEN]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let ids = producer
        .post_all(&demo_events(4, 2_000, 91), 250)
        .await
        .unwrap();
    let (found, dups) = wait_arrived(&[&sim], &ids, Duration::from_secs(120)).await;
    let records = sim.records().await.unwrap();
    let mut channels: BTreeSet<(String, String)> = BTreeSet::new();
    let mut without = 0;
    for r in &records {
        let channel = r["headers"]["x-splunk-request-channel"].as_str();
        let org = r["body"]["event"]["org_hostname"]
            .as_str()
            .unwrap_or_default();
        match channel {
            Some(c) => {
                channels.insert((org.to_string(), c.to_string()));
            }
            None => without += 1,
        }
    }
    let orgs: HashSet<&String> = channels.iter().map(|(o, _)| o).collect();
    assert_eq!(without, 0, "records without a channel");
    assert_eq!(
        channels.len(),
        orgs.len(),
        "one stable channel per org: {channels:?}"
    );
    assert_eq!(dead_letter_total(&consumer).await, 0.0);
    let stats = sim.stats().await.unwrap();
    println!(
        "ack token: acknowledged {}, received {found}, duplicates {dups}, 0 dead letters; every request had a channel, \
         {} orgs used {} channels; sim channel errors {}",
        ids.len(),
        orgs.len(),
        channels.len(),
        stats["channel_errors"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_index_is_one_decision_per_batch_and_413_splits_until_delivered() {
    let dir = test_dir("hec-errors");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    // One Splunk whose token may write only to `main`, another with a 256 KB limit.
    let sim = Sim::start(
        &dir,
        "siem-sim",
        &["--token-indexes", &format!("{HEC_TOKEN}=main")],
    )
    .unwrap();
    let small = Sim::start(&dir, "siem-sim-small", &["--max-content-length", "262144"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut wrong_index = settings_for(&sim.hec_url());
    wrong_index["hec"] = json!({"index": "security"});
    let settings = json!({
        "default": settings_for(&small.hec_url()),
        "orgs": {"org-0001": wrong_index},
    });
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_BATCH_MAX_EVENTS", "1000"),
            ("ELS_BATCH_LINGER_MS", "1000"),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();

    // 500 events of org-0001 (the token may not write to its index), in one batch.
    let events: Vec<Value> = demo_events(1, 500, 92);
    let wrong_ids = producer.post_all(&events, 500).await.unwrap();
    wait_for("500 dead letters", Duration::from_secs(60), || async {
        (dead_letter_total(&consumer).await >= 500.0).then_some(())
    })
    .await
    .unwrap();
    let requests = sim.stats().await.unwrap()["requests"].as_u64().unwrap_or(0);
    assert!(requests <= 2, "{requests} requests for a wrong index");
    let list: Value = http()
        .get(format!(
            "{}/v1/dead-letters?org=org-0001",
            consumer.admin_url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    let listed: HashSet<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["event"]["event_id"].as_str())
        .collect();
    assert_eq!(list["matched"], 500, "{:.300}", list.to_string());
    assert!(wrong_ids.iter().all(|id| listed.contains(id.as_str())));
    let first = &list["items"][0];
    assert_eq!(first["reason"], "rejected");
    assert_eq!(first["last_status"], 400);

    // 1,000 events of another org in ~420 KB batches against a 256 KB limit: split, delivered.
    let others: Vec<Value> = demo_events(3, 3_000, 93)
        .into_iter()
        .filter(|e| e["org_id"] == "org-0002")
        .take(1_000)
        .collect();
    let ids = producer.post_all(&others, 500).await.unwrap();
    let (found, dups) = wait_arrived(&[&small], &ids, Duration::from_secs(120)).await;
    let by_status = small.stats().await.unwrap()["by_status"].clone();
    assert!(by_status["413"].as_u64().unwrap_or(0) >= 1, "{by_status}");
    assert_eq!(dead_letter_total(&consumer).await, 500.0);
    println!(
        "wrong index: {} events, {requests} request(s), 500 dead-lettered once; 413 at 256 KB: {} events delivered \
         ({found} found, {dups} duplicates) in smaller requests, SIEM answers {by_status}",
        wrong_ids.len(),
        ids.len()
    );
}
