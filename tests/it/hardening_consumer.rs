//! Issue 14, the consumer's doors: a dead letter whose event is nested to the depth limit
//! stays listable, showable, replayable and purgeable (finding 1); a kept secret cannot follow
//! a changed destination, and credential or control-character headers are refused naming
//! the field (findings 2 and 9), all through the admin API of a real consumer.

use std::time::Duration;

use els_tests::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";
/// The auth header secret that must never come back.
const CANARY: &str = "CANARY-9c41";

/// The deepest `nest` ingest accepts (the event object is one level more: 127 of serde_json's
/// 128); the SIEM's HEC envelope adds a level and siem-sim refuses it with 400.
const NEST: usize = 126;

/// A dead letter as the API shows it. The event is kept as raw text: the answer nests it
/// deeper than a plain `Value` parse allows.
#[derive(Debug, Deserialize)]
struct Letter {
    id: u64,
    org_id: String,
    reason: String,
    last_status: Option<u16>,
    event: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
struct Letters {
    total: usize,
    matched: usize,
    items: Vec<Letter>,
}

/// An admin API call: (status, body text).
async fn call(
    consumer: &ConsumerProc,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = http()
        .request(method, format!("{}{path}", consumer.admin_url))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn letters(consumer: &ConsumerProc, query: &str) -> Letters {
    let (status, text) = call(
        consumer,
        reqwest::Method::GET,
        &format!("/v1/dead-letters{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "GET /v1/dead-letters{query}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:.300}"))
}

/// How deep the `nest` of a dead letter's event is, and its `event_id`.
fn nest_and_id(letter: &Letter) -> (usize, String) {
    let text = letter.event.get();
    let nest = text.find(r#""nest":"#).expect("a nest") + r#""nest":"#.len();
    let depth = text[nest..].bytes().take_while(|b| *b == b'[').count();
    let event: Value = serde_json::from_str(text).expect("the event parses on its own");
    (depth, event["event_id"].as_str().unwrap_or_default().into())
}

async fn dead_lettered(consumer: &ConsumerProc, want: f64) {
    wait_for("dead letters", Duration::from_secs(60), || async {
        let m = consumer.metrics().await.ok()?;
        (m.get("els_events_dead_lettered_total{reason=\"rejected\"}")
            .copied()
            .unwrap_or(0.0)
            >= want)
            .then_some(())
    })
    .await
    .unwrap();
}

/// Finding 1: an event `nest`ed 126 arrays deep is dead-lettered (siem-sim answers 400);
/// the store then lists it (the API answered 500 for every list, show and purge before),
/// shows it, replays it and purges it, and the console's panel reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_at_the_depth_limit_never_poisons_the_dead_letters() {
    let dir = test_dir("deep-dead-letter");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();

    let mut deep = els_producer::generate::demo_events(1, 1, 14).remove(0);
    deep["org_id"] = json!("org-deep");
    deep["nest"] = (0..NEST).fold(json!([]), |inner, _| json!([inner]))[0].clone();
    // One object per request: an array body would add the level ingest refuses.
    let r = http()
        .post(format!("{}/v1/events", producer.url))
        .json(&deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["event_ids"][0].as_str().unwrap().to_string();
    // A plain event of another org, delivered alongside.
    let mut plain = els_producer::generate::demo_events(1, 1, 15);
    plain[0]["org_id"] = json!("org-plain");
    let plain_ids = producer.post_all(&plain, 1).await.unwrap();
    dead_lettered(&consumer, 1.0).await;

    let listed = letters(&consumer, "").await;
    assert_eq!((listed.total, listed.matched), (1, 1), "{listed:?}");
    let letter = &listed.items[0];
    assert_eq!(
        (
            letter.org_id.as_str(),
            letter.reason.as_str(),
            letter.last_status
        ),
        ("org-deep", "rejected", Some(400))
    );
    assert_eq!(nest_and_id(letter), (NEST, id.clone()));
    assert_eq!(letters(&consumer, "?org=org-deep").await.matched, 1);

    let (status, text) = call(
        &consumer,
        reqwest::Method::GET,
        &format!("/v1/dead-letters/{}", letter.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text:.300}");
    let shown: Letter = serde_json::from_str(&text).unwrap();
    assert_eq!(nest_and_id(&shown), (NEST, id.clone()));
    let (status, summary) = call(
        &consumer,
        reqwest::Method::GET,
        "/console/api/dead-letters?org=org-deep",
        None,
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["count"], 1, "{summary}");

    // Replay re-publishes the same event; the SIEM refuses it again: dead-lettered anew.
    let (status, text) = call(
        &consumer,
        reqwest::Method::POST,
        "/v1/dead-letters/replay",
        Some(json!({"org": "org-deep"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let replay: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(replay["replayed"], 1, "{replay}");
    dead_lettered(&consumer, 2.0).await;
    let again = wait_for(
        "the replayed dead letter",
        Duration::from_secs(30),
        || async {
            let l = letters(&consumer, "?org=org-deep").await;
            (l.matched == 1 && l.items[0].id != letter.id).then_some(l)
        },
    )
    .await
    .unwrap();
    assert_eq!(nest_and_id(&again.items[0]), (NEST, id.clone()));

    // elsctl reads the deep record too (its JSON answers are not cut at serde's 128 levels).
    let out = std::process::Command::new(bin("elsctl"))
        .env("ELS_ADMIN_URL", &consumer.admin_url)
        .env("ELS_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["--output", "json", "dlq", "list", "--org", "org-deep"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains(&id),
        "elsctl dlq list: {listed:.300} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Purge one record by id (works without reading it), then by filter: nothing is left.
    let (status, text) = call(
        &consumer,
        reqwest::Method::DELETE,
        &format!("/v1/dead-letters/{}", again.items[0].id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let purge: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(purge, json!({"purged": 1, "remaining": 0}));
    let (status, text) = call(
        &consumer,
        reqwest::Method::DELETE,
        "/v1/dead-letters?org=org-deep",
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let purge: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(purge, json!({"purged": 0, "remaining": 0}));
    assert_eq!(letters(&consumer, "").await.total, 0);
    let arrived = sim.event_ids().await.unwrap();
    assert!(arrived.contains(&plain_ids[0]) && !arrived.contains(&id));
    println!(
        "dead letter of an event nested {NEST} deep: listed (API and elsctl), shown, replayed \
         (dead-lettered again), purged by id; list/show/purge all 200"
    );
}

/// Finding 2 and 9: a PUT that keeps a stored auth header through `********` while the
/// scheme, host or port changes is refused naming the field, so the secret never reaches the
/// new destination; credential-named custom headers and control characters in header values
/// get 400 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_secrets_stay_with_their_destination_and_header_fields_are_named() {
    let dir = test_dir("kept-secrets");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let siem = Sim::start(&dir, "siem-sim", &["--token", CANARY]).unwrap();
    let echo = Sim::start(&dir, "echo-sim", &[]).unwrap();
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &json!({}), &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let path = "/v1/orgs/org-s/settings";
    let put = |body: Value| call(&consumer, reqwest::Method::PUT, path, Some(body));

    let stored = json!({
        "url": siem.hec_url(), "allow_http": true,
        "auth_headers": [{"name": "Authorization", "value": format!("Splunk {CANARY}")}],
    });
    let (status, text) = put(stored).await;
    assert_eq!(status, 200, "{text}");
    let keep = |url: String| {
        json!({"url": url, "allow_http": true,
               "auth_headers": [{"name": "Authorization", "value": "********"}]})
    };
    // Same destination, another path: the placeholder keeps the secret.
    let (status, text) = put(keep(format!("{}/services/collector", siem.url))).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = put(keep(siem.hec_url())).await;
    assert_eq!(status, 200, "{text}");

    // Another port (the echo server), another host (same server), another scheme.
    for url in [
        echo.hec_url(),
        siem.hec_url().replace("127.0.0.1", "localhost"),
        siem.hec_url().replace("127.0.0.1", "[::1]"),
        siem.hec_url().replace("http://", "https://"),
    ] {
        let (status, text) = put(keep(url.clone())).await;
        println!("placeholder kept towards {url}: {status} {text}");
        assert_eq!(status, 400, "{url}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["field"], "auth_headers[0].value", "{answer}");
        assert!(!text.contains(CANARY), "{text}");
    }
    // Nothing was stored: the test event still goes to the SIEM the secret was entered for.
    let (status, text) = call(&consumer, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200);
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["url"], json!(siem.hec_url()), "{shown}");
    let (status, text) = call(
        &consumer,
        reqwest::Method::POST,
        "/v1/orgs/org-s/test",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(CANARY), "{text}");
    let test: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        test["status"], 200,
        "the stored secret still opens the SIEM: {test}"
    );
    assert_eq!(echo.stats().await.unwrap()["requests"], 0);
    // Entered again, the secret may go to the new destination.
    let mut moved = keep(echo.hec_url());
    moved["auth_headers"][0]["value"] = json!("Splunk for-the-echo");
    let (status, text) = put(moved).await;
    assert_eq!(status, 200, "{text}");

    let with_headers = |custom: Value, auth: Value| {
        json!({"url": siem.hec_url(), "allow_http": true,
               "custom_headers": custom, "auth_headers": auth})
    };
    let real = json!([{"name": "Authorization", "value": "Splunk x"}]);
    let cases = [
        (
            with_headers(json!([{"name": "Cookie", "value": "sid=1"}]), real.clone()),
            "custom_headers[0].name",
        ),
        (
            with_headers(
                json!([{"name": "X-Env", "value": "a"}, {"name": "authorization", "value": "b"}]),
                real.clone(),
            ),
            "custom_headers[1].name",
        ),
        (
            with_headers(
                json!([{"name": "Proxy-Authorization", "value": "Basic x"}]),
                real.clone(),
            ),
            "custom_headers[0].name",
        ),
        (
            with_headers(json!([{"name": "X-Env", "value": "a\u{1}b"}]), real.clone()),
            "custom_headers[0].value",
        ),
        (
            with_headers(json!([{"name": "X-Env", "value": "a\u{7f}"}]), real.clone()),
            "custom_headers[0].value",
        ),
        (
            with_headers(
                json!([]),
                json!([{"name": "Authorization", "value": "Splunk \u{1b}[31m"}]),
            ),
            "auth_headers[0].value",
        ),
    ];
    for (body, field) in cases {
        let (status, text) = put(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["field"], field, "{body} -> {answer}");
    }
    println!(
        "a kept secret is refused for 4 changed destinations (field auth_headers[0].value); \
         the test event still reached the original SIEM, the echo server got 0 requests; \
         6 bad headers refused naming the field"
    );
}

/// Finding 4 (admin side): idle and slow-header connections to the admin API are closed
/// within its header read timeout, and a request without the token is refused before its
/// body is read (the token layer runs before any extractor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_closes_slow_clients_and_checks_the_token_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("admin-slow");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic("els.events", 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[("ELS_ADMIN_HEADER_READ_TIMEOUT_MS", "1000")],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let addr = consumer.admin_url.trim_start_matches("http://").to_string();

    let started = std::time::Instant::now();
    let mut held = Vec::new();
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /v1/dead-letters HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(s);
    }
    let mut closed = 0;
    for mut s in held {
        let mut buf = Vec::new();
        if tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    let took = started.elapsed();
    assert_eq!(closed, 50, "connections still open after 10 s");

    // A declared 200 KB body that never comes: without a token the answer is 401 at once.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"PUT /v1/orgs/o1/settings HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 200000\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered before the body")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    println!(
        "admin API: 50 idle/slow-header connections all closed after {:.2} s (timeout 1 s); \
         a token-less PUT with a 200 KB body announced got 401 before any body byte",
        took.as_secs_f64()
    );
}
