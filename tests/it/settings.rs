//! Org stream settings end to end (issue 4): settings written with `elsctl` go through the
//! compacted settings topic to every consumer instance; event and flow selection, custom and
//! auth headers, body templates; test events; secrets never in clear text; the SSRF guard.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use els_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const TOPIC: &str = "els.events";
const SETTINGS_TOPIC: &str = "els.settings";
/// Master key of the test consumers (test material only).
const MASTER_KEYS: &str = "e2e:5f1c0a9e3b7d42a8c6e0f1b2d3a4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
/// The auth header secret whose clear text must never show up anywhere.
const CANARY: &str = "CANARY-7f3a";

/// Environment every consumer here needs (until the harness sets it for everyone).
fn consumer_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("ELS_MASTER_KEYS", MASTER_KEYS),
        ("ELS_SSRF_ALLOW", "127.0.0.1"),
    ];
    env.extend_from_slice(extra);
    env
}

/// `elsctl` against a consumer's admin API: (exit code, stdout, stderr).
async fn elsctl(admin_url: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(bin("elsctl"))
        .args(args)
        .env("ELS_ADMIN_URL", admin_url)
        .env("ELS_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("running elsctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `elsctl settings set ORG --file F` with `settings` written to `dir`.
async fn set_settings(dir: &Path, admin_url: &str, org: &str, settings: &Value) -> String {
    let file = dir.join(format!("{org}-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, serde_json::to_vec_pretty(settings).unwrap()).unwrap();
    let (code, out, err) = elsctl(
        admin_url,
        &[
            "settings",
            "set",
            org,
            "--file",
            &file.display().to_string(),
        ],
    )
    .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 0, "elsctl settings set {org}: {out}{err}");
    out
}

async fn api_get(admin_url: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{admin_url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// One event of `event_type` for `org` in `flow`.
fn event(org: &str, flow: &str, event_type: &str) -> Value {
    let mut e = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": event_type,
        "execution_id": uuid::Uuid::new_v4().to_string(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "flow_id": flow, "flow_name": format!("Flow {flow}"),
        "org_id": org, "org_name": "Acme", "org_hostname": "acme.example.com",
        "user_id": "user-1", "user_email": "Alice@Example.com"
    });
    if event_type == "FLOW_FAILED" {
        e["error"] = json!({"error_code": "E42", "error_message": "step failed"});
    }
    e
}

const TYPES: [&str; 5] = [
    "FLOW_START",
    "FLOW_COMPLETE",
    "FLOW_FAILED",
    "FLOW_CANCELED",
    "FLOW_THROTTLED",
];

/// Every type from every flow, `each` times; returns (events, ids expected under `selects`).
fn batch(
    org: &str,
    flows: &[&str],
    each: usize,
    selects: impl Fn(&str, &str) -> bool,
) -> (Vec<Value>, HashSet<String>) {
    let mut events = Vec::new();
    let mut expected = HashSet::new();
    for flow in flows {
        for t in TYPES {
            for _ in 0..each {
                let e = event(org, flow, t);
                if selects(flow, t) {
                    expected.insert(e["event_id"].as_str().unwrap().to_string());
                }
                events.push(e);
            }
        }
    }
    (events, expected)
}

/// Raw records of the settings topic (key, value bytes), read to the end.
pub(crate) fn settings_topic_records(broker: &Kafka) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "els-tests-raw-settings")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(SETTINGS_TOPIC, 0, Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(SETTINGS_TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            ));
            if m.offset() + 1 >= high {
                break;
            }
        }
    }
    out
}

/// Every file under `dir` that contains `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

/// Generic-endpoint records at siem-sim, by event id (the template puts it at payload.event_id).
async fn received(sim: &Sim) -> Vec<(String, Value)> {
    sim.records()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let id = r["body"]["payload"]["event_id"].as_str()?.to_string();
            Some((id, r))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_select_headers_template_live_on_two_instances_and_no_clear_secrets() {
    let dir = test_dir("settings");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--token", CANARY, "--token", HEC_TOKEN]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    // c1 seeds the topic with one org from its file; c2 (another group) starts empty.
    let seeded = json!({"orgs": {"org-seeded": settings_for(&sim.hec_url())}});
    let c1 = ConsumerProc::start(&dir, "c1", &broker, &seeded, &consumer_env(&[])).unwrap();
    c1.wait_ready(Duration::from_secs(60)).await.unwrap();
    let c2 = ConsumerProc::start(
        &dir,
        "c2",
        &broker,
        &json!({}),
        &consumer_env(&[("ELS_GROUP_ID", "els-consumer-b")]),
    )
    .unwrap();
    c2.wait_ready(Duration::from_secs(60)).await.unwrap();
    let (_, list, _) = elsctl(&c2.admin_url, &["settings", "list"]).await;
    assert!(list.contains("org-seeded"), "seeded org not on c2: {list}");

    // (a) Failed + Canceled, flow f2 excluded, generic endpoint with a template.
    let org = "org-1";
    let settings = json!({
        "url": format!("{}/generic", sim.url),
        "allow_http": true,
        "endpoint": "http",
        "events": ["FLOW_FAILED", "FLOW_CANCELED"],
        "flows": {"mode": "exclude", "flow_ids": ["f2"]},
        "auth_headers": [{"name": "Authorization", "value": format!("Bearer {CANARY}")}],
        "custom_headers": [{"name": "X-Els-Tenant", "value": "acme"}, {"name": "X-Phase", "value": "one"}],
        "custom_fields": [{"key": "tenant_org", "value": "${org_id}"}],
        "body_template": "{\"source\": \"els-e2e\", \"payload\": \"${event}\"}"
    });
    let shown = set_settings(&dir, &c1.admin_url, org, &settings).await;
    assert!(
        !shown.contains(CANARY) && shown.contains("********"),
        "{shown}"
    );
    let t0 = Instant::now();
    wait_for("org-1 settings on c2", Duration::from_secs(10), || async {
        let (status, _) = api_get(&c2.admin_url, "/v1/orgs/org-1/settings").await;
        (status == 200).then_some(())
    })
    .await
    .unwrap();
    println!(
        "settings: org-1 visible on the second instance after {} ms",
        t0.elapsed().as_millis()
    );

    let flows = ["f1", "f2", "f3"];
    let selected =
        |flow: &str, t: &str| flow != "f2" && (t == "FLOW_FAILED" || t == "FLOW_CANCELED");
    let (mut events, expected) = batch(org, &flows, 2, selected);
    let (other, _) = batch("org-unset", &flows, 1, |_, _| false);
    events.extend(other);
    producer.post_all(&events, 50).await.unwrap();
    // Each instance (its own group) delivers every selected event once.
    wait_for(
        "selected events, twice each",
        Duration::from_secs(60),
        || async { (received(&sim).await.len() >= expected.len() * 2).then_some(()) },
    )
    .await
    .unwrap();
    // Anything unselected would have arrived by now too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received(&sim).await;
    let ids: HashSet<String> = got.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, expected, "exactly the selected events");
    assert_eq!(got.len(), expected.len() * 2, "once per instance");
    for (_, r) in &got {
        assert_eq!(r["path"], "/generic");
        assert_eq!(r["headers"]["x-els-tenant"], "acme");
        assert_eq!(r["headers"]["x-phase"], "one");
        assert_eq!(r["body"]["source"], "els-e2e");
        let payload = &r["body"]["payload"];
        assert_eq!(payload["tenant_org"], org);
        assert!(payload.get("org_id").is_none() && payload.get("user_id").is_none());
        assert!(!payload["user_email"].as_str().unwrap().contains('@'));
        let t = payload["event_type"].as_str().unwrap();
        assert!(t == "FLOW_FAILED" || t == "FLOW_CANCELED");
        assert_ne!(payload["flow_id"], "f2");
    }
    println!(
        "settings: produced {} events ({} types x {} flows x 2 + 15 of an org without settings); siem-sim received exactly the {} selected (x2 instances = {} requests) with custom headers, auth and template",
        events.len(), TYPES.len(), flows.len(), expected.len(), got.len()
    );

    // (b) A change through the API applies on both running instances within seconds:
    // round-trip the redacted settings (the placeholder keeps the stored secret).
    let (_, current, _) = elsctl(&c1.admin_url, &["settings", "get", org]).await;
    let mut changed: Value = serde_json::from_str(&current).unwrap();
    assert_eq!(changed["auth_headers"][0]["value"], "********");
    changed["events"] = json!(["FLOW_START"]);
    changed["custom_headers"][1]["value"] = json!("two");
    let before = got.len();
    let t0 = Instant::now();
    set_settings(&dir, &c1.admin_url, org, &changed).await;
    let written_ms = t0.elapsed().as_millis();
    wait_for("the change on c2", Duration::from_secs(10), || async {
        let (_, text) = api_get(&c2.admin_url, "/v1/orgs/org-1/settings").await;
        text.contains("FLOW_START").then_some(())
    })
    .await
    .unwrap();
    let c2_ms = t0.elapsed().as_millis();
    let (events2, expected2) = batch(org, &flows, 1, |f, t| f != "f2" && t == "FLOW_START");
    producer.post_all(&events2, 50).await.unwrap();
    wait_for(
        "events under the new settings",
        Duration::from_secs(60),
        || async { (received(&sim).await.len() >= before + expected2.len() * 2).then_some(()) },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got2: Vec<(String, Value)> = received(&sim).await.into_iter().skip(before).collect();
    let ids2: HashSet<String> = got2.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids2, expected2);
    assert_eq!(
        got2.len(),
        expected2.len() * 2,
        "both instances applied the change"
    );
    assert!(got2.iter().all(|(_, r)| r["headers"]["x-phase"] == "two"));
    println!(
        "settings: change acked in {written_ms} ms, visible on the second instance after {c2_ms} ms; {} FLOW_START events then arrived from both instances (x-phase: two), {} total records",
        expected2.len(),
        got2.len() + before
    );

    // Tampering: a ciphertext moved to another org, or with a bit flipped, does not open.
    let raw = settings_topic_records(&broker);
    let sealed = raw
        .iter()
        .rev()
        .find(|(k, v)| k == org.as_bytes() && v.is_some())
        .and_then(|(_, v)| v.clone())
        .unwrap();
    let text = String::from_utf8(sealed.clone()).unwrap();
    let marker = "enc:v1:e2e:";
    let at = text.find(marker).unwrap() + marker.len() + 40;
    let mut flipped = sealed.clone();
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let producer_raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .unwrap();
    for (key, value) in [("org-moved", &sealed), (org, &flipped)] {
        producer_raw
            .send(
                FutureRecord::to(SETTINGS_TOPIC).key(key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    wait_for(
        "both tampered records refused",
        Duration::from_secs(10),
        || async {
            let refused = |c: &ConsumerProc| c.proc.log_text().matches("does not decrypt").count();
            (refused(&c1) >= 2 && refused(&c2) >= 2).then_some(())
        },
    )
    .await
    .unwrap();
    for c in [&c1, &c2] {
        let (status, _) = api_get(&c.admin_url, "/v1/orgs/org-moved/settings").await;
        assert_eq!(status, 404, "a moved ciphertext must not open");
        let (_, kept) = api_get(&c.admin_url, "/v1/orgs/org-1/settings").await;
        assert!(
            kept.contains("FLOW_START"),
            "org-1 keeps its previous settings: {kept}"
        );
    }
    println!("settings: moved and bit-flipped ciphertexts refused on both instances; org-1 kept its settings");

    // (d) The canary appears nowhere in clear text.
    let mut places: BTreeMap<String, usize> = BTreeMap::new();
    for c in [&c1, &c2] {
        let metrics = get(format!("{}/metrics", c.admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (_, one) = api_get(&c.admin_url, "/v1/orgs/org-1/settings").await;
        let (_, list) = api_get(&c.admin_url, "/v1/orgs").await;
        let (_, cli, _) = elsctl(&c.admin_url, &["settings", "get", org]).await;
        for (what, text) in [
            ("log", c.proc.log_text()),
            ("metrics", metrics),
            ("GET settings", one),
            ("GET orgs", list),
            ("elsctl settings get", cli),
        ] {
            assert!(!text.is_empty(), "{what} of {} is empty", c.proc.name);
            assert!(
                !text.contains(CANARY),
                "{what} of {} has the canary",
                c.proc.name
            );
            *places.entry(what.to_string()).or_default() += text.len();
        }
    }
    let raw = settings_topic_records(&broker);
    let topic_bytes: Vec<u8> = raw
        .iter()
        .flat_map(|(k, v)| k.iter().chain(v.iter().flatten()).copied())
        .collect();
    assert!(!topic_bytes
        .windows(CANARY.len())
        .any(|w| w == CANARY.as_bytes()));
    assert!(topic_bytes.windows(7).any(|w| w == b"enc:v1:"));
    for name in ["c1-data", "c2-data"] {
        let hits = files_containing(&dir.join(name), CANARY.as_bytes());
        assert!(hits.is_empty(), "canary in sled files: {hits:?}");
    }
    println!(
        "settings: canary absent from 2 logs, /metrics, API and elsctl reads ({:?} bytes checked), {} settings topic records ({} bytes) and the sled files of both instances",
        places,
        raw.len(),
        topic_bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_event_shows_status_body_and_hec_code() {
    let dir = test_dir("test-event");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--token", HEC_TOKEN]).unwrap();
    let c = ConsumerProc::start(&dir, "consumer", &broker, &json!({}), &consumer_env(&[])).unwrap();

    let mut good = settings_for(&sim.hec_url());
    good["body_template"] = json!("{\"els\": \"${event}\"}");
    set_settings(&dir, &c.admin_url, "org-ok", &good).await;
    let (code, out, err) = elsctl(&c.admin_url, &["test-event", "--org", "org-ok"]).await;
    println!("test-event (good token), exit {code}:\n{out}{err}");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("status: 200 (HEC code 0: Success)\n"),
        "{out}"
    );
    assert!(
        out.contains("body: {\"code\":0,\"text\":\"Success\"}"),
        "{out}"
    );
    let records = sim.records().await.unwrap();
    assert_eq!(records.len(), 1);
    let envelope = &records[0]["body"];
    assert_eq!(envelope["event"]["els"]["event_type"], "FLOW_COMPLETE");
    assert!(
        envelope["event"]["els"]["user_email"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );

    let mut bad = settings_for(&sim.hec_url());
    bad["auth_headers"][0]["value"] = json!("Splunk wrong-token");
    set_settings(&dir, &c.admin_url, "org-bad", &bad).await;
    let (code, out, err) = elsctl(&c.admin_url, &["test-event", "--org", "org-bad"]).await;
    println!("test-event (wrong token), exit {code}:\n{out}{err}");
    assert_eq!(code, 1);
    assert!(
        out.starts_with("status: 403 (HEC code 4: Invalid token)\n"),
        "{out}"
    );
    assert!(
        out.contains("check the org's Authorization header"),
        "{out}"
    );
    assert!(!out.contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_guard_refuses_loopback_without_allow_list() {
    let dir = test_dir("ssrf");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 1).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--token", HEC_TOKEN]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    // No ELS_SSRF_ALLOW: the SIEM on 127.0.0.1 is off limits.
    let c = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &json!({}),
        &[("ELS_MASTER_KEYS", MASTER_KEYS), ("ELS_SSRF_ALLOW", "")],
    )
    .unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    set_settings(
        &dir,
        &c.admin_url,
        "org-ssrf",
        &settings_for(&sim.hec_url()),
    )
    .await;
    let (code, out, _) = elsctl(&c.admin_url, &["test-event", "--org", "org-ssrf"]).await;
    println!("test-event to 127.0.0.1, exit {code}:\n{out}");
    assert_eq!(code, 1);
    assert!(
        out.contains("error: refused: 127.0.0.1 is a loopback address (not in ssrf_allow)"),
        "{out}"
    );
    let by_name = settings_for(&sim.hec_url().replace("127.0.0.1", "localhost"));
    set_settings(&dir, &c.admin_url, "org-localhost", &by_name).await;
    let (code, out, _) = elsctl(&c.admin_url, &["test-event", "--org", "org-localhost"]).await;
    println!("test-event to localhost, exit {code}:\n{out}");
    assert_eq!(code, 1);
    assert!(
        out.contains("error: refused: localhost resolves to "),
        "{out}"
    );
    for host in [
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "0.0.0.0",
    ] {
        let url = format!("http://{host}:9/services/collector/event");
        set_settings(&dir, &c.admin_url, "org-probe", &settings_for(&url)).await;
        let (_, out, _) = elsctl(&c.admin_url, &["test-event", "--org", "org-probe"]).await;
        let line = out
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        println!("test-event to {host}: {line}");
        assert!(
            line.starts_with("error: refused: ") && line.ends_with("(not in ssrf_allow)"),
            "{out}"
        );
    }

    let (events, _) = batch("org-ssrf", &["f1"], 1, |_, _| true);
    producer.post_all(&events, 50).await.unwrap();
    let letters = wait_for(
        "refused events dead-lettered",
        Duration::from_secs(60),
        || async {
            let (_, text) = api_get(
                &c.admin_url,
                "/v1/dead-letters?org=org-ssrf&reason=rejected",
            )
            .await;
            let v: Value = serde_json::from_str(&text).ok()?;
            (v["matched"].as_u64()? >= events.len() as u64).then_some(v)
        },
    )
    .await
    .unwrap();
    for item in letters["items"].as_array().unwrap() {
        assert_eq!(item["reason"], "rejected");
        assert_eq!(
            item["last_error"],
            "refused: 127.0.0.1 is a loopback address (not in ssrf_allow)"
        );
    }
    let stats = sim.stats().await.unwrap();
    assert_eq!(
        stats["requests"], 0,
        "nothing reached the loopback SIEM: {stats}"
    );
    println!(
        "ssrf: {} events dead-lettered `rejected` with the refusal, siem-sim got {} requests",
        letters["matched"], stats["requests"]
    );
}
