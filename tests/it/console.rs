//! The settings console in a real browser (issues 8, 16 and 18): `tests/browser/console.mjs`
//! drives Debian's headless Chromium (playwright-core) against `GET /console` of a running
//! consumer. This test sets the stage (broker, siem-sim, consumer with the settings topic, dead
//! letters for one org, a second org whose wrong HEC token paused its stream with events held,
//! an org admin and an org viewer token for the first org), runs the script with a bounded
//! time, and checks what the page did through the API and at siem-sim: the settings it saved,
//! the replayed events delivered with them, the paused org back to active with its held events
//! delivered once the page fixed its token, the org admin's one audited change.
//!
//! It needs node, `/usr/bin/chromium` (or `CHROMIUM`) and `tests/browser/node_modules`;
//! `deploy/scripts/install-deps.sh` installs all three. A missing one fails the test.
//! With `CONSOLE_SCREENSHOTS_DIR` set (relative to the repository root, e.g. `docs`) the script
//! saves the screenshots shown in the README (not an `ELS_*` name: the services started here
//! inherit the environment and refuse unknown `ELS_*` variables).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";
const ORG: &str = "org-console";
/// A HEC token siem-sim accepts, and one it refuses.
const SIEM_TOKEN: &str = "console-siem-token-5d2e";
const WRONG_TOKEN: &str = "console-wrong-token-0000";
const DEAD_LETTERS: usize = 30;
/// An org whose settings carry WRONG_TOKEN: siem-sim answers 403 (HEC code 4), so ELS pauses
/// its stream and holds its events.
const PAUSED_ORG: &str = "org-refused";
const HELD_EVENTS: usize = 5;
/// The whole browser run, start to finish (the script has its own watchdog just below it).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// node, Chromium and playwright-core, or a failure saying how to get them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let how = "run deploy/scripts/install-deps.sh (installs Debian's chromium and \
               chromium-driver, and tests/browser/node_modules with npm)";
    let node = std::process::Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        _ => panic!("node is missing or broken: the console browser test needs Node.js; {how}"),
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: the console browser test needs Chromium; {how}"
    );
    let browser_dir = repo_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "{} is missing: {how}",
        browser_dir.join("node_modules/playwright-core").display()
    );
    (PathBuf::from(chromium), browser_dir.join("console.mjs"))
}

/// One failed execution of `flow-billing` for `org`.
fn failed_event(org: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": "FLOW_FAILED",
        "execution_id": uuid::Uuid::new_v4().to_string(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "flow_id": "flow-billing", "flow_name": "Billing sync",
        "org_id": org, "org_name": "Console Inc", "org_hostname": "console.example.com",
        "user_id": "user-7", "user_email": "ops@console.example.com",
        "error": {"error_code": "TIMEOUT", "error_message": "step timed out"}
    })
}

/// The event id of a siem-sim record, with or without the page's body template.
fn record_event_id(record: &Value) -> Option<&str> {
    let event = &record["body"]["event"];
    event["data"]["event_id"]
        .as_str()
        .or_else(|| event["event_id"].as_str())
}

async fn api_get(admin_url: &str, path: &str) -> Value {
    http()
        .get(format!("{admin_url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_edits_settings_tests_and_replays_in_headless_chromium() {
    let (chromium, script) = browser_tools();
    let dir = test_dir("console");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    let sim = Sim::start(
        &dir,
        "siem-sim",
        &[
            "--token",
            HEC_TOKEN,
            "--token",
            SIEM_TOKEN,
            "--fault-status",
            "503",
        ],
    )
    .unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    // Orgs without settings of their own (ORG too) stream to siem-sim through the default;
    // one org has its own, so the page's picker lists something.
    let settings = json!({
        "orgs": {"org-seeded": settings_for(&sim.hec_url())},
        "default": settings_for(&sim.hec_url())
    });
    let consumer = ConsumerProc::start(
        &dir,
        "consumer",
        &broker,
        &settings,
        &[
            ("ELS_RETRY_MAX_ELAPSED_MS", "2000"),
            ("ELS_RETRY_INITIAL_MS", "100"),
            // No probe while the page looks at the paused org: its state stays `paused`.
            ("ELS_PROBE_INTERVAL_MS", "600000"),
        ],
    )
    .unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();

    // The SIEM is down past the retry time: ORG's events become dead letters.
    let events: Vec<Value> = (0..DEAD_LETTERS).map(|_| failed_event(ORG)).collect();
    let ids = producer.post_all(&events, DEAD_LETTERS).await.unwrap();
    let path = format!("/v1/dead-letters?org={ORG}");
    wait_for(
        "the org's dead letters",
        Duration::from_secs(60),
        || async {
            (api_get(&consumer.admin_url, &path).await["matched"] == DEAD_LETTERS).then_some(())
        },
    )
    .await
    .unwrap();
    sim.set_faults(json!({})).await.unwrap();
    println!("console: {DEAD_LETTERS} dead letters for {ORG}; siem-sim healthy again");

    // A real failure: PAUSED_ORG's settings carry a token siem-sim does not know. The first
    // refusal (403, HEC code 4) pauses the stream; its events are held, not dead-lettered.
    let mut wrong = settings_for(&sim.hec_url());
    wrong["auth_headers"] =
        json!([{"name": "Authorization", "value": format!("Splunk {WRONG_TOKEN}")}]);
    let put = http()
        .put(format!(
            "{}/v1/orgs/{PAUSED_ORG}/settings",
            consumer.admin_url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        200,
        "{}",
        put.text().await.unwrap_or_default()
    );
    // Every consumer applies settings from the topic; wait until this one has them.
    let settings_path = format!("/v1/orgs/{PAUSED_ORG}/settings");
    wait_for(
        "the paused org's settings",
        Duration::from_secs(30),
        || async {
            (api_get(&consumer.admin_url, &settings_path).await["url"] == sim.hec_url())
                .then_some(())
        },
    )
    .await
    .unwrap();
    let held: Vec<Value> = (0..HELD_EVENTS).map(|_| failed_event(PAUSED_ORG)).collect();
    let held_ids = producer.post_all(&held, HELD_EVENTS).await.unwrap();
    let status_path = format!("/v1/orgs/{PAUSED_ORG}/status");
    let paused = wait_for(
        "the org's stream to pause with its events held",
        Duration::from_secs(60),
        || async {
            let s = api_get(&consumer.admin_url, &status_path).await;
            (s["state"] == "paused" && s["held_events"] == HELD_EVENTS).then_some(s)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        paused["reason"]["status"], 403,
        "the refusal is the reason: {paused}"
    );
    assert_eq!(paused["reason"]["hec_code"], 4, "{paused}");
    let paused_since = paused["since"].as_str().unwrap_or_default().to_string();
    let refused_dead = api_get(
        &consumer.admin_url,
        &format!("/v1/dead-letters?org={PAUSED_ORG}"),
    )
    .await;
    assert_eq!(
        refused_dead["matched"], 0,
        "held, not dead-lettered: {refused_dead}"
    );
    println!(
        "console: {PAUSED_ORG} paused since {paused_since} ({}), {HELD_EVENTS} events held",
        paused["reason"]
    );
    // An org admin for ORG only, issued by the super admin (the bootstrap token).
    let created: Value = http()
        .post(format!("{}/v1/tokens", consumer.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"role": "org_admin", "orgs": [ORG], "ttl_secs": 3600, "description": "console test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org_admin = created["secret"].as_str().expect("a secret").to_string();
    let org_admin_id = created["token"]["id"].as_str().unwrap().to_string();
    let viewer: Value = http()
        .post(format!("{}/v1/tokens", consumer.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"role": "org_viewer", "orgs": [ORG], "ttl_secs": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org_viewer = viewer["secret"].as_str().expect("a secret").to_string();

    // The admin's turn, in the browser.
    let failure_shot = dir.join("console-failure.png");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("CONSOLE_URL", format!("{}/console", consumer.admin_url))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ORG", ORG)
        .env("SIEM_URL", sim.hec_url())
        .env("SIEM_TOKEN", SIEM_TOKEN)
        .env("WRONG_TOKEN", WRONG_TOKEN)
        .env("EXPECT_DEAD_LETTERS", DEAD_LETTERS.to_string())
        .env("PAUSED_ORG", PAUSED_ORG)
        .env("PAUSED_SINCE", &paused_since)
        .env("EXPECT_HELD", HELD_EVENTS.to_string())
        .env("ORG_ADMIN_TOKEN", &org_admin)
        .env("OTHER_ORG", "org-seeded")
        .env("ORG_VIEWER_TOKEN", &org_viewer)
        .env("CHROMIUM", &chromium)
        .env(
            "CONSOLE_TEST_TIMEOUT_MS",
            (BROWSER_TIMEOUT.as_millis() - 20_000).to_string(),
        )
        .env("FAILURE_SCREENSHOT", &failure_shot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Screenshots: a relative directory is taken from the repository root (`docs`).
    if let Some(shots) = std::env::var_os("CONSOLE_SCREENSHOTS_DIR").filter(|d| !d.is_empty()) {
        cmd.env("CONSOLE_SCREENSHOTS_DIR", repo_root().join(shots));
    }
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(BROWSER_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("starting node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "the browser test failed ({}); see above{}",
        out.status,
        if failure_shot.exists() {
            format!(", and the page at {}", failure_shot.display())
        } else {
            String::new()
        }
    );
    println!(
        "console: browser run took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // What the page saved is what the API holds (the secret only as a mask).
    let saved = api_get(&consumer.admin_url, &format!("/v1/orgs/{ORG}/settings")).await;
    assert_eq!(saved["url"], sim.hec_url(), "{saved}");
    assert_eq!(
        saved["events"],
        json!(["FLOW_START", "FLOW_COMPLETE", "FLOW_FAILED"])
    );
    assert_eq!(
        saved["flows"],
        json!({"mode": "exclude", "flow_ids": ["flow-noisy"]})
    );
    assert_eq!(
        saved["auth_headers"],
        json!([{"name": "Authorization", "value": "********"}])
    );
    assert_eq!(
        saved["custom_headers"],
        json!([{"name": "X-Team", "value": "secops"}, {"name": "X-Env", "value": "console"}])
    );
    assert_eq!(
        saved["custom_fields"],
        json!([{"key": "okta_org", "value": "${org_id}"}])
    );
    assert_eq!(
        saved["max_events"],
        json!({"rate": 600, "per": "minute", "burst": 100, "policy": "delay"})
    );
    assert_eq!(
        saved["hec"],
        json!({"source": "els-console", "sourcetype": "els:execution", "index": "main", "ack": false})
    );
    assert!(!saved.to_string().contains(SIEM_TOKEN));
    // The org admin saved ORG's settings (audited under its token id) and nothing else.
    let audit = api_get(&consumer.admin_url, "/v1/audit").await;
    let by_org_admin: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["token_id"] == org_admin_id.as_str())
        .collect();
    assert_eq!(by_org_admin.len(), 1, "{audit}");
    assert_eq!(
        (
            &by_org_admin[0]["action"],
            &by_org_admin[0]["org"],
            &by_org_admin[0]["outcome"]
        ),
        (&json!("settings.put"), &json!(ORG), &json!("ok"))
    );
    let other = api_get(&consumer.admin_url, "/v1/orgs/org-seeded/settings").await;
    assert_eq!(other["url"], sim.hec_url(), "{other}");
    println!("console: the org admin ({org_admin_id}) saw only {ORG}, saved its settings (audited), never reached org-seeded");
    let left = api_get(&consumer.admin_url, &path).await;
    assert_eq!(left["matched"], 0, "{left}");

    // The replayed events reach siem-sim with their original ids, through the new settings
    // (the page's body template, custom header and custom field).
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    let delivered = wait_for(
        "the replayed events at siem-sim",
        Duration::from_secs(60),
        || async {
            let records = sim.records().await.ok()?;
            let mine: Vec<Value> = records
                .into_iter()
                .filter(|r| record_event_id(r).is_some_and(|id| wanted.contains(id)))
                .collect();
            let complete = {
                let got: HashSet<&str> = mine.iter().filter_map(record_event_id).collect();
                got.len() == wanted.len()
            };
            complete.then_some(mine)
        },
    )
    .await
    .unwrap();
    for r in &delivered {
        assert_eq!(r["headers"]["x-team"], "secops", "{r}");
        assert_eq!(r["body"]["event"]["source"], "els-console");
        assert_eq!(r["body"]["event"]["data"]["okta_org"], ORG);
        assert_eq!(r["body"]["source"], "els-console");
        assert_eq!(r["body"]["index"], "main");
    }
    println!(
        "console: the page's replay delivered all {} dead-lettered events with their original ids, \
         the page's template, custom header and custom field",
        wanted.len()
    );

    // The paused org: the page fixed its token, paused and resumed it; it is active, its held
    // events reached siem-sim with the right token, and its notices tell the story.
    let now = api_get(&consumer.admin_url, &status_path).await;
    assert_eq!(now["state"], "active", "{now}");
    assert_eq!(now["held_events"], 0, "{now}");
    let wanted: HashSet<String> = held_ids.iter().cloned().collect();
    let delivered = wait_for(
        "the held events at siem-sim",
        Duration::from_secs(60),
        || async {
            let records = sim.records().await.ok()?;
            let mine: Vec<Value> = records
                .into_iter()
                .filter(|r| record_event_id(r).is_some_and(|id| wanted.contains(id)))
                .collect();
            let got: HashSet<&str> = mine.iter().filter_map(record_event_id).collect();
            (got.len() == wanted.len()).then_some(mine)
        },
    )
    .await
    .unwrap();
    // siem-sim stores only what a token it knows sent (and redacts the header): these went
    // out with the token the page saved.
    assert!(delivered
        .iter()
        .all(|r| r["headers"]["authorization"] == "<redacted>"));
    let notices = api_get(
        &consumer.admin_url,
        &format!("/v1/orgs/{PAUSED_ORG}/stream-events"),
    )
    .await;
    let changes: Vec<String> = notices["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|n| {
                    format!(
                        "{}->{}",
                        n["from"].as_str().unwrap_or("?"),
                        n["to"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for wanted in [
        "->paused",
        "paused->active",
        "active->paused_by_user",
        "paused_by_user->active",
    ] {
        assert!(
            changes
                .iter()
                .any(|c| c == wanted || (wanted.starts_with("->") && c.ends_with(wanted))),
            "{wanted} missing from {changes:?}"
        );
    }
    println!(
        "console: {PAUSED_ORG} active again; its {} held events delivered with the fixed token; \
         state changes {}",
        delivered.len(),
        changes.join(", ")
    );
}

/// The org of the streams test: its stream `default` sends HEC to siem-sim.
const STREAMS_ORG: &str = "org-streams";
/// The stream the page adds: generic HTTP, NDJSON batches, to siem-sim's `/http/ndjson`.
const ADDED_STREAM: &str = "lake";
/// An id whose dead-letter slot is `lake`'s (FNV-1a % 255 + 1 = 245): the API answers 409.
const CLASHING_STREAM: &str = "br";

/// Issue 17: the console lists an org's streams, adds a second one (an `http` NDJSON stream
/// to siem-sim), shows the API's field errors (400 and 409), saves it, sends its test event,
/// pauses and resumes it, and removes a third after a confirm (`tests/browser/streams.mjs`).
/// Here: what the page stored, and that siem-sim's `/http/ndjson` got the test event with
/// the token the page saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_adds_tests_and_removes_streams_in_headless_chromium() {
    let (chromium, script) = browser_tools();
    let script = script.with_file_name("streams.mjs");
    let dir = test_dir("console-streams");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 2).await.unwrap();
    let sim = Sim::start(
        &dir,
        "siem-sim",
        &["--token", HEC_TOKEN, "--token", SIEM_TOKEN],
    )
    .unwrap();
    let settings = json!({"orgs": {STREAMS_ORG: settings_for(&sim.hec_url())}});
    let consumer = ConsumerProc::start(&dir, "consumer", &broker, &settings, &[]).unwrap();
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
    let ndjson_url = format!("{}/http/ndjson", sim.url);

    let failure_shot = dir.join("console-streams-failure.png");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("CONSOLE_URL", format!("{}/console", consumer.admin_url))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ORG", STREAMS_ORG)
        .env("NDJSON_URL", &ndjson_url)
        .env("SIEM_TOKEN", SIEM_TOKEN)
        .env("STREAM", ADDED_STREAM)
        .env("STREAM_NAME", "Data lake")
        .env("CLASHING_STREAM", CLASHING_STREAM)
        .env("CHROMIUM", &chromium)
        .env(
            "CONSOLE_TEST_TIMEOUT_MS",
            (BROWSER_TIMEOUT.as_millis() - 20_000).to_string(),
        )
        .env("FAILURE_SCREENSHOT", &failure_shot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(shots) = std::env::var_os("CONSOLE_SCREENSHOTS_DIR").filter(|d| !d.is_empty()) {
        cmd.env("CONSOLE_SCREENSHOTS_DIR", repo_root().join(shots));
    }
    let out = tokio::time::timeout(BROWSER_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("starting node");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "the streams browser test failed ({}); see above{}",
        out.status,
        if failure_shot.exists() {
            format!(", and the page at {}", failure_shot.display())
        } else {
            String::new()
        }
    );

    // The API holds both streams as the page left them (the scratch stream removed).
    let list = api_get(
        &consumer.admin_url,
        &format!("/v1/orgs/{STREAMS_ORG}/streams"),
    )
    .await;
    let ids: Vec<&str> = list["streams"]
        .as_array()
        .map(|s| s.iter().filter_map(|e| e["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["default", ADDED_STREAM], "{list}");
    let lake = &list["streams"][1];
    assert_eq!(lake["settings"]["name"], "Data lake", "{lake}");
    assert_eq!(lake["settings"]["endpoint"], "http", "{lake}");
    assert_eq!(lake["settings"]["url"], ndjson_url.as_str(), "{lake}");
    assert_eq!(
        lake["settings"]["http"],
        json!({"format": "ndjson", "max_events": 100, "max_bytes": 65536}),
        "{lake}"
    );
    assert_eq!(
        lake["settings"]["auth_headers"],
        json!([{"name": "Authorization", "value": "********"}])
    );
    assert_eq!(lake["status"]["state"], "active", "{lake}");
    assert_eq!(list["streams"][0]["settings"]["url"], sim.hec_url());
    assert!(!list.to_string().contains(SIEM_TOKEN));

    // The page's test event reached siem-sim's NDJSON endpoint, sent with the saved token
    // (siem-sim stores only what a token it knows sent).
    let stats = sim.stats().await.unwrap();
    assert!(
        stats["receivers"]["http_ndjson"]["events"].as_u64() >= Some(1),
        "{stats}"
    );
    let records = sim.records().await.unwrap();
    let tests: Vec<&Value> = records
        .iter()
        .filter(|r| r["path"] == "/http/ndjson" && r["body"].to_string().contains("els-test-flow"))
        .collect();
    assert!(
        !tests.is_empty(),
        "no test event at /http/ndjson: {records:?}"
    );
    assert!(tests
        .iter()
        .all(|r| r["headers"]["authorization"] == "<redacted>"));
    println!(
        "console: {STREAMS_ORG} has streams {ids:?}; the page's test event of {ADDED_STREAM} \
         reached siem-sim's /http/ndjson ({} record(s))",
        tests.len()
    );
}
