//! Issue 14, the ingest door: oversized events (3), slow and broken clients (4), duplicate
//! keys (5), control characters in ids (7) and integers beyond u64 (9), each against a real
//! producer and broker. Every load is bounded in count and time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use els_producer::generate::demo_events;
use els_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

const TOPIC: &str = "els.events";

async fn producer_stack(
    name: &str,
    partitions: i32,
    env: &[(&str, &str)],
) -> (PathBuf, Kafka, ProducerProc) {
    let dir = test_dir(name);
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, partitions).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, env).unwrap();
    (dir, broker, producer)
}

/// POST `body` with `content_type`; the status and the JSON answer (`Null` if none).
async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    match client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "transport_error": e.to_string() })),
    }
}

/// A demo event padded with a `pad` string so its topic record is exactly `size` bytes
/// (what the producer writes: the event as `ExecutionEvent` serialises it).
fn event_of_record_size(size: usize) -> Value {
    let mut v = demo_events(1, 1, 11).remove(0);
    v["event_id"] = json!(uuid::Uuid::new_v4().to_string());
    v["pad"] = json!("");
    let record_len = |v: &Value| {
        let event = els_model::ingest::parse_event(v.clone()).unwrap();
        serde_json::to_vec(&event).unwrap().len()
    };
    let base = record_len(&v);
    v["pad"] = json!("x".repeat(size - base));
    assert_eq!(record_len(&v), size);
    v
}

/// Finding 3: an event too large for a Kafka record gets 413 at once, never 503, and 40 such
/// requests do not make any of 400 concurrent normal requests fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_events_get_413_and_never_hurt_concurrent_requests() {
    let (_dir, broker, producer) = producer_stack("oversized", 3, &[]).await;
    let url = format!("{}/v1/events", producer.url);
    let client = http();
    let limit = els_producer::kafka::max_event_bytes(1_000_000);

    // The derived limit is exact: an event of `limit` bytes is acknowledged by the broker,
    // one byte more is refused before Kafka is asked.
    let at = event_of_record_size(limit);
    let (status, body) = post(
        &client,
        &url,
        "application/json",
        serde_json::to_vec(&at).unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let over = event_of_record_size(limit + 1);
    let (status, body) = post(
        &client,
        &url,
        "application/json",
        serde_json::to_vec(&over).unwrap(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "event_too_large");
    assert_eq!(body["field"], "body");
    assert_eq!(body["limit_bytes"], limit);
    assert_eq!(body["size_bytes"], limit + 1);
    println!(
        "record-size limit {limit} bytes: {limit} -> 202, {} -> 413",
        limit + 1
    );
    let before = broker.high_watermarks(TOPIC, 3).unwrap();

    // The finding's event: 1,000,440 bytes, under the 1 MiB body limit.
    let oversized = Arc::new(serde_json::to_vec(&event_of_record_size(1_000_440)).unwrap());
    let normal: Vec<Vec<u8>> = (0..400)
        .map(|i| serde_json::to_vec(&demo_events(5, 10, 1000 + i)).unwrap())
        .collect();
    let started = Instant::now();
    let load = async {
        let normal_slots = Arc::new(Semaphore::new(50));
        let oversized_slots = Arc::new(Semaphore::new(4));
        let mut normal_tasks = Vec::new();
        let mut oversized_tasks = Vec::new();
        for (i, body) in normal.into_iter().enumerate() {
            if i % 10 == 0 && oversized_tasks.len() < 40 {
                let (client, url, slots) = (client.clone(), url.clone(), oversized_slots.clone());
                let body = oversized.as_ref().clone();
                oversized_tasks.push(tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    post(&client, &url, "application/json", body).await
                }));
            }
            let (client, url, slots) = (client.clone(), url.clone(), normal_slots.clone());
            normal_tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                post(&client, &url, "application/json", body).await
            }));
        }
        let mut normal_statuses = Vec::new();
        for t in normal_tasks {
            normal_statuses.push(t.await.unwrap());
        }
        let mut oversized_statuses = Vec::new();
        for t in oversized_tasks {
            oversized_statuses.push(t.await.unwrap());
        }
        (normal_statuses, oversized_statuses)
    };
    let (normal, oversized) = tokio::time::timeout(Duration::from_secs(180), load)
        .await
        .expect("the load finished within 180 s");
    let count =
        |all: &[(u16, Value)], status: u16| all.iter().filter(|(s, _)| *s == status).count();
    println!(
        "during {} oversized requests ({} got 413, {} got 503), {} of {} normal concurrent \
         requests got 503 ({} got 202), in {:.1} s",
        oversized.len(),
        count(&oversized, 413),
        count(&oversized, 503),
        count(&normal, 503),
        normal.len(),
        count(&normal, 202),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(oversized.len(), 40);
    for (status, body) in &oversized {
        assert_eq!(*status, 413, "{body}");
        assert_eq!(body["error"], "event_too_large", "{body}");
    }
    assert_eq!(count(&normal, 503), 0);
    for (status, body) in &normal {
        assert_eq!(*status, 202, "{body}");
    }
    // Every normal event is on the topic, none of the oversized ones.
    assert_eq!(broker.high_watermarks(TOPIC, 3).unwrap(), before + 4000);
}

/// How a slow connection ended: seconds until the server closed it, and its first line.
async fn held_until_closed(addr: String, sent: &'static [u8]) -> (f64, String) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    let elapsed = match read {
        Ok(_) => started.elapsed().as_secs_f64(),
        Err(_) => f64::INFINITY, // still open after 15 s
    };
    let first = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (elapsed, first)
}

/// Finding 4: idle, slow-header and slow-body connections are closed within the timeouts
/// (2 s here; 10 s by default) while normal requests are served; an aborted or badly chunked
/// body is answered 400, never 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_within_the_timeouts_and_broken_bodies_get_400() {
    let timeout_s = 2.0;
    let (_dir, _broker, producer) = producer_stack(
        "slowclients",
        1,
        &[
            ("ELS_HEADER_READ_TIMEOUT_MS", "2000"),
            ("ELS_BODY_READ_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let addr = producer.url.trim_start_matches("http://").to_string();
    const SLOW_HEADER: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: appl";
    const SLOW_BODY: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event_ty";
    let kinds: [(&str, &'static [u8]); 3] = [
        ("idle", b""),
        ("slow-header", SLOW_HEADER),
        ("slow-body", SLOW_BODY),
    ];
    let mut tasks = Vec::new();
    for (kind, sent) in kinds {
        for _ in 0..100 {
            let addr = addr.clone();
            tasks.push((kind, tokio::spawn(held_until_closed(addr, sent))));
        }
    }
    // Meanwhile a normal request is served promptly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = Instant::now();
    let (status, body) = post(
        &http(),
        &format!("{}/v1/events", producer.url),
        "application/json",
        serde_json::to_vec(&demo_events(1, 3, 9)).unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let served = served.elapsed().as_secs_f64();
    let mut results: Vec<(&str, f64, String)> = Vec::new();
    for (kind, task) in tasks {
        let (elapsed, first) = task.await.unwrap();
        results.push((kind, elapsed, first));
    }
    for (kind, _) in kinds {
        let times: Vec<f64> = results
            .iter()
            .filter(|r| r.0 == kind)
            .map(|r| r.1)
            .collect();
        let max = times.iter().cloned().fold(0.0, f64::max);
        let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let open = times.iter().filter(|t| t.is_infinite()).count();
        println!(
            "{kind}: 100 connections, closed after {min:.2}-{max:.2} s (timeout {timeout_s} s), \
             {open} still open after 15 s"
        );
        assert_eq!(open, 0, "{kind} connections left open");
        assert!(
            max <= timeout_s + 4.0,
            "{kind}: closed only after {max:.2} s"
        );
        assert!(
            min >= timeout_s - 0.5,
            "{kind}: closed early, after {min:.2} s"
        );
    }
    for (kind, _, first) in &results {
        if *kind == "slow-body" {
            assert!(
                first.starts_with("HTTP/1.1 408"),
                "slow body answered {first:?}"
            );
        }
    }
    println!("a normal request during the slow load: 202 in {served:.2} s");

    // Broken bodies: 400, and counted as 400 (never as 413).
    const BAD_CHUNK: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    let (_, first) = held_until_closed(addr.clone(), BAD_CHUNK).await;
    assert!(
        first.starts_with("HTTP/1.1 400"),
        "badly chunked body answered {first:?}"
    );
    // Aborted: the client sends part of the body, then closes its side.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(SLOW_BODY).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    println!(
        "badly chunked body: {first}; aborted body: {}",
        answer.lines().next().unwrap_or("(no answer)")
    );
    let metrics = wait_for(
        "both broken bodies counted",
        Duration::from_secs(10),
        || async {
            let text = get(format!("{}/metrics", producer.url))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let m = parse_metrics(&text);
            (m.get("els_producer_requests_total{status=\"400\"}")
                .copied()
                == Some(2.0))
            .then_some(m)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        metrics.get("els_producer_requests_total{status=\"413\"}"),
        None,
        "{metrics:?}"
    );
    assert_eq!(
        metrics
            .get("els_producer_requests_total{status=\"408\"}")
            .copied(),
        Some(100.0)
    );
}

/// Findings 5 and 7: duplicate keys (any depth, object, array and NDJSON bodies) and control
/// characters in ids get 400 naming the key or field, and nothing is enqueued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_and_control_characters_are_refused_at_ingest() {
    let (_dir, broker, producer) = producer_stack("dupkeys", 3, &[]).await;
    let url = format!("{}/v1/events", producer.url);
    let client = http();
    let good = demo_events(1, 1, 21).remove(0);
    let line = serde_json::to_string(&good).unwrap();
    let org = good["org_id"].as_str().unwrap().to_string();
    let dup_org = line.replacen(
        &format!("\"org_id\":\"{org}\""),
        &format!("\"org_id\":\"{org}\",\"org_id\":\"org-other\""),
        1,
    );
    assert_ne!(dup_org, line);
    let dup_type = line.replacen('{', "{\"event_type\":\"FLOW_FAILED\",", 1);
    let dup_nested = line.replacen(
        '{',
        "{\"meta\":{\"items\":[{\"k\":1},{\"k\":1,\"k\":2}]},",
        1,
    );
    let dup_error = line.replacen(
        '{',
        "{\"error\":{\"error_code\":\"E1\",\"error_message\":\"m\",\"error_code\":\"E2\"},",
        1,
    );
    let with = |field: &str, value: &str| {
        let mut v = good.clone();
        v[field] = json!(value);
        serde_json::to_string(&v).unwrap()
    };
    const JSON: &str = "application/json";
    const NDJSON: &str = "application/x-ndjson";
    // (what, content type, body, expected error, expected field)
    let cases: Vec<(&str, &str, String, &str, String)> = vec![
        (
            "org_id twice",
            JSON,
            dup_org.clone(),
            "duplicate_key",
            "org_id".into(),
        ),
        (
            "event_type twice in a batch",
            JSON,
            format!("[{line},{dup_type}]"),
            "duplicate_key",
            "events[1].event_type".into(),
        ),
        (
            "nested, NDJSON",
            NDJSON,
            format!("{line}\n{dup_nested}\n"),
            "duplicate_key",
            "events[1].meta.items[1].k".into(),
        ),
        (
            "inside error, array",
            JSON,
            format!("[{dup_error}]"),
            "duplicate_key",
            "events[0].error.error_code".into(),
        ),
        (
            "newline and ANSI in org_id",
            JSON,
            with(
                "org_id",
                "org-1\n2026-01-01T00:00:00Z WARN \u{1b}[31mforged",
            ),
            "invalid_field",
            "org_id".into(),
        ),
        (
            "CR in flow_id",
            JSON,
            with("flow_id", "flo\r1"),
            "invalid_field",
            "flow_id".into(),
        ),
        (
            "NUL in user_id",
            JSON,
            with("user_id", "u\u{0}1"),
            "invalid_field",
            "user_id".into(),
        ),
        (
            "tab in org_hostname",
            JSON,
            with("org_hostname", "a\tb.example.com"),
            "invalid_field",
            "org_hostname".into(),
        ),
        (
            "escape in a batch's parent_flow_id",
            NDJSON,
            format!("{line}\n{}\n", with("parent_flow_id", "p\u{1b}")),
            "invalid_field",
            "events[1].parent_flow_id".into(),
        ),
    ];
    let before = broker.high_watermarks(TOPIC, 3).unwrap();
    for (what, ctype, body, kind, field) in cases {
        let (status, answer) = post(&client, &url, ctype, body.into_bytes()).await;
        println!("{what}: {status} {}", answer["message"]);
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["error"], kind, "{what}: {answer}");
        assert_eq!(answer["field"], field.as_str(), "{what}: {answer}");
    }
    assert_eq!(
        broker.high_watermarks(TOPIC, 3).unwrap(),
        before,
        "a refused request enqueued events"
    );
    let (status, answer) = post(&client, &url, JSON, line.into_bytes()).await;
    assert_eq!(status, 202, "{answer}");
}

/// Finding 9: integers beyond u64 (and decimals beyond f64) in pass-through fields reach the
/// topic with every digit, not as floats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_u64_pass_through_to_the_topic_exactly() {
    let (_dir, broker, producer) = producer_stack("bigints", 1, &[]).await;
    let good = demo_events(1, 1, 31).remove(0);
    let id = good["event_id"].as_str().unwrap().to_string();
    let exact = [
        "\"big\":123456789012345678901234567890",
        "\"neg\":-18446744073709551617",
        "\"nested\":{\"n\":[18446744073709551616]}",
        "\"dec\":0.1000000000000000055511151231257827",
    ];
    let body =
        serde_json::to_string(&good)
            .unwrap()
            .replacen('{', &format!("{{{},", exact.join(",")), 1);
    let (status, answer) = post(
        &http(),
        &format!("{}/v1/events", producer.url),
        "application/json",
        body.into_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "els-tests-raw-events")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut record = None;
    while record.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if text.contains(&id) {
                record = Some(text);
            }
        }
    }
    let record = record.expect("the event on the topic within 30 s");
    for digits in exact {
        assert!(
            record.contains(digits),
            "{digits} became something else: {record}"
        );
    }
    println!("on the topic, exactly: {}", exact.join(", "));
}
