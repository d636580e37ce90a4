//! The walking skeleton: producer -> Kafka -> consumer -> siem-sim, at least once.

use std::collections::HashSet;
use std::time::Duration;

use els_producer::generate::demo_events;
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

struct Stack {
    dir: std::path::PathBuf,
    broker: Kafka,
    sim: Sim,
    producer: ProducerProc,
}

async fn stack(name: &str, partitions: i32) -> Stack {
    let dir = test_dir(name);
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, partitions).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    Stack {
        dir,
        broker,
        sim,
        producer,
    }
}

fn default_settings(sim: &Sim) -> Value {
    json!({ "default": settings_for(&sim.hec_url()) })
}

/// Wait until siem-sim has seen every id in `ids`; returns (received total, duplicates).
async fn wait_all_arrived(sim: &Sim, ids: &[String], timeout: Duration) -> (usize, usize) {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    wait_for("every event_id at siem-sim", timeout, || async {
        let got = sim.event_ids().await.ok()?;
        let seen: HashSet<&str> = got.iter().map(String::as_str).collect();
        let missing = want.iter().filter(|id| !seen.contains(*id)).count();
        (missing == 0).then(|| (got.len(), got.len() - seen.len()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_with_emails_hashed() {
    let s = stack("10k", 3).await;
    let consumer = ConsumerProc::start(
        &s.dir,
        "consumer",
        &s.broker,
        &default_settings(&s.sim),
        &[],
    )
    .unwrap();
    let events = demo_events(20, 10_000, 42);
    let clear_emails: HashSet<String> = events
        .iter()
        .map(|e| e["user_email"].as_str().unwrap_or_default().to_string())
        .collect();
    let ids = s.producer.post_all(&events, 500).await.unwrap();
    assert_eq!(ids.len(), 10_000);
    let (total, dups) = wait_all_arrived(&s.sim, &ids, Duration::from_secs(120)).await;
    println!("10k: received {total} events, {dups} duplicates, 0 missing");

    // Emails arrive hashed, never in clear; org and user ids are not sent by default.
    let records = s.sim.records().await.unwrap();
    let mut checked = 0;
    for r in &records {
        let text = r["body"].to_string();
        assert!(
            !text.contains('@'),
            "clear-text email reached the SIEM: {text}"
        );
        let event = &r["body"]["event"];
        let email = event["user_email"].as_str().unwrap();
        assert!(els_model::privacy::is_hashed(email), "{email}");
        assert!(event.get("org_id").is_none() && event.get("user_id").is_none());
        checked += 1;
    }
    assert!(checked >= 10_000);
    let one = clear_emails.iter().next().unwrap();
    let hashed = els_model::privacy::hash_email(one);
    assert!(records
        .iter()
        .any(|r| r["body"]["event"]["user_email"] == hashed.as_str()));
    // Every request carried the org's auth header (redacted by siem-sim when stored).
    assert!(records
        .iter()
        .all(|r| r["headers"]["authorization"].is_string()));
    drop(consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_consumer_mid_stream_loses_nothing() {
    let s = stack("kill9", 3).await;
    let mut consumer = ConsumerProc::start(
        &s.dir,
        "consumer",
        &s.broker,
        &default_settings(&s.sim),
        &[],
    )
    .unwrap();
    // Post only once the consumer owns its partitions: otherwise, on a busy machine, the
    // whole stream can be on the topic before the group forms, and the consumer drains it
    // in well under a second, too fast to be killed mid-stream.
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let events = demo_events(10, 10_000, 7);
    let producer_url = s.producer.url.clone();
    let posting = {
        let events = events.clone();
        tokio::spawn(async move {
            let p = ProducerForUrl(producer_url);
            p.post_paced(&events, 250, Duration::from_millis(60)).await
        })
    };
    // Kill the consumer once a good share has arrived and the stream is still running.
    wait_for("3000 events delivered", Duration::from_secs(60), || async {
        let n = s.sim.stats().await.ok()?["events"].as_u64()?;
        (n >= 3000).then_some(())
    })
    .await
    .unwrap();
    consumer.proc.kill9();
    let at_kill = s.sim.stats().await.unwrap()["events"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    consumer.restart().unwrap();
    let ids = posting.await.unwrap().unwrap();
    assert_eq!(ids.len(), 10_000);
    let (total, dups) = wait_all_arrived(&s.sim, &ids, Duration::from_secs(120)).await;
    println!("kill -9 at {at_kill} delivered: received {total}, duplicates {dups}, missing 0");
    assert!(at_kill < 10_000, "the kill must happen mid-stream");
}

/// Posts paced batches to a producer by URL (so a spawned task can own it).
struct ProducerForUrl(String);

impl ProducerForUrl {
    async fn post_paced(
        &self,
        events: &[Value],
        batch: usize,
        pause: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let client = http();
        let mut ids = Vec::new();
        for chunk in events.chunks(batch) {
            let r = client
                .post(format!("{}/v1/events", self.0))
                .json(chunk)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 202, "producer answered {}", r.status());
            let body: Value = r.json().await?;
            ids.extend(
                body["event_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap_or_default().to_string()),
            );
            tokio::time::sleep(pause).await;
        }
        Ok(ids)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_event_holds_the_offset_across_restart() {
    // One partition, two orgs: org-0001's SIEM answers 503, org-0002's is healthy, so later
    // events finish before earlier ones. The stored offset must stay at org-0001's first event.
    let s = stack("order", 1).await;
    let sick = Sim::start(&s.dir, "sick-sim", &["--fault-status", "503"]).unwrap();
    let settings = json!({
        "orgs": {
            "org-0001": settings_for(&sick.hec_url()),
            "org-0002": settings_for(&s.sim.hec_url()),
        }
    });
    let mut consumer = ConsumerProc::start(
        &s.dir,
        "consumer",
        &s.broker,
        &settings,
        &[("ELS_RETRY_MAX_ELAPSED_MS", "600000")],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();
    let mut events = demo_events(1, 5, 1);
    let mut healthy = demo_events(1, 200, 2);
    for e in &mut healthy {
        e["org_id"] = json!("org-0002");
    }
    events.extend(healthy);
    let ids = s.producer.post_all(&events, 1000).await.unwrap();
    let healthy_ids = ids[5..].to_vec();
    wait_all_arrived(&s.sim, &healthy_ids, Duration::from_secs(60)).await;
    // Auto-commit runs every second; give it several chances to (wrongly) move past offset 0.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let committed = s.broker.committed("els-consumer", TOPIC, 1).unwrap();
    println!("committed while org-0001 is failing: {committed:?}");
    assert!(
        committed[&0] <= 0,
        "offset moved past an unfinished event: {committed:?}"
    );
    consumer.proc.kill9();

    // The sick SIEM recovers; after a restart org-0001's events are redelivered.
    sick.set_faults(json!({})).await.unwrap();
    consumer.restart().unwrap();
    wait_all_arrived(&sick, &ids[..5], Duration::from_secs(60)).await;
    wait_for(
        "offset committed to the end",
        Duration::from_secs(30),
        || async {
            let c = s.broker.committed("els-consumer", TOPIC, 1).ok()?;
            (c[&0] == 205).then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_and_nothing_is_enqueued() {
    let s = stack("badinput", 3).await;
    let client = http();
    let url = format!("{}/v1/events", s.producer.url);
    let good = demo_events(1, 1, 3).remove(0);
    let before = s.broker.high_watermarks(TOPIC, 3).unwrap();

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("flow_id");
    let mut wrong_type = good.clone();
    wrong_type["depth"] = json!("deep");
    let big = vec![good.clone(); 3000];
    // (what, content type, body, expected status, expected field)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            "application/json",
            b"{\"event_type\": ".to_vec(),
            400,
            None,
        ),
        (
            "missing field",
            "application/json",
            serde_json::to_vec(&missing).unwrap(),
            400,
            Some("flow_id"),
        ),
        (
            "wrong type in a batch",
            "application/json",
            serde_json::to_vec(&json!([good, wrong_type])).unwrap(),
            400,
            Some("events[1].depth"),
        ),
        (
            "oversized body",
            "application/json",
            serde_json::to_vec(&big).unwrap(),
            413,
            Some("body"),
        ),
        (
            "wrong content type",
            "text/plain",
            b"hello".to_vec(),
            415,
            Some("Content-Type"),
        ),
    ];
    for (what, ctype, body, status, field) in cases {
        let r = client
            .post(&url)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let err: Value = r.json().await.unwrap();
        assert!(
            !err["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: {err}"
        );
        if let Some(f) = field {
            assert_eq!(err["field"], f, "{what}: {err}");
        }
        println!("{what}: {status} {}", err["message"]);
    }
    assert_eq!(
        s.broker.high_watermarks(TOPIC, 3).unwrap(),
        before,
        "a rejected request enqueued events"
    );
    // And a good request still works.
    let ok = client
        .post(&url)
        .json(&demo_events(1, 2, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    // (The watermark proves the rejected requests above would have been visible.)
    wait_for("records on the topic", Duration::from_secs(10), || async {
        (s.broker.high_watermarks(TOPIC, 3).ok()? > before).then_some(())
    })
    .await
    .unwrap();
}

#[test]
fn readme_run_command_brings_the_pipeline_up() {
    let dir = test_dir("run-local");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = bin("els-consumer").parent().unwrap().to_path_buf();
    let out = std::process::Command::new(root.join("deploy/scripts/run-local.sh"))
        .args(["--for", "20"])
        .env("LOCAL_BIN_DIR", &bin_dir)
        .env("LOCAL_DIR", dir.join("run"))
        .env("LOCAL_BROKER_PORT", free_port().to_string())
        .env("LOCAL_CONTROLLER_PORT", free_port().to_string())
        .env("LOCAL_SIM_PORT", free_port().to_string())
        .env("LOCAL_PRODUCER_PORT", free_port().to_string())
        .env("LOCAL_ADMIN_PORT", free_port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Value = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("siem-sim: "))
        .next_back()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    println!("local run, last siem-sim stats: {last}");
    assert!(
        last["distinct_event_ids"].as_u64().unwrap_or(0) > 100,
        "{stdout}"
    );
    assert!(stdout.contains("Where to look"));
}
