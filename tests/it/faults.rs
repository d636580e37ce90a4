//! Fault and bad-input suite: under load and faults nothing acknowledged is lost and nothing
//! leaks. Every scenario is bounded in count and time and prints its figures.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use els_producer::generate::demo_events;
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_consumer_five_times_during_50k_events() {
    let dir = test_dir("kill5");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "1000"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let mut consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    let events = demo_events(20, 50_000, 11);
    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        events,
        500,
        Duration::from_millis(60),
    ));
    // Kill points spread over the stream, jittered by the clock so runs differ.
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        % 2000) as u64;
    let mut recoveries = Vec::new();
    for k in 1..=5u64 {
        let target = k * 7_000 + jitter;
        wait_for(
            "progress before the next kill",
            Duration::from_secs(120),
            || async {
                let n = sim.stats().await.ok()?["events"].as_u64()?;
                (n >= target).then_some(())
            },
        )
        .await
        .unwrap();
        consumer.proc.kill9();
        let t = Instant::now();
        consumer.restart().unwrap();
        consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
        recoveries.push(t.elapsed().as_secs_f64());
    }
    let ids = posting.await.unwrap();
    assert_eq!(ids.len(), 50_000);
    let (found, dups) = wait_arrived_or_explain(
        &[&sim],
        &ids,
        Duration::from_secs(180),
        Some(Explain {
            broker: &broker,
            topic: TOPIC,
            partitions: 3,
            consumers: vec![&consumer],
        }),
    )
    .await;
    println!(
        "fault 1 (kill -9 x5, 50,000 events, 3 partitions, 20 orgs): received {found}, duplicates {dups}, lost 0, recovery s {recoveries:.1?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_during_produce_and_consume_loses_nothing_acknowledged() {
    let dir = test_dir("broker-restart");
    let mut broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[("ELS_ACK_TIMEOUT_MS", "3000")]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();

    let first = post_paced(
        producer.url.clone(),
        demo_events(10, 3000, 21),
        250,
        Duration::from_millis(50),
    )
    .await;
    broker.kill9();
    let down_at = Instant::now();
    // While the broker is down the ingest API refuses with 503 (never a false 202).
    let client = http();
    let r = client
        .post(format!("{}/v1/events", producer.url))
        .json(&demo_events(1, 5, 22))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "producer must not acknowledge while Kafka is down"
    );
    let body: Value = r.json().await.unwrap();
    println!("  broker down: producer answered 503: {}", body["message"]);
    broker.restart().unwrap();
    let second = post_paced(
        producer.url.clone(),
        demo_events(10, 3000, 23),
        250,
        Duration::from_millis(50),
    )
    .await;
    let mut ids = first;
    ids.extend(second);
    let (found, dups) = wait_arrived(&[&sim], &ids, Duration::from_secs(180)).await;
    println!(
        "fault 3 (broker kill -9 + restart on SQLite): acknowledged {}, received {found}, duplicates {dups}, lost 0, recovered in {:.1} s",
        ids.len(),
        down_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siem_faults_end_delivered_or_dead_lettered_within_limits() {
    let dir = test_dir("siem-faults");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let bursts = Sim::start(&dir, "sim-500", &[]).unwrap();
    bursts
        .set_faults(json!({"status": 500, "fail_next": 4}))
        .await
        .unwrap();
    let throttling = Sim::start(&dir, "sim-429", &[]).unwrap();
    throttling
        .set_faults(json!({"status": 429, "retry_after": "2", "fail_next": 2}))
        .await
        .unwrap();
    let hanging = Sim::start(&dir, "sim-hang", &[]).unwrap();
    hanging.set_faults(json!({"hang": true})).await.unwrap();
    let trickling = Sim::start(&dir, "sim-trickle", &[]).unwrap();
    trickling
        .set_faults(json!({"trickle": true}))
        .await
        .unwrap();
    let closed = format!("http://127.0.0.1:{}/services/collector/event", free_port());
    let mut refused = settings_for(&bursts.hec_url());
    refused["url"] = json!(closed);
    let settings = json!({"orgs": {
        "org-500": settings_for(&bursts.hec_url()),
        "org-429": settings_for(&throttling.hec_url()),
        "org-hang": settings_for(&hanging.hec_url()),
        "org-trickle": settings_for(&trickling.hec_url()),
        "org-refused": refused,
    }});
    let max_elapsed = 8_000u64;
    let request_timeout = 2_000u64;
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_RETRY_MAX_ELAPSED_MS", "8000"),
            ("ELS_RETRY_INITIAL_MS", "200"),
            ("ELS_REQUEST_TIMEOUT_MS", "2000"),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    let start = Instant::now();
    for org in [
        "org-500",
        "org-429",
        "org-hang",
        "org-trickle",
        "org-refused",
    ] {
        let mut events = demo_events(1, 40, 3);
        for e in &mut events {
            e["org_id"] = json!(org);
        }
        ids.insert(org, producer.post_all(&events, 40).await.unwrap());
    }
    // Everything finishes: nothing in flight, every event delivered or dead-lettered.
    let limit = Duration::from_millis(max_elapsed + 3 * request_timeout + 15_000);
    let m = wait_for("all events finished", limit, || async {
        let m = consumer.metrics().await.ok()?;
        let dead: f64 = m
            .iter()
            .filter(|(k, _)| k.starts_with("els_events_dead_lettered_total"))
            .map(|(_, v)| v)
            .sum();
        (m["els_events_delivered_total"] + dead == 200.0 && m["els_events_in_flight"] == 0.0)
            .then_some(m)
    })
    .await
    .unwrap();
    let took = start.elapsed().as_secs_f64();
    let (d500, _) = arrived(&[&bursts], &ids["org-500"]).await;
    let (d429, _) = arrived(&[&throttling], &ids["org-429"]).await;
    let (dtrickle, _) = arrived(&[&trickling], &ids["org-trickle"]).await;
    assert_eq!(d500, 40, "500 bursts are retried until delivered");
    assert_eq!(d429, 40, "429 with Retry-After is retried until delivered");
    assert_eq!(dtrickle, 40, "a trickling SIEM still accepted the events");
    let dead = m["els_events_dead_lettered_total{reason=\"retries_exhausted\"}"];
    assert_eq!(dead, 80.0, "hanging and refusing SIEMs end in dead letters");
    println!(
        "fault 4 (SIEM faults): 500-bursts {d500}/40 delivered, 429+Retry-After {d429}/40 delivered, trickle {dtrickle}/40 delivered, hang + connection refused 80 dead-lettered (retries_exhausted); all finished in {took:.1} s (limit {:.0} s); retries {}",
        limit.as_secs_f64(),
        m["els_delivery_retries_total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_dead_letter_disk_holds_offsets_and_reports_unready() {
    let dir = test_dir("disk-full");
    let mount = dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mount.clone());

    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    // The SIEM refuses every request for good (422, not a configuration error): the batch can
    // only end as dead letters. (A wrong token would pause the stream and hold them instead.)
    sim.set_faults(json!({"status": 422})).await.unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let data = mount.join("data");
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[("ELS_DATA_DIR", data.to_str().unwrap())],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();

    // Fill the disk, then send events that can only end as dead letters.
    let filler = mount.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut events = demo_events(1, 200, 31);
    for e in &mut events {
        e["org_id"] = json!("org-denied");
        e["folder_id_path"] = json!("x".repeat(2000));
    }
    let ids = producer.post_all(&events, 200).await.unwrap();
    let unready = wait_for(
        "consumer reports unready",
        Duration::from_secs(60),
        || async {
            let r = get(format!("{}/readyz", consumer.admin_url)).await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    let committed = broker.committed("els-consumer", TOPIC, 1).unwrap();
    let m = consumer.metrics().await.unwrap();
    println!(
        "  disk full: readyz 503 = {}, committed {committed:?}, store errors {}",
        unready.is_ok(),
        m["els_store_errors_total"]
    );
    assert!(unready.is_ok(), "consumer stayed ready with a full store");
    assert!(
        committed[&0] <= 0,
        "offsets moved while dead letters could not be written: {committed:?}"
    );
    assert!(m["els_store_errors_total"] >= 1.0);

    // sled keeps an I/O error sticky, so after 30 s of failures liveness fails too and the
    // orchestrator restarts the consumer.
    wait_for("liveness fails", Duration::from_secs(60), || async {
        let r = get(format!("{}/healthz", consumer.admin_url)).await.ok()?;
        (r.status() == 503).then_some(())
    })
    .await
    .unwrap();
    let committed = broker.committed("els-consumer", TOPIC, 1).unwrap();
    assert!(
        committed[&0] <= 0,
        "offsets moved while dead letters could not be written: {committed:?}"
    );

    // Space comes back, the consumer is restarted: the unfinished events are re-read and
    // dead-lettered, readiness and offsets recover.
    std::fs::remove_file(&filler).unwrap();
    let t = Instant::now();
    let mut consumer = consumer;
    consumer.restart().unwrap();
    wait_for(
        "200 dead letters written and ready again",
        Duration::from_secs(60),
        || async {
            let ready = get(format!("{}/readyz", consumer.admin_url))
                .await
                .ok()?
                .status()
                == 200;
            let list: Value = http()
                .get(format!(
                    "{}/v1/dead-letters?org=org-denied",
                    consumer.admin_url
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let stored: HashSet<&str> = list["items"]
                .as_array()?
                .iter()
                .filter_map(|r| r["event"]["event_id"].as_str())
                .collect();
            (ready && ids.iter().all(|id| stored.contains(id.as_str()))).then_some(())
        },
    )
    .await
    .unwrap();
    wait_for(
        "offset committed past the events",
        Duration::from_secs(30),
        || async { (broker.committed("els-consumer", TOPIC, 1).ok()?[&0] == 200).then_some(()) },
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 200);
    println!(
        "fault 5 (dead-letter disk full): offsets held at 0, /readyz 503 at once and /healthz 503 after 30 s while full; after space returned and a restart all 200 dead letters were stored in {:.1} s, lost 0",
        t.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_at_every_door_gets_4xx_without_crash_or_enqueue() {
    let dir = test_dir("bad-doors");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let mut producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &json!({"default": settings_for(&sim.hec_url())}),
        &[],
    )
    .unwrap();
    let client = http();
    let ingest = format!("{}/v1/events", producer.url);
    let before = broker.high_watermarks(TOPIC, 3).unwrap();
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!(
        "{}{}",
        "{\"a\":".repeat(5_000),
        "1".to_string() + &"}".repeat(5_000)
    );
    let mut cases: Vec<(String, reqwest::RequestBuilder, u16)> = vec![
        (
            "deeply nested array".into(),
            client
                .post(&ingest)
                .header("content-type", "application/json")
                .body(deep.clone()),
            400,
        ),
        (
            "deeply nested object".into(),
            client
                .post(&ingest)
                .header("content-type", "application/json")
                .body(deep_obj),
            400,
        ),
        (
            "NDJSON garbage".into(),
            client
                .post(&ingest)
                .header("content-type", "application/x-ndjson")
                .body("{}\n\u{0}\u{1}"),
            400,
        ),
        (
            "binary body".into(),
            client
                .post(&ingest)
                .header("content-type", "application/json")
                .body(vec![0xff, 0xfe, 0x00, 0x80]),
            400,
        ),
        (
            "no content type".into(),
            client.post(&ingest).body("{}"),
            415,
        ),
        (
            "xml".into(),
            client
                .post(&ingest)
                .header("content-type", "application/xml")
                .body("<e/>"),
            415,
        ),
        (
            "empty array".into(),
            client
                .post(&ingest)
                .header("content-type", "application/json")
                .body("[]"),
            400,
        ),
        ("wrong method".into(), client.get(&ingest), 405),
    ];
    let admin = &consumer.admin_url;
    for (name, path) in [
        ("no token", "/v1/dead-letters"),
        ("bad token", "/v1/dead-letters"),
        ("bad token replay", "/v1/dead-letters/replay"),
    ] {
        let mut rb = if path.ends_with("replay") {
            client.post(format!("{admin}{path}"))
        } else {
            client.get(format!("{admin}{path}"))
        };
        if name != "no token" {
            rb = rb.bearer_auth("not-the-token-at-all");
        }
        cases.push((format!("admin {name}"), rb, 401));
    }
    cases.push((
        "admin bad reason filter".into(),
        client
            .get(format!("{admin}/v1/dead-letters?reason=everything"))
            .bearer_auth(ADMIN_TOKEN),
        400,
    ));
    cases.push((
        "admin bad time filter".into(),
        client
            .get(format!("{admin}/v1/dead-letters?since=yesterday"))
            .bearer_auth(ADMIN_TOKEN),
        400,
    ));
    for (name, rb, want) in cases {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        println!(
            "  {name}: {status} {}",
            body.chars().take(100).collect::<String>()
        );
        assert_eq!(status, want, "{name}: {body}");
    }
    assert!(
        producer.proc.is_running() && consumer.proc.is_running(),
        "a process crashed on bad input"
    );
    assert_eq!(
        broker.high_watermarks(TOPIC, 3).unwrap(),
        before,
        "bad input was enqueued"
    );
    println!("fault 6 (bad input at every door): all refused with 4xx, no crash, nothing enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_killed_mid_stream_loses_nothing_and_keeps_org_order() {
    let dir = test_dir("two-instances");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 4).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "200000"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let a = ConsumerProc::start(&dir, "consumer-a", &broker, &settings, &[]).unwrap();
    let mut b = ConsumerProc::start(&dir, "consumer-b", &broker, &settings, &[]).unwrap();
    a.wait_ready(Duration::from_secs(30)).await.unwrap();
    b.wait_ready(Duration::from_secs(30)).await.unwrap();
    let events = demo_events(12, 20_000, 41);
    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        events,
        250,
        Duration::from_millis(40),
    ));
    wait_for("6000 delivered", Duration::from_secs(120), || async {
        (sim.stats().await.ok()?["events"].as_u64()? >= 6000).then_some(())
    })
    .await
    .unwrap();
    b.proc.kill9();
    let t = Instant::now();
    // The orchestrator restarts it; it joins the group again as a new member.
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.restart().unwrap();
    b.wait_ready(Duration::from_secs(60)).await.unwrap();
    let recovery = t.elapsed().as_secs_f64();
    let ids = posting.await.unwrap();
    let (found, dups) = wait_arrived_or_explain(
        &[&sim],
        &ids,
        Duration::from_secs(180),
        Some(Explain {
            broker: &broker,
            topic: TOPIC,
            partitions: 4,
            consumers: vec![&a, &b],
        }),
    )
    .await;

    // Per org, first deliveries arrive in the order the events were produced.
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut out_of_order = 0;
    for r in sim.records().await.unwrap() {
        let event = &r["body"]["event"];
        let id = event["event_id"].as_str().unwrap_or_default().to_string();
        if !seen.insert(id.clone()) {
            continue;
        }
        let org = event["org_hostname"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pos = position[id.as_str()];
        if last.get(&org).is_some_and(|p| *p > pos) {
            out_of_order += 1;
        }
        last.insert(org, pos);
    }
    println!(
        "fault 2 (two instances, one kill -9 mid-stream): received {found}, duplicates {dups}, lost 0, per-org order violations among first deliveries {out_of_order}, instance back in {recovery:.1} s"
    );
    assert_eq!(out_of_order, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_canary_and_ssrf_hold_under_faults() {
    const CANARY: &str = "CANARY-7f3a";
    let dir = test_dir("canary-faults");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let ok_sim = Sim::start(&dir, "sim-ok", &[]).unwrap();
    let busy = Sim::start(&dir, "sim-503", &["--fault-status", "503"]).unwrap();
    let hang = Sim::start(&dir, "sim-hang", &[]).unwrap();
    hang.set_faults(json!({"hang": true})).await.unwrap();
    // Reach the sims by name (allow-listed) so literal loopback addresses stay refused.
    let by_name = |sim: &Sim| sim.hec_url().replace("127.0.0.1", "localhost");
    let org = |url: String, token: &str| {
        json!({"url": url, "allow_http": true, "auth_headers": [
            {"name": "Authorization", "value": format!("Splunk {token}")},
            {"name": "X-Api-Key", "value": CANARY}
        ]})
    };
    let settings = json!({"orgs": {
        "org-denied": org(by_name(&ok_sim), &format!("{CANARY}-wrong")),
        "org-busy": org(by_name(&busy), HEC_TOKEN),
        "org-hang": org(by_name(&hang), HEC_TOKEN),
    }});
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_SSRF_ALLOW", "localhost"),
            ("ELS_RETRY_MAX_ELAPSED_MS", "3000"),
            // No probe of the paused org while the test looks (its 3 s window would be over
            // and a probe would dead-letter the held events).
            ("ELS_PROBE_INTERVAL_MS", "600000"),
            ("ELS_RETRY_INITIAL_MS", "100"),
            ("ELS_REQUEST_TIMEOUT_MS", "1000"),
            (
                "RUST_LOG",
                "debug,rdkafka=info,hyper=info,h2=info,reqwest=debug",
            ),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(30)).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    for name in ["org-denied", "org-busy", "org-hang"] {
        let mut events = demo_events(1, 30, 61);
        for e in &mut events {
            e["org_id"] = json!(name);
        }
        producer.post_all(&events, 30).await.unwrap();
    }
    // org-denied's wrong token pauses its stream (30 held); the other two dead-letter.
    wait_for(
        "60 dead letters, 30 held",
        Duration::from_secs(60),
        || async {
            let m = consumer.metrics().await.ok()?;
            let dead: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("els_events_dead_lettered_total"))
                .map(|(_, v)| v)
                .sum();
            let status: Value = http()
                .get(format!("{}/v1/orgs/org-denied/status", consumer.admin_url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (dead == 60.0 && status["state"] == "paused" && status["held_events"] == 30)
                .then_some(())
        },
    )
    .await
    .unwrap();

    // SSRF matrix, while the SIEMs are failing: every address is refused by test-event.
    let client = http();
    let admin = &consumer.admin_url;
    let mut refused = Vec::new();
    for host in [
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
    ] {
        let url = format!("http://{host}:8088/services/collector/event");
        let put = client
            .put(format!("{admin}/v1/orgs/org-ssrf/settings"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&org(url, CANARY))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200, "{host}: {}", put.text().await.unwrap());
        let test: Value = client
            .post(format!("{admin}/v1/orgs/org-ssrf/test"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let error = test["error"].as_str().unwrap_or_default().to_string();
        assert!(
            test["status"].is_null() && error.contains("refused"),
            "{host}: {test}"
        );
        refused.push(format!(
            "{host}: {}",
            error.split(':').nth(1).unwrap_or_default().trim()
        ));
    }

    // An issued token (org admin of org-busy) at work under the same faults: its secret is a
    // second canary.
    let issued: Value = client
        .post(format!("{admin}/v1/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"role": "org_admin", "orgs": ["org-busy"], "ttl_secs": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = issued["secret"]
        .as_str()
        .expect("a token secret")
        .to_string();
    let token_canary = secret.trim_start_matches("els_").to_string();
    for (method, path) in [
        (reqwest::Method::POST, "/v1/orgs/org-busy/test"),
        (
            reqwest::Method::GET,
            "/v1/dead-letters?org=org-busy&limit=1",
        ),
        (reqwest::Method::GET, "/v1/orgs/org-denied/settings"),
    ] {
        let r = client
            .request(method, format!("{admin}{path}"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401, "{path}");
    }
    let mut token_reads = Vec::new();
    for path in ["/v1/tokens", "/v1/audit"] {
        let r = client
            .get(format!("{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        token_reads.push(r.text().await.unwrap());
    }

    // No clear-text canary anywhere ELS writes or answers.
    let needle = CANARY.as_bytes();
    let metrics = get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dead: Value = client
        .get(format!("{admin}/v1/dead-letters"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead["total"], 60);
    let mut reads = vec![metrics, dead.to_string(), consumer.proc.log_text()];
    for name in ["org-denied", "org-busy", "org-hang", "org-ssrf"] {
        let r = client
            .get(format!("{admin}/v1/orgs/{name}/settings"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        reads.push(r.text().await.unwrap());
    }
    for (i, text) in reads.iter().enumerate() {
        assert!(!text.contains(CANARY), "canary in read #{i}");
    }
    let topic = crate::settings::settings_topic_records(&broker);
    assert!(topic.iter().all(|(_, v)| v
        .as_ref()
        .is_none_or(|v| !v.windows(needle.len()).any(|w| w == needle))));
    let files = crate::settings::files_containing(&dir.join("consumer-data"), needle);
    assert!(files.is_empty(), "canary in {files:?}");
    for (i, text) in reads.iter().chain(&token_reads).enumerate() {
        assert!(!text.contains(&token_canary), "token secret in read #{i}");
    }
    for topic in ["els.tokens", "els.audit"] {
        let (_, bytes) = crate::tokens::topic_bytes(&broker, topic);
        assert!(
            !bytes.windows(64).any(|w| w == token_canary.as_bytes()),
            "token secret in {topic}"
        );
    }
    let files =
        crate::settings::files_containing(&dir.join("consumer-data"), token_canary.as_bytes());
    assert!(files.is_empty(), "token secret in {files:?}");
    let reasons: Vec<String> = dead["by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "fault 7 (canary + SSRF under faults): 60 events dead-lettered ({}), 30 held by the paused stream; canary and an issued token's secret absent from log ({} KB at debug level), metrics, dead letters, settings, token and audit reads, {} settings topic records, the tokens and audit topics, sled files; SSRF refused under faults: {}",
        reasons.join(", "),
        consumer.proc.log_text().len() / 1024,
        topic.len(),
        refused.join("; ")
    );
}
