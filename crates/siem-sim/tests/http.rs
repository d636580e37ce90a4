//! HTTP-level tests: a simulator on 127.0.0.1:0 per test, driven with reqwest.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::{write::GzEncoder, Compression};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use siem_sim::{spawn, Config, SimHandle, DEFAULT_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTH: &str = "Splunk els-demo-token";

async fn start() -> SimHandle {
    start_with(Config::ephemeral()).await
}

async fn start_with(config: Config) -> SimHandle {
    spawn(config).await.expect("simulator starts")
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn envelopes(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            json!({"time": 1.5, "sourcetype": "els", "event": {"event_id": id, "org_id": "o1"}})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn post_hec(sim: &SimHandle, auth: Option<&str>, body: impl Into<reqwest::Body>) -> Response {
    let mut req = client().post(sim.hec_url()).body(body);
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.unwrap()
}

async fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn get(sim: &SimHandle, path: &str) -> Value {
    let resp = client()
        .get(format!("{}{path}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

async fn put_faults(sim: &SimHandle, faults: Value) -> (StatusCode, Value) {
    let resp = client()
        .put(format!("{}/sim/faults", sim.url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

#[tokio::test]
async fn auth_errors_use_hec_codes_and_store_nothing() {
    let sim = start().await;
    let body = envelopes(&["a"]);
    let cases = [
        (None, 401, json!({"text": "Token is required", "code": 2})),
        (
            Some("Basic abc"),
            401,
            json!({"text": "Invalid authorization", "code": 3}),
        ),
        (
            Some("Splunk"),
            401,
            json!({"text": "Invalid authorization", "code": 3}),
        ),
        (
            Some("Bearer els-demo-token"),
            401,
            json!({"text": "Invalid authorization", "code": 3}),
        ),
        (
            Some("Splunk nope"),
            403,
            json!({"text": "Invalid token", "code": 4}),
        ),
    ];
    for (auth, status, expected) in cases {
        let (got_status, got) = json_of(post_hec(&sim, auth, body.clone()).await).await;
        assert_eq!(got_status.as_u16(), status, "{auth:?}");
        assert_eq!(got, expected, "{auth:?}");
    }
    let stats = get(&sim, "/sim/stats").await;
    assert_eq!(stats["requests"], 5);
    assert_eq!(stats["events"], 0);
    assert_eq!(stats["by_status"], json!({"401": 4, "403": 1}));
}

#[tokio::test]
async fn batch_is_stored_with_redacted_headers() {
    let sim = start().await;
    let (status, body) =
        json_of(post_hec(&sim, Some(AUTH), envelopes(&["a", "b", "c"])).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"text": "Success", "code": 0}));

    // The bare /services/collector path and gzip bodies are accepted too.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(envelopes(&["d"]).as_bytes()).unwrap();
    let resp = client()
        .post(format!("{}/services/collector", sim.url()))
        .header("Authorization", AUTH)
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    assert_eq!(
        get(&sim, "/sim/event-ids").await,
        json!(["a", "b", "c", "d"])
    );
    let records = get(&sim, "/sim/events").await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[0]["path"], "/services/collector/event");
    assert_eq!(records[0]["headers"]["authorization"], "<redacted>");
    assert_eq!(records[0]["body"]["event"]["event_id"], "a");
    assert_eq!(records[3]["path"], "/services/collector");
    assert!(records[0]["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(!serde_json::to_string(records)
        .unwrap()
        .contains(DEFAULT_TOKEN));

    // Paging: after + limit.
    let page = get(&sim, "/sim/events?after=1&limit=2").await;
    let seqs: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(2), json!(3)]);
    assert_eq!(get(&sim, "/sim/stats").await["orgs"], json!({"o1": 4}));
}

#[tokio::test]
async fn one_bad_envelope_rejects_the_whole_request() {
    let sim = start().await;
    let blank = format!("{}{}", envelopes(&["a"]), r#"{"event":""}"#);
    let (status, body) = json_of(post_hec(&sim, Some(AUTH), blank).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"text": "Event field cannot be blank", "code": 13, "invalid-event-number": 1})
    );
    let missing = format!("{} {{\"host\":\"h\"}}", envelopes(&["a", "b"]));
    let (_, body) = json_of(post_hec(&sim, Some(AUTH), missing).await).await;
    assert_eq!(body["code"], 12);
    assert_eq!(body["invalid-event-number"], 2);
    let broken = format!("{}{{\"event\":", envelopes(&["a"]));
    let (_, body) = json_of(post_hec(&sim, Some(AUTH), broken).await).await;
    assert_eq!(
        body,
        json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1})
    );
    let (status, body) = json_of(post_hec(&sim, Some(AUTH), "").await).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"text": "No data", "code": 5})
        )
    );

    // Codes 12 and 13 refuse the request whole; code 6 has indexed the envelopes before
    // `invalid-event-number` ("Format events for HTTP Event Collector"): the one "a" before it.
    let stats = get(&sim, "/sim/stats").await;
    assert_eq!(stats["events"], 1);
    assert_eq!(stats["by_status"], json!({"400": 4}));
}

#[tokio::test]
async fn fail_next_with_retry_after_then_recovers() {
    let sim = start().await;
    let (status, set) = put_faults(
        &sim,
        json!({"status": 503, "fail_next": 2, "retry_after": "3"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set["status"], 503);
    for id in ["x", "y"] {
        let resp = post_hec(&sim, Some(AUTH), envelopes(&[id])).await;
        assert_eq!(resp.headers()["retry-after"], "3");
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"text": "Server is busy", "code": 9}));
    }
    let resp = post_hec(&sim, Some(AUTH), envelopes(&["z"])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("retry-after").is_none());

    let faults = get(&sim, "/sim/faults").await;
    assert_eq!(faults["status"], Value::Null);
    assert_eq!(faults["fail_next"], 0);
    let stats = get(&sim, "/sim/stats").await;
    assert_eq!(stats["by_status"], json!({"200": 1, "503": 2}));
    assert_eq!(get(&sim, "/sim/event-ids").await, json!(["z"]));

    // A persistent 500 with a chosen code, set in-process.
    sim.sim()
        .set_faults(siem_sim::Faults {
            hec_code: Some(8),
            ..siem_sim::Faults::status(500)
        })
        .unwrap();
    let (status, body) = json_of(post_hec(&sim, Some(AUTH), envelopes(&["w"])).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], 8);

    let (status, _) = put_faults(&sim, json!({"status": 42})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = put_faults(&sim, json!({"bogus": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delay_and_hang() {
    let sim = start().await;
    put_faults(&sim, json!({"delay_ms": 200, "fail_next": 1})).await;
    let started = Instant::now();
    let resp = post_hec(&sim, Some(AUTH), envelopes(&["slow"])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    put_faults(&sim, json!({"hang": true})).await;
    let err = Client::new()
        .post(sim.hec_url())
        .header("Authorization", AUTH)
        .body(envelopes(&["never"]))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // A request hanging while the server stops does not hold shutdown open.
    let url = sim.hec_url();
    let pending = tokio::spawn(async move {
        Client::new()
            .post(url)
            .header("Authorization", AUTH)
            .body("{}")
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.sim().stats().requests, 3);
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .expect("shutdown is prompt")
        .unwrap();
    let _ = pending.await;
}

#[tokio::test]
async fn health_follows_the_unhealthy_fault() {
    let sim = start().await;
    let health = format!("{}/services/collector/health", sim.url());
    let (status, body) = json_of(client().get(&health).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"text": "HEC is healthy", "code": 17})
        )
    );
    put_faults(&sim, json!({"unhealthy": true})).await;
    let (status, body) = json_of(client().get(&health).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"text": "HEC is unhealthy, queues are full", "code": 18})
    );
    // Unhealthy alone does not refuse ingest.
    assert_eq!(
        post_hec(&sim, Some(AUTH), envelopes(&["a"])).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn stats_count_duplicates_and_reset_clears() {
    let sim = start().await;
    post_hec(&sim, Some(AUTH), envelopes(&["a", "b"])).await;
    post_hec(&sim, Some(AUTH), envelopes(&["b", "c", "a"])).await;
    let stats = get(&sim, "/sim/stats").await;
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["events"], 5);
    assert_eq!(stats["distinct_event_ids"], 3);
    assert_eq!(stats["duplicates"], 2);
    assert_eq!(
        get(&sim, "/sim/event-ids").await,
        json!(["a", "b", "b", "c", "a"])
    );

    let resp = client()
        .post(format!("{}/sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let stats = get(&sim, "/sim/stats").await;
    assert_eq!(stats["events"], 0);
    assert_eq!(stats["by_status"], json!({}));
    assert_eq!(get(&sim, "/sim/events").await, json!([]));
}

#[tokio::test]
async fn generic_endpoint_takes_one_document() {
    let sim = start().await;
    let url = format!("{}/generic/hooks/els", sim.url());
    let doc = json!({"event_id": "g1", "workflow": {"name": "w"}});
    for auth in ["Bearer els-demo-token", AUTH] {
        let resp = client()
            .post(&url)
            .header("Authorization", auth)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{auth}");
    }
    let resp = client()
        .post(format!("{}/generic", sim.url()))
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client()
        .post(&url)
        .header("Authorization", "Bearer wrong")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let two_docs = client()
        .post(&url)
        .header("Authorization", AUTH)
        .body("{\"a\":1}{\"b\":2}")
        .send()
        .await
        .unwrap();
    assert_eq!(two_docs.status(), StatusCode::BAD_REQUEST);

    assert_eq!(get(&sim, "/sim/event-ids").await, json!(["g1", "g1"]));
    let records = get(&sim, "/sim/events").await;
    assert_eq!(records[0]["path"], "/generic/hooks/els");
    assert_eq!(records[0]["body"], doc);
    assert_eq!(get(&sim, "/sim/stats").await["duplicates"], 1);
}

#[tokio::test]
async fn body_cap_answers_413_and_unknown_paths_404() {
    let sim = start_with(Config {
        max_body_bytes: 100,
        ..Config::ephemeral()
    })
    .await;
    let big = envelopes(&["a", "b", "c", "d"]);
    assert!(big.len() > 100);
    assert_eq!(
        post_hec(&sim, Some(AUTH), big).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Streamed without Content-Length (chunked), too.
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let mut request = format!(
        "POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..20 {
        request.push_str("a\r\n          \r\n");
    }
    request.push_str("0\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let resp = client()
        .get(format!("{}/nope", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.sim().stats().by_status["413"], 2);
}

#[tokio::test]
async fn oldest_records_are_dropped_but_ids_kept() {
    let sim = start_with(Config {
        max_stored: 2,
        ..Config::ephemeral()
    })
    .await;
    post_hec(&sim, Some(AUTH), envelopes(&["a", "b", "c"])).await;
    let records = get(&sim, "/sim/events").await;
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[0]["seq"], 2);
    assert_eq!(get(&sim, "/sim/event-ids").await, json!(["a", "b", "c"]));
    assert_eq!(get(&sim, "/sim/stats").await["events"], 3);
}
