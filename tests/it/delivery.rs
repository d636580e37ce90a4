//! Delivery engine: per-org isolation, limits, retries, dead letters and replay.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

async fn wait_ids(sim: &Sim, ids: &[String], timeout: Duration) {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    wait_for("events at siem-sim", timeout, || async {
        let got = sim.event_ids().await.ok()?;
        let seen: HashSet<&str> = got.iter().map(String::as_str).collect();
        want.iter().all(|id| seen.contains(id)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Post rounds of events paced like live traffic; returns the ids per org.
async fn paced(
    producer: &ProducerProc,
    orgs: &[&str],
    rounds: usize,
    per_round: usize,
) -> HashMap<String, Vec<String>> {
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..rounds {
        for (i, org) in orgs.iter().enumerate() {
            let batch = events_for(org, per_round, (round * 31 + i) as u64);
            ids.entry(org.to_string())
                .or_default()
                .extend(producer.post_all(&batch, per_round).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_neighbour_does_not_slow_a_healthy_org() {
    let dir = test_dir("noisy");
    let broker = Kafka::single(&dir).unwrap();
    // One partition: both orgs share it, the worst case for head-of-line blocking.
    broker.create_topic(TOPIC, 1).await.unwrap();
    let healthy = Sim::start(&dir, "healthy-sim", &[]).unwrap();
    let sick = Sim::start(&dir, "sick-sim", &["--fault-status", "503"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"orgs": {
        "org-a": settings_for(&sick.hec_url()),
        "org-b": settings_for(&healthy.hec_url()),
    }});
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_ORG_QUEUE_CAPACITY", "50"),
            ("ELS_BATCH_LINGER_MS", "200"),
            ("ELS_RETRY_MAX_ELAPSED_MS", "300000"),
            ("ELS_RETRY_MAX_INTERVAL_MS", "1000"),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();

    // Solo baseline for org-b.
    let solo = paced(&producer, &["org-b"], 20, 25).await;
    wait_ids(&healthy, &solo["org-b"], Duration::from_secs(60)).await;
    let base = latencies(&healthy, &solo["org-b"].iter().cloned().collect()).await;

    // Same traffic for org-b while org-a's SIEM answers 503 to everything.
    let mixed = paced(&producer, &["org-a", "org-b"], 20, 25).await;
    wait_ids(&healthy, &mixed["org-b"], Duration::from_secs(60)).await;
    let noisy = latencies(&healthy, &mixed["org-b"].iter().cloned().collect()).await;
    let m = consumer.metrics().await.unwrap();
    let (p_base, p_noisy) = (p99(&base), p99(&noisy));
    println!(
        "noisy neighbour: org-b p99 solo {p_base} ms, with org-a failing {p_noisy} ms (ratio {:.2}); org-a retries {} parked {}",
        p_noisy as f64 / p_base.max(1) as f64,
        m["els_delivery_retries_total"],
        m["els_events_parked"],
    );
    assert_eq!(base.len(), 500);
    assert_eq!(noisy.len(), 500);
    assert!(
        p_noisy <= 2 * p_base.max(1),
        "org-b p99 {p_noisy} ms > 2 x solo {p_base} ms"
    );
    assert!(healthy.event_ids().await.unwrap().len() >= 1000);

    // org-a's SIEM recovers: every one of its events ends delivered.
    sick.set_faults(json!({})).await.unwrap();
    let start = Instant::now();
    wait_ids(&sick, &mixed["org-a"], Duration::from_secs(90)).await;
    println!(
        "org-a: all {} events delivered {:.1} s after its SIEM recovered",
        mixed["org-a"].len(),
        start.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_delay_or_dead_letter_and_spare_other_orgs() {
    let dir = test_dir("limits");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let limited = |policy: &str, burst: u32| {
        let mut s = settings_for(&sim.hec_url());
        s["max_events"] = json!({"rate": 600, "per": "minute", "burst": burst, "policy": policy});
        s
    };
    let settings = json!({"orgs": {
        "org-delay": limited("delay", 1),
        "org-drop": limited("dead_letter", 5),
        "org-free": settings_for(&sim.hec_url()),
    }});
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();

    let delay_ids = producer
        .post_all(&events_for("org-delay", 40, 1), 40)
        .await
        .unwrap();
    let drop_ids = producer
        .post_all(&events_for("org-drop", 50, 2), 50)
        .await
        .unwrap();
    let free_ids = producer
        .post_all(&events_for("org-free", 200, 3), 200)
        .await
        .unwrap();

    // The unlimited org is not held up by its limited neighbours.
    let t0 = Instant::now();
    wait_ids(&sim, &free_ids, Duration::from_secs(30)).await;
    let free_secs = t0.elapsed().as_secs_f64();

    // delay: everything arrives, never faster than 600/min = 10/s after a burst of 1.
    wait_ids(&sim, &delay_ids, Duration::from_secs(60)).await;
    let wanted: HashSet<&str> = delay_ids.iter().map(String::as_str).collect();
    let mut arrivals: Vec<DateTime<Utc>> = sim
        .records()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r["body"]["event"]["event_id"]
                .as_str()
                .is_some_and(|id| wanted.contains(id))
        })
        .map(|r| r["received_at"].as_str().unwrap().parse().unwrap())
        .collect();
    arrivals.sort();
    let span = (arrivals[arrivals.len() - 1] - arrivals[0]).num_milliseconds();
    // 40 events, burst 1 at 10/s: at least 39 intervals of 100 ms (minus timer slack).
    assert!(span >= 3_700, "40 events at 10/s arrived within {span} ms");
    for (k, at) in arrivals.iter().enumerate() {
        let min = (k as i64 - 1).max(0) * 100 - 150;
        assert!(
            (*at - arrivals[0]).num_milliseconds() >= min,
            "event {k} arrived early"
        );
    }

    // dead_letter: the excess is dead-lettered with reason rate_limited, nothing vanishes.
    let m = wait_for("org-drop finished", Duration::from_secs(30), || async {
        let m = consumer.metrics().await.ok()?;
        let dead = m
            .get("els_events_dead_lettered_total{reason=\"rate_limited\"}")
            .copied()
            .unwrap_or(0.0);
        let got: HashSet<String> = sim.event_ids().await.ok()?.into_iter().collect();
        let delivered = drop_ids.iter().filter(|id| got.contains(*id)).count();
        (delivered as f64 + dead == 50.0).then_some((delivered, dead))
    })
    .await
    .unwrap();
    println!(
        "limits: org-delay 40 events over {span} ms (>= 3.9 s at 10/s); org-drop {} delivered + {} dead-lettered rate_limited; org-free 200 events in {free_secs:.2} s",
        m.0, m.1
    );
    assert!(
        m.1 >= 30.0,
        "expected most of the 50-event burst over a burst of 5 to be dead-lettered"
    );
    let list = elsctl(
        &consumer,
        &[
            "--output",
            "json",
            "dlq",
            "list",
            "--org",
            "org-drop",
            "--reason",
            "rate_limited",
        ],
    );
    assert_eq!(list["matched"], json!(m.1 as u64));
    assert!(free_secs < 10.0, "unlimited org took {free_secs} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_survive_kill9_and_replay_with_original_ids() {
    let dir = test_dir("dlq");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--fault-status", "503"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let mut consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_RETRY_MAX_ELAPSED_MS", "2000"),
            ("ELS_RETRY_INITIAL_MS", "100"),
        ],
    )
    .unwrap();
    let ids = producer
        .post_all(&events_for("org-x", 300, 5), 300)
        .await
        .unwrap();

    // The SIEM stays down past the retry time: everything is dead-lettered.
    wait_for("300 dead letters", Duration::from_secs(60), || async {
        let m = consumer.metrics().await.ok()?;
        (m.get("els_events_dead_lettered_total{reason=\"retries_exhausted\"}")
            .copied()?
            == 300.0)
            .then_some(())
    })
    .await
    .unwrap();
    consumer.proc.kill9();
    consumer.restart().unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();

    let list = elsctl(
        &consumer,
        &["--output", "json", "dlq", "list", "--org", "org-x"],
    );
    assert_eq!(list["matched"], json!(300), "{list}");
    let record = &list["items"][0];
    assert_eq!(record["reason"], "retries_exhausted");
    assert_eq!(record["last_status"], 503);
    assert!(record["attempts"].as_u64().unwrap() >= 2);
    let table = Command::new(bin("elsctl"))
        .env("ELS_ADMIN_URL", &consumer.admin_url)
        .env("ELS_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["dlq", "list", "--org", "org-x", "--limit", "3"])
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&table.stdout));

    // The SIEM comes back; replay delivers every one with its original event_id.
    sim.set_faults(json!({})).await.unwrap();
    let replay = elsctl(
        &consumer,
        &[
            "--output", "json", "dlq", "replay", "--org", "org-x", "--rate", "1000",
        ],
    );
    assert_eq!(replay["replayed"], json!(300), "{replay}");
    wait_ids(&sim, &ids, Duration::from_secs(60)).await;
    let after = elsctl(&consumer, &["--output", "json", "dlq", "list"]);
    assert_eq!(after["total"], json!(0), "{after}");
    println!(
        "dead-letter round trip: 300 dead-lettered, survived kill -9, 300 replayed, store empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_is_isolated_and_an_auth_error_pauses_the_stream() {
    let dir = test_dir("poison");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    sim.set_faults(json!({"reject_containing": "POISON-FLOW"}))
        .await
        .unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut wrong_token = settings_for(&sim.hec_url());
    wrong_token["auth_headers"] = json!([{"name": "Authorization", "value": "Splunk wrong-token"}]);
    let settings = json!({
        "orgs": {"org-denied": wrong_token},
        "default": settings_for(&sim.hec_url()),
    });
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[("ELS_BATCH_LINGER_MS", "500")],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();

    let mut events = events_for("org-p", 100, 9);
    events[37]["flow_name"] = json!("POISON-FLOW");
    let ids = producer.post_all(&events, 100).await.unwrap();
    let good: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 37)
        .map(|(_, id)| id.clone())
        .collect();
    wait_ids(&sim, &good, Duration::from_secs(30)).await;
    let denied = producer
        .post_all(&events_for("org-denied", 5, 10), 5)
        .await
        .unwrap();

    // The poison event is dead-lettered alone; the wrong token pauses its stream after one
    // refused request and holds its 5 events (stream health), none dead-lettered.
    let m = wait_for(
        "the poison dead letter and the paused stream",
        Duration::from_secs(30),
        || async {
            let m = consumer.metrics().await.ok()?;
            let status: Value = http()
                .get(format!("{}/v1/orgs/org-denied/status", consumer.admin_url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let rejected = m
                .get("els_events_dead_lettered_total{reason=\"rejected\"}")
                .copied()?;
            (rejected == 1.0 && status["state"] == "paused" && status["held_events"] == 5)
                .then_some((m, status))
        },
    )
    .await
    .unwrap();
    let (m, status) = m;
    assert_eq!(status["reason"]["status"], 403, "{status}");
    assert_eq!(status["reason"]["text"], "Invalid token", "{status}");
    let poison = elsctl(
        &consumer,
        &["--output", "json", "dlq", "list", "--org", "org-p"],
    );
    assert_eq!(poison["matched"], 1, "{poison}");
    assert_eq!(poison["items"][0]["event"]["event_id"], json!(ids[37]));
    assert_eq!(poison["items"][0]["last_status"], 400);
    let auth = elsctl(
        &consumer,
        &["--output", "json", "dlq", "list", "--org", "org-denied"],
    );
    assert_eq!(
        auth["matched"], 0,
        "a paused stream's events were dead-lettered"
    );
    assert!(!denied.is_empty());
    let arrived: HashSet<String> = sim.event_ids().await.unwrap().into_iter().collect();
    assert!(!arrived.contains(&ids[37]));
    println!(
        "poison: 99 of 100 delivered, 1 dead-lettered (400); a wrong token paused its stream after one 403 with 5 events held, 0 dead-lettered; requests {}",
        m["els_siem_responses_total{status=\"200\"}"] + m.get("els_siem_responses_total{status=\"400\"}").copied().unwrap_or(0.0)
    );
}
