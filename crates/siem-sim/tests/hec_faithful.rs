//! HTTP-level tests of the Splunk HEC behaviours that are off unless configured: indexer
//! acknowledgement and channels, allowed indexes, `max_content_length`, and code 6 indexing
//! the events before the bad one.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use siem_sim::{spawn, Config, Faults, SimHandle};

const ACK_TOKEN: &str = "ack-token";
const CHANNEL: &str = "0aad6e30-9c21-4e6c-a2f8-a1f3a1e6f0e1";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn start(config: Config) -> SimHandle {
    spawn(config).await.expect("simulator starts")
}

fn ack_config(delay_ms: u64) -> Config {
    Config {
        ack_tokens: vec![ACK_TOKEN.to_owned()],
        ack_delay_ms: delay_ms,
        ..Config::ephemeral()
    }
}

fn envelopes(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| json!({"event": {"event_id": id}}).to_string())
        .collect()
}

async fn post(
    sim: &SimHandle,
    path: &str,
    token: &str,
    channel: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(format!("{}{path}", sim.url()))
        .header("Authorization", format!("Splunk {token}"))
        .body(body);
    if let Some(channel) = channel {
        req = req.header("X-Splunk-Request-Channel", channel);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn ack(sim: &SimHandle, token: &str, channel: &str, ids: &[u64]) -> (StatusCode, Value) {
    post(
        sim,
        &format!("/services/collector/ack?channel={channel}"),
        token,
        None,
        json!({ "acks": ids }).to_string(),
    )
    .await
}

#[tokio::test]
async fn ack_token_needs_a_guid_channel() {
    let sim = start(ack_config(0)).await;
    let ev = "/services/collector/event";
    let (status, body) = post(&sim, ev, ACK_TOKEN, None, envelopes(&["a"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"text":"Data channel is missing","code":10}));
    let (status, body) = post(&sim, ev, ACK_TOKEN, Some("nope"), envelopes(&["a"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"text":"Invalid data channel","code":11}));
    // The `channel` query parameter works as well as the header.
    let (status, body) = post(
        &sim,
        &format!("{ev}?channel={CHANNEL}"),
        ACK_TOKEN,
        None,
        envelopes(&["a"]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"text":"Success","code":0,"ackId":0}));
    let stats = sim.sim().stats();
    assert_eq!(stats.channel_errors, 2);
    assert_eq!(stats.events, 1);
    assert_eq!(stats.by_status["400"], 2);
}

#[tokio::test]
async fn ack_ids_count_per_channel_and_ack_after_the_delay() {
    let sim = start(ack_config(300)).await;
    let ev = "/services/collector/event";
    let other = "11111111-2222-3333-4444-555555555555";
    for expected in 0..3u64 {
        let (_, body) = post(&sim, ev, ACK_TOKEN, Some(CHANNEL), envelopes(&["a"])).await;
        assert_eq!(body["ackId"], expected);
    }
    let (_, body) = post(&sim, ev, ACK_TOKEN, Some(other), envelopes(&["b"])).await;
    assert_eq!(body["ackId"], 0);
    let (status, body) = ack(&sim, ACK_TOKEN, CHANNEL, &[0, 1, 7]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"acks":{"0":false,"1":false,"7":false}}));
    assert_eq!(sim.sim().stats().acks_pending, 4);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = ack(&sim, ACK_TOKEN, CHANNEL, &[0, 1, 7]).await;
    assert_eq!(body, json!({"acks":{"0":true,"1":true,"7":false}}));
    // Reported once, then forgotten, as Splunk does.
    let (_, body) = ack(&sim, ACK_TOKEN, CHANNEL, &[0]).await;
    assert_eq!(body, json!({"acks":{"0":false}}));
    let stats = sim.sim().stats();
    assert_eq!((stats.acks_pending, stats.acks_acked), (2, 2));
    let served = client()
        .get(format!("{}/sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(served["acks_acked"], 2);
    assert_eq!(served["channel_errors"], 0);
    // The ack endpoint needs a channel too.
    let (status, body) = post(
        &sim,
        "/services/collector/ack",
        ACK_TOKEN,
        None,
        json!({"acks":[0]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 10);
}

#[tokio::test]
async fn never_ack_percent_leaves_some_ids_false() {
    let sim = start(Config {
        faults: Faults {
            never_ack_percent: 10,
            ..Faults::default()
        },
        ..ack_config(0)
    })
    .await;
    let ev = "/services/collector/event";
    for _ in 0..100 {
        post(&sim, ev, ACK_TOKEN, Some(CHANNEL), envelopes(&["a"])).await;
    }
    let ids: Vec<u64> = (0..100).collect();
    let (_, body) = ack(&sim, ACK_TOKEN, CHANNEL, &ids).await;
    let acks = body["acks"].as_object().unwrap();
    let never = acks.values().filter(|v| **v == json!(false)).count();
    assert_eq!(never, 10);
    let stats = sim.sim().stats();
    assert_eq!((stats.acks_acked, stats.acks_pending), (90, 10));
    // Still false later.
    let (_, body) = ack(&sim, ACK_TOKEN, CHANNEL, &ids).await;
    assert!(body["acks"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| *v == json!(false)));
    // Settable at run time through the faults API as well.
    let resp = client()
        .put(format!("{}/sim/faults", sim.url()))
        .json(&json!({"never_ack_percent": 101}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_without_ack_ignores_channels_and_refuses_ack_queries() {
    let sim = start(ack_config(0)).await;
    let token = siem_sim::DEFAULT_TOKEN;
    let ev = "/services/collector/event";
    let (status, body) = post(&sim, ev, token, Some("not-a-guid"), envelopes(&["a"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"text":"Success","code":0}));
    let (status, body) = ack(&sim, token, CHANNEL, &[0]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"text":"ACK is disabled","code":14}));
    let (status, _) = ack(&sim, "unknown", CHANNEL, &[0]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(sim.sim().stats().channel_errors, 0);
}

#[tokio::test]
async fn wrong_index_refuses_the_whole_request() {
    let sim = start(Config {
        token_indexes: [(
            siem_sim::DEFAULT_TOKEN.to_owned(),
            vec!["main".to_owned(), "security".to_owned()],
        )]
        .into(),
        ..Config::ephemeral()
    })
    .await;
    let token = siem_sim::DEFAULT_TOKEN;
    let ev = "/services/collector/event";
    let body = [
        json!({"event":"a","index":"main"}),
        json!({"event":"b"}),
        json!({"event":"c","index":"other"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<String>();
    let (status, reply) = post(&sim, ev, token, None, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply,
        json!({"text":"Incorrect index","code":7,"invalid-event-number":2})
    );
    assert_eq!(sim.sim().stats().events, 0);
    let ok = json!({"event":"a","index":"security"}).to_string();
    assert_eq!(post(&sim, ev, token, None, ok).await.0, StatusCode::OK);
}

#[tokio::test]
async fn max_content_length_answers_413_with_splunk_text() {
    let sim = start(Config {
        max_content_length: Some(100),
        ..Config::ephemeral()
    })
    .await;
    let token = siem_sim::DEFAULT_TOKEN;
    let ev = "/services/collector/event";
    let big = envelopes(&["a", "b", "c", "d", "e"]);
    let len = big.len();
    assert!(len > 100);
    let (status, body) = post(&sim, ev, token, None, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body["text"],
        format!("Content-Length of {len} too large (maximum is 100)")
    );
    assert_eq!(
        post(&sim, ev, token, None, envelopes(&["a"])).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.sim().stats().events, 1);
}

#[tokio::test]
async fn code_6_indexes_the_events_before_the_bad_one() {
    let sim = start(Config {
        faults: Faults {
            reject_containing: Some("poison".to_owned()),
            ..Faults::default()
        },
        ..Config::ephemeral()
    })
    .await;
    let token = siem_sim::DEFAULT_TOKEN;
    let ev = "/services/collector/event";
    let (status, body) = post(&sim, ev, token, None, envelopes(&["a", "b", "poison", "d"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"text":"Invalid data format","code":6,"invalid-event-number":2})
    );
    let bad_json = format!("{} {{nope", envelopes(&["e"]));
    let (_, body) = post(&sim, ev, token, None, bad_json).await;
    assert_eq!(body["invalid-event-number"], 1);
    assert_eq!(sim.sim().event_ids(), ["a", "b", "e"]);
    let stats = sim.sim().stats();
    assert_eq!(stats.events, 3);
    assert_eq!(stats.by_status["400"], 2);
    assert!(!stats.by_status.contains_key("200"));
}
