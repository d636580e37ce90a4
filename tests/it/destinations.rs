//! Several streams per org and the destinations beyond Splunk (issue 17): a HEC stream and
//! an NDJSON stream of one org, the NDJSON SIEM down for a minute without delaying the HEC
//! stream; Elasticsearch `_bulk` with failed items; OAuth2 tokens that expire every 30 s.
//! siem-sim plays each destination as its documentation says.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";

async fn api(
    consumer: &ConsumerProc,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http()
        .request(method, format!("{}{path}", consumer.admin_url))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// PUT a stream's settings; panics unless stored.
async fn put_stream(consumer: &ConsumerProc, org: &str, stream: &str, settings: Value) {
    let path = format!("/v1/orgs/{org}/streams/{stream}");
    let (status, body) = api(consumer, reqwest::Method::PUT, &path, Some(settings)).await;
    assert_eq!(status, 200, "PUT {path}: {body}");
}

/// The dead letters of `org` (all reasons).
async fn dead_letters(consumer: &ConsumerProc, org: &str) -> Value {
    let path = format!("/v1/dead-letters?org={org}");
    api(consumer, reqwest::Method::GET, &path, None).await.1
}

/// `rounds` posts of `per_round` events of `org`, `gap` apart; the events posted with ids.
async fn paced(
    producer: &ProducerProc,
    org: &str,
    rounds: usize,
    per_round: usize,
    gap: Duration,
    seed: u64,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let batch = events_for(org, per_round, seed * 10_000 + round as u64);
        let ids = producer.post_all(&batch, per_round).await.unwrap();
        out.extend(ids.into_iter().zip(batch));
        tokio::time::sleep(gap).await;
    }
    out
}

/// Ids of the events of types in `types`.
fn of_types(events: &[(String, Value)], types: &[&str]) -> Vec<String> {
    events
        .iter()
        .filter(|(_, e)| types.iter().any(|t| e["event_type"] == *t))
        .map(|(id, _)| id.clone())
        .collect()
}

fn ids(events: &[(String, Value)]) -> Vec<String> {
    events.iter().map(|(id, _)| id.clone()).collect()
}

/// One org, two streams: HEC (all events) and NDJSON (failures and completions only). Both
/// receive exactly their selected events; the NDJSON SIEM down for 60 s pauses nothing of the
/// HEC stream (its p99 beside its solo baseline) and loses nothing once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_and_ndjson_streams_of_one_org_and_a_down_ndjson_siem_spares_the_hec_stream() {
    let dir = test_dir("streams-two");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let hec = Sim::start(&dir, "siem-sim-hec", &[]).unwrap();
    let mut lake = Sim::start(&dir, "siem-sim-ndjson", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let consumer =
        ConsumerProc::start(&dir, "consumer", &broker, &json!({"orgs": {}}), &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let org = "org-1";
    put_stream(&consumer, org, "default", settings_for(&hec.hec_url())).await;
    let selected = ["FLOW_FAILED", "FLOW_COMPLETE"];
    put_stream(
        &consumer,
        org,
        "lake",
        json!({
            "name": "Data lake",
            "url": format!("{}/http/ndjson", lake.url),
            "endpoint": "http",
            "http": {"format": "ndjson", "max_events": 200},
            "events": selected,
            "auth_headers": [{"name": "Authorization", "value": format!("Bearer {HEC_TOKEN}")}],
            "allow_http": true
        }),
    )
    .await;
    let (_, list) = api(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/orgs/{org}/streams"),
        None,
    )
    .await;
    let listed: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed, ["default", "lake"], "{list}");
    assert_eq!(
        list["streams"][1]["settings"]["auth_headers"][0]["value"],
        "********"
    );

    // Solo baseline of the HEC stream (and both streams healthy).
    let solo = paced(&producer, org, 40, 10, Duration::from_millis(250), 1).await;
    let (found, _) = wait_arrived(&[&hec], &ids(&solo), Duration::from_secs(60)).await;
    assert_eq!(found, solo.len());
    let solo_lake = of_types(&solo, &selected);
    let (found, _) = wait_arrived(&[&lake], &solo_lake, Duration::from_secs(60)).await;
    assert_eq!(found, solo_lake.len());
    let base = latencies(&hec, &ids(&solo).into_iter().collect()).await;

    // The NDJSON SIEM down for 60 s while the org keeps sending.
    lake.kill9();
    let outage = Instant::now();
    let during = paced(&producer, org, 240, 10, Duration::from_millis(250), 2).await;
    let (found, _) = wait_arrived(&[&hec], &ids(&during), Duration::from_secs(60)).await;
    assert_eq!(found, during.len(), "the HEC stream lost events");
    let noisy = latencies(&hec, &ids(&during).into_iter().collect()).await;
    let (_, lake_state) = api(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/orgs/{org}/streams/lake/status"),
        None,
    )
    .await;
    let (_, hec_state) = api(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/orgs/{org}/status"),
        None,
    )
    .await;
    assert_eq!(hec_state["state"], "active", "{hec_state}");
    assert_ne!(lake_state["state"], "active", "{lake_state}");
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed())).await;
    lake.restart().unwrap();
    let back = Instant::now();
    // (The restarted siem-sim starts empty: it had the solo phase's events before.)
    let want: Vec<String> = of_types(&during, &selected);
    let explain = Explain {
        broker: &broker,
        topic: TOPIC,
        partitions: 1,
        consumers: vec![&consumer],
    };
    let (found, _) =
        wait_arrived_or_explain(&[&lake], &want, Duration::from_secs(120), Some(explain)).await;
    assert_eq!(found, want.len(), "the NDJSON stream lost events");
    let took = back.elapsed();

    // Each stream got exactly its selection: HEC everything, NDJSON only the two types.
    let all: HashSet<String> = ids(&solo).into_iter().chain(ids(&during)).collect();
    let lake_total = solo_lake.len() + want.len();
    let at_hec: HashSet<String> = hec.event_ids().await.unwrap().into_iter().collect();
    let at_lake: HashSet<String> = lake.event_ids().await.unwrap().into_iter().collect();
    assert_eq!(at_hec, all);
    let want: HashSet<String> = want.into_iter().collect();
    assert_eq!(at_lake, want, "the NDJSON stream got other types");
    let dead = dead_letters(&consumer, org).await;
    assert_eq!(dead["matched"], 0, "{dead}");
    let stats = lake.stats().await.unwrap();
    let (p_base, p_noisy) = (p99(&base), p99(&noisy));
    // (Requests and events per request: after the restart.)
    println!(
        "two streams of {org}: HEC got {} events, NDJSON {} (after its restart {} requests, {:.1} events each) of \
         {} posted; NDJSON SIEM down 60 s (its stream {}: {}), all its events delivered {} s after \
         it came back, 0 dead letters; HEC p99 solo {p_base} ms, during the outage {p_noisy} ms \
         ({} events)",
        at_hec.len(),
        lake_total,
        stats["receivers"]["http_ndjson"]["requests"],
        at_lake.len() as f64
            / stats["receivers"]["http_ndjson"]["requests"]
                .as_f64()
                .unwrap_or(1.0)
                .max(1.0),
        all.len(),
        lake_state["state"],
        lake_state["reason"]["text"],
        took.as_secs(),
        noisy.len()
    );
    // The floor covers the 50 ms linger plus the scheduling of two end-to-end tests sharing
    // two cores: with busy streams keeping the 50 ms linger, a CI run measured 216 ms during
    // the outage against 90 ms solo. A neighbour held up by the down stream's retries or
    // pause would wait seconds.
    assert!(
        p_noisy <= 2 * p_base.max(150),
        "HEC p99 {p_noisy} ms > 2 x max(solo {p_base} ms, 150 ms)"
    );
}

/// Elasticsearch `_bulk`: 3 of 500 items answered 429 are the only ones sent again; a
/// document with a mapping error is dead-lettered alone; a duplicate `create` (409) counts as
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_with_three_failed_items_resends_only_those_and_dead_letters_a_mapping_error_alone() {
    let dir = test_dir("bulk");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let es = Sim::start(&dir, "siem-sim-es", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &json!({"orgs": {}}),
        // One worker batch holds all 500 events.
        &[("ELS_BATCH_LINGER_MS", "2000")],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let org = "org-es";
    put_stream(
        &consumer,
        org,
        "elastic",
        json!({
            "url": format!("{}/_bulk", es.url),
            "endpoint": "elasticsearch",
            "elasticsearch": {"index": "els-events", "op_type": "create", "max_events": 500},
            "auth_headers": [{"name": "Authorization", "value": format!("ApiKey {HEC_TOKEN}")}],
            "allow_http": true
        }),
    )
    .await;
    let events = events_for(org, 500, 7);
    let bad = events[123]["event_id"].as_str().unwrap().to_string();
    es.set_faults(
        json!({"bulk_rejections": {"count": 3, "within": 500}, "mapping_error_ids": [bad]}),
    )
    .await
    .unwrap();
    let posted = producer.post_all(&events, 500).await.unwrap();
    let good: Vec<String> = posted.iter().filter(|id| **id != bad).cloned().collect();
    let (found, _) = wait_arrived(&[&es], &good, Duration::from_secs(60)).await;
    assert_eq!(found, 499);
    let dead = wait_for(
        "the mapping error dead-lettered",
        Duration::from_secs(30),
        || async {
            let d = dead_letters(&consumer, org).await;
            (d["matched"] == 1).then_some(d)
        },
    )
    .await
    .unwrap();
    let record = &dead["items"][0];
    assert_eq!(record["event"]["event_id"], bad.as_str(), "{record}");
    assert_eq!(record["reason"], "rejected");
    assert_eq!(record["stream"], "elastic");
    assert_eq!(record["last_status"], 400);
    let stats = es.stats().await.unwrap();
    let bulk = &stats["receivers"]["elastic_bulk"];
    let items = &bulk["items_by_status"];
    // 500 items, then the 3 rejected ones again: 503 items in all, the bad one once.
    assert_eq!(items["429"], 3, "{bulk}");
    assert_eq!(items["400"], 1, "{bulk}");
    assert_eq!(items["201"], 499, "{bulk}");
    // A replay of the stored events: every create answers 409, nothing is dead-lettered.
    let again: Vec<Value> = events
        .iter()
        .filter(|e| e["event_id"] != bad.as_str())
        .take(50)
        .cloned()
        .collect();
    es.set_faults(json!({})).await.unwrap();
    producer.post_all(&again, 50).await.unwrap();
    wait_for(
        "50 duplicates answered 409",
        Duration::from_secs(30),
        || async {
            let s = es.stats().await.ok()?;
            (s["receivers"]["elastic_bulk"]["items_by_status"]["409"] == 50).then_some(())
        },
    )
    .await
    .unwrap();
    let m = consumer.metrics().await.unwrap();
    println!(
        "_bulk: 500 events in {} requests; items by status {items}; the 3 items answered 429 \
         were the only ones sent again, the mapping error dead-lettered alone (stream elastic); \
         50 re-sent events answered 409 and counted delivered (delivered {}, dead-lettered {})",
        bulk["requests"],
        metric_total(&m, "els_events_delivered_total"),
        metric_total(&m, "els_events_dead_lettered_total"),
    );
    assert_eq!(dead_letters(&consumer, org).await["matched"], 1);
}

/// OAuth2 client credentials (Microsoft Sentinel's Logs Ingestion API with Entra ID tokens):
/// tokens living 30 s, 10,000 events over two minutes, all delivered, no dead letter for a
/// 401; the client secret is nowhere in clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_expiring_every_30_s_deliver_everything_and_the_secret_stays_hidden() {
    const SECRET: &str = "CANARY-oauth-5e1f";
    let dir = test_dir("oauth2");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let client = format!("app-1:{SECRET}");
    let sim = Sim::start(
        &dir,
        "siem-sim-sentinel",
        &["--oauth-client", &client, "--oauth-token-ttl-secs", "30"],
    )
    .unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let consumer =
        ConsumerProc::start(&dir, "consumer", &broker, &json!({"orgs": {}}), &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let org = "org-sentinel";
    put_stream(
        &consumer,
        org,
        "sentinel",
        json!({
            "url": format!("{}/dataCollectionRules/dcr-1/streams/Custom-ELS?api-version=2023-01-01", sim.url),
            "endpoint": "http",
            "http": {"format": "json_array", "max_events": 500},
            "oauth2": {
                "token_url": format!("{}/tenant-1/oauth2/v2.0/token", sim.url),
                "client_id": "app-1",
                "client_secret": SECRET,
                "scope": "https://monitor.azure.com/.default"
            },
            "allow_http": true
        }),
    )
    .await;
    // 10,000 events over two minutes: 100 every 1.2 s.
    let started = Instant::now();
    let posted = paced(&producer, org, 100, 100, Duration::from_millis(1200), 3).await;
    let (found, _) = wait_arrived(&[&sim], &ids(&posted), Duration::from_secs(90)).await;
    let elapsed = started.elapsed();
    assert_eq!(found, 10_000, "lost events");
    let dead = dead_letters(&consumer, org).await;
    assert_eq!(dead["matched"], 0, "{dead}");
    let stats = sim.stats().await.unwrap();
    let issued = stats["oauth_tokens_issued"].as_u64().unwrap_or(0);
    assert!(issued >= 4, "tokens issued: {stats}");

    // The secret: not in the consumer's log, metrics, API answers or the settings topic.
    let (_, shown) = api(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/orgs/{org}/streams/sentinel"),
        None,
    )
    .await;
    assert_eq!(shown["oauth2"]["client_secret"], "********", "{shown}");
    let (_, list) = api(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/orgs/{org}/streams"),
        None,
    )
    .await;
    let metrics = get(format!("{}/metrics", consumer.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, text) in [
        ("log", consumer.proc.log_text()),
        ("metrics", metrics),
        ("GET stream", shown.to_string()),
        ("GET streams", list.to_string()),
    ] {
        assert!(!text.contains(SECRET), "the client secret is in the {what}");
    }
    let topic: Vec<u8> = crate::settings::settings_topic_records(&broker)
        .into_iter()
        .flat_map(|(k, v)| k.into_iter().chain(v.into_iter().flatten()))
        .collect();
    assert!(!topic.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    let hits = crate::settings::files_containing(&dir.join("consumer-data"), SECRET.as_bytes());
    assert!(hits.is_empty(), "the client secret in sled files: {hits:?}");
    println!(
        "OAuth2 (tokens living 30 s): 10,000 events posted over {:.0} s all delivered ({} requests), \
         {issued} tokens issued, {} requests with an expired token answered 401 and re-sent, 0 dead \
         letters; the client secret absent from the log, metrics, API answers, the settings topic \
         and the sled files",
        elapsed.as_secs_f64(),
        stats["receivers"]["logs_ingestion"]["requests"],
        stats["oauth_expired_tokens"],
    );
}
