//! ELS against a siem-sim that answers as a real Splunk HEC does (issue 15):
//! an indexer-acknowledgement token that refuses requests without a channel and whose `200`s
//! count only once acked (a kill before the acks re-sends; ids never acked are re-sent after
//! the timeout), a token without ack (never polled), a token that may not write to the org's
//! index, and a `max_content_length` smaller than ELS's batches. Each
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
async fn wrong_index_pauses_after_one_request_and_413_splits_until_delivered() {
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

    // 500 events of org-0001 (the token may not write to its index), in one batch: a
    // configuration error of the whole request, so the stream pauses and holds them.
    let events: Vec<Value> = demo_events(1, 500, 92);
    let wrong_ids = producer.post_all(&events, 500).await.unwrap();
    let status = wait_for(
        "the stream paused, 500 held",
        Duration::from_secs(60),
        || async {
            let s: Value = http()
                .get(format!("{}/v1/orgs/org-0001/status", consumer.admin_url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (s["state"] == "paused" && s["held_events"] == 500).then_some(s)
        },
    )
    .await
    .unwrap();
    let requests = sim.stats().await.unwrap()["requests"].as_u64().unwrap_or(0);
    assert!(requests <= 2, "{requests} requests for a wrong index");
    assert_eq!(status["reason"]["status"], 400, "{status}");
    assert_eq!(status["reason"]["hec_code"], 7, "{status}");
    assert_eq!(status["reason"]["text"], "Incorrect index", "{status}");
    assert_eq!(dead_letter_total(&consumer).await, 0.0);

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
    assert_eq!(dead_letter_total(&consumer).await, 0.0);
    println!(
        "wrong index: {} events, {requests} request(s), stream paused (400, HEC code 7) with all 500 held, 0 dead \
         letters; 413 at 256 KB: {} events delivered ({found} found, {dups} duplicates) in smaller requests, SIEM \
         answers {by_status}",
        wrong_ids.len(),
        ids.len()
    );
}

/// Sum of the committed offsets of the consumer group (each partition's next offset to read).
fn committed_total(broker: &Kafka, partitions: i32) -> i64 {
    broker
        .committed("els-consumer", TOPIC, partitions)
        .map(|c| c.values().map(|o| (*o).max(0)).sum())
        .unwrap_or(0)
}

/// Wait until the group has committed every record of the topic: every event finished.
async fn wait_all_committed(broker: &Kafka, partitions: i32, timeout: Duration) -> i64 {
    let end = broker.high_watermarks(TOPIC, partitions).unwrap();
    wait_for("every offset committed", timeout, || async {
        (committed_total(broker, partitions) >= end).then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: committed {} of {end}",
            committed_total(broker, partitions)
        )
    });
    end
}

fn metric(m: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_token_all_acked_and_a_kill_before_the_acks_re_sends_what_was_unacked() {
    let dir = test_dir("hec-ack");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    // Splunk with indexer acknowledgement: each batch is indexed 5 s after its 200.
    let sim = Sim::start(
        &dir,
        "siem-sim",
        &["--ack-token", HEC_TOKEN, "--ack-delay-ms", "5000"],
    )
    .unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let mut consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[("ELS_HEC_ACK_POLL_INTERVAL_MS", "1000")],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let ids = producer
        .post_all(&demo_events(10, 10_000, 94), 500)
        .await
        .unwrap();
    let (found, _) = wait_arrived(&[&sim], &ids, Duration::from_secs(120)).await;
    assert_eq!(found, ids.len());
    // Everything reached Splunk; the last acks are seconds away: kill -9 now.
    let before = consumer.metrics().await.unwrap();
    let pending = metric(&before, "els_hec_ack_pending_events");
    let delivered_before = metric(&before, "els_events_delivered_total");
    consumer.proc.kill9();
    let committed_at_kill = committed_total(&broker, 2);
    assert!(pending > 0.0, "nothing awaited an ack at the kill");
    assert!(
        committed_at_kill < ids.len() as i64,
        "offsets of unacked events were committed ({committed_at_kill})"
    );
    let stats_at_kill = sim.stats().await.unwrap();

    consumer.restart().unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let end = wait_all_committed(&broker, 2, Duration::from_secs(120)).await;
    let (found, dups) = wait_arrived(&[&sim], &ids, Duration::from_secs(10)).await;
    let after = consumer.metrics().await.unwrap();
    let stats = sim.stats().await.unwrap();
    assert_eq!(found, ids.len(), "lost events");
    assert!(dups > 0, "nothing was re-sent after the restart");
    assert_eq!(dead_letter_total(&consumer).await, 0.0);
    assert_eq!(metric(&after, "els_hec_ack_pending_events"), 0.0);
    assert!(metric(&after, "els_hec_ack_latency_seconds_count") > 0.0);
    println!(
        "ack on, 5 s ack delay: {} acknowledged, all {found} received; at the kill -9 {pending} events awaited \
         acks ({delivered_before} acked and delivered, {committed_at_kill} of {end} offsets committed, sim acks \
         acked {}); after the restart every offset committed, {} events re-sent and acked (duplicates {dups}), \
         sim acks acked {} in all, 0 dead letters, ack latency mean {:.2} s",
        ids.len(),
        stats_at_kill["acks_acked"],
        metric(&after, "els_events_delivered_total"),
        stats["acks_acked"],
        metric(&after, "els_hec_ack_latency_seconds_sum")
            / metric(&after, "els_hec_ack_latency_seconds_count"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_acked_batches_are_re_sent_after_the_timeout_and_a_token_without_ack_is_never_polled()
{
    let dir = test_dir("hec-never-ack");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    // org-0001 and org-0002 stream to a Splunk that never acks 10 % of its ack ids; the
    // others to one whose token has no indexer acknowledgement.
    let acking = Sim::start(
        &dir,
        "siem-sim-ack",
        &["--ack-token", HEC_TOKEN, "--never-ack-percent", "10"],
    )
    .unwrap();
    let plain = Sim::start(&dir, "siem-sim-plain", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({
        "default": settings_for(&plain.hec_url()),
        "orgs": {
            "org-0001": settings_for(&acking.hec_url()),
            "org-0002": settings_for(&acking.hec_url()),
        },
    });
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_HEC_ACK_POLL_INTERVAL_MS", "500"),
            ("ELS_HEC_ACK_TIMEOUT_MS", "4000"),
            ("ELS_BATCH_MAX_EVENTS", "50"),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let events = demo_events(4, 4_000, 95);
    let ids = producer.post_all(&events, 500).await.unwrap();
    let acked_orgs = |e: &Value| e["org_id"] == "org-0001" || e["org_id"] == "org-0002";
    let (to_ack, to_plain): (Vec<&Value>, Vec<&Value>) = events.iter().partition(|e| acked_orgs(e));
    let id_of = |e: &&Value| e["event_id"].as_str().unwrap_or_default().to_string();
    let ack_ids: Vec<String> = to_ack.iter().map(id_of).collect();
    let plain_ids: Vec<String> = to_plain.iter().map(id_of).collect();
    assert_eq!(ack_ids.len() + plain_ids.len(), ids.len());
    wait_all_committed(&broker, 2, Duration::from_secs(120)).await;
    let (found_ack, dups_ack) = wait_arrived(&[&acking], &ack_ids, Duration::from_secs(10)).await;
    let (found_plain, dups_plain) =
        wait_arrived(&[&plain], &plain_ids, Duration::from_secs(10)).await;
    let m = consumer.metrics().await.unwrap();
    let ack_stats = acking.stats().await.unwrap();
    let plain_stats = plain.stats().await.unwrap();
    assert_eq!(found_ack, ack_ids.len(), "lost events of ack orgs");
    assert_eq!(found_plain, plain_ids.len(), "lost events of plain orgs");
    let timeouts = metric(&m, "els_hec_ack_timeouts_total");
    assert!(timeouts > 0.0, "no batch timed out");
    assert!(dups_ack > 0, "nothing re-sent");
    assert_eq!(dead_letter_total(&consumer).await, 0.0);
    assert_eq!(metric(&m, "els_hec_ack_pending_events"), 0.0);
    // The token without ack: a channel on every request, not one ack poll, no re-send.
    assert_eq!(plain_stats["ack_queries"], 0, "{plain_stats}");
    assert_eq!(dups_plain, 0);
    let without_channel = plain
        .records()
        .await
        .unwrap()
        .iter()
        .filter(|r| r["headers"]["x-splunk-request-channel"].as_str().is_none())
        .count();
    assert_eq!(without_channel, 0);
    // `elsctl test-event` says which token needs acks.
    let ack_org = elsctl(&consumer, &["test-event", "--org", "org-0001"]);
    let plain_org = elsctl(&consumer, &["test-event", "--org", "org-0003"]);
    assert!(
        ack_org["text"]
            .as_str()
            .is_some_and(|t| t.contains("indexer acknowledgement: on (ackId")),
        "{ack_org}"
    );
    assert!(
        plain_org["text"]
            .as_str()
            .is_some_and(|t| t.contains("indexer acknowledgement: off")),
        "{plain_org}"
    );
    println!(
        "never-ack 10 %: {} events of ack orgs all received, {timeouts} batches timed out and were re-sent, \
         duplicates {dups_ack} (same event_ids), {} ack polls, sim acks acked {} / still pending {}; \
         token without ack: {} events received, 0 ack polls at that SIEM, duplicates {dups_plain}, \
         every request with a channel; 0 dead letters",
        ack_ids.len(),
        metric(&m, "els_hec_ack_polls_total{result=\"ok\"}"),
        ack_stats["acks_acked"],
        ack_stats["acks_pending"],
        plain_ids.len(),
    );
}
