//! Tokens and roles end to end (issue 18): a token created through one consumer instance works
//! on a second within seconds, its scope holds there, a revocation through the second stops it
//! on the first within seconds, the audit trail has both instances' actions, and the secret
//! never appears in clear text in the topics, logs, metrics, API answers (but the one that
//! issues it) or sled files.

use std::time::{Duration, Instant};

use els_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::settings::files_containing;

/// How soon every instance must honour a new token or a revocation.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(5);

/// Every record of partition 0 of `topic`, key and value bytes concatenated.
pub(crate) fn topic_bytes(broker: &Kafka, topic: &str) -> (usize, Vec<u8>) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", format!("els-tests-raw-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let (mut records, mut bytes) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while high > 0 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            records += 1;
            bytes.extend_from_slice(m.key().unwrap_or_default());
            bytes.extend_from_slice(m.payload().unwrap_or_default());
            if m.offset() + 1 >= high {
                break;
            }
        }
    }
    (records, bytes)
}

/// `elsctl` with `token`: (exit code, stdout, stderr).
async fn elsctl_as(admin_url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(bin("elsctl"))
        .args(args)
        .env("ELS_ADMIN_URL", admin_url)
        .env("ELS_ADMIN_TOKEN", token)
        .output()
        .await
        .expect("running elsctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut r = http().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Poll `whoami` on `admin_url` with `secret` until it answers `status`; how long it took.
async fn until_whoami(admin_url: &str, secret: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        let (got, _) = call(
            reqwest::Method::GET,
            format!("{admin_url}/v1/whoami"),
            secret,
            None,
        )
        .await;
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "whoami never answered {status} (last {got})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_on_every_instance_within_seconds_and_secrets_stay_hidden() {
    let dir = test_dir("tokens");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic("els.events", 1).await.unwrap();
    let env = [(
        "RUST_LOG",
        "debug,rdkafka=warn,hyper=info,h2=info,reqwest=info",
    )];
    let c1 = ConsumerProc::start(&dir, "c1", &broker, &json!({}), &env).unwrap();
    let env2 = [env[0], ("ELS_GROUP_ID", "els-consumer-b")];
    let c2 = ConsumerProc::start(&dir, "c2", &broker, &json!({}), &env2).unwrap();
    c1.wait_ready(Duration::from_secs(60)).await.unwrap();
    c2.wait_ready(Duration::from_secs(60)).await.unwrap();

    // Bad input: usage errors (exit 2) before anything is sent.
    for args in [
        &["tokens", "create", "--role", "org_admin", "--ttl", "30d"][..],
        &[
            "tokens",
            "create",
            "--role",
            "super_admin",
            "--org",
            "org-a",
            "--ttl",
            "30d",
        ],
        &[
            "tokens", "create", "--role", "admin", "--org", "org-a", "--ttl", "30d",
        ],
        &[
            "tokens",
            "create",
            "--role",
            "org_admin",
            "--org",
            "org-a",
            "--ttl",
            "forever",
        ],
    ] {
        let (code, _, err) = elsctl_as(&c1.admin_url, ADMIN_TOKEN, args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty());
    }

    // Issued on c1...
    let (code, out, err) = elsctl_as(
        &c1.admin_url,
        ADMIN_TOKEN,
        &[
            "--output",
            "json",
            "tokens",
            "create",
            "--org",
            "org-a",
            "--role",
            "org_admin",
            "--ttl",
            "30d",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["token"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("els_") && secret.len() == 68, "{secret}");
    // ...works on c2 within seconds.
    let arrived = until_whoami(&c2.admin_url, &secret, 200).await;
    assert!(arrived < PROPAGATION_LIMIT, "{arrived:?}");
    let (_, me) = call(
        reqwest::Method::GET,
        format!("{}/v1/whoami", c2.admin_url),
        &secret,
        None,
    )
    .await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(
        (
            me["role"].clone(),
            me["orgs"].clone(),
            me["token_id"].clone()
        ),
        (json!("org_admin"), json!(["org-a"]), json!(id))
    );

    // Its scope holds on c2: org A's settings yes, org B's no.
    let settings = json!({"url": "http://127.0.0.1:9/x", "allow_http": true});
    let put = |org: &str, token: String| {
        let url = format!("{}/v1/orgs/{org}/settings", c2.admin_url);
        let body = settings.clone();
        async move { call(reqwest::Method::PUT, url, &token, Some(body)).await }
    };
    assert_eq!(put("org-a", secret.clone()).await.0, 200);
    let (status, refused) = put("org-b", secret.clone()).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("org-b"), "{refused}");
    assert_eq!(put("org-b", ADMIN_TOKEN.to_string()).await.0, 200);
    let (_, orgs) = call(
        reqwest::Method::GET,
        format!("{}/v1/orgs", c1.admin_url),
        &secret,
        None,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&orgs).unwrap(),
        json!({"orgs": ["org-a"]})
    );
    // An org admin cannot manage tokens: exit 1 with the API's reason.
    let (code, _, err) = elsctl_as(&c2.admin_url, &secret, &["tokens", "list"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("403") && err.contains("super_admin"), "{err}");

    // Listed on c2 (no secret), revoked through c2, refused on c1 within seconds.
    let (code, listed, err) = elsctl_as(&c2.admin_url, ADMIN_TOKEN, &["tokens", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        listed.contains(&id) && listed.contains("active"),
        "{listed}"
    );
    let (code, out, err) = elsctl_as(&c2.admin_url, ADMIN_TOKEN, &["tokens", "revoke", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    let gone = until_whoami(&c1.admin_url, &secret, 401).await;
    assert!(gone < PROPAGATION_LIMIT, "{gone:?}");
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{}/v1/whoami", c1.admin_url),
        &secret,
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("revoked"), "{body}");
    let (code, _, err) = elsctl_as(
        &c1.admin_url,
        ADMIN_TOKEN,
        &["tokens", "revoke", "tok_nope"],
    )
    .await;
    assert_eq!(code, 1, "{err}");

    // The audit trail on c1 holds both instances' actions.
    let audit = wait_for("audit entries on c1", Duration::from_secs(10), || async {
        let (_, body) = call(
            reqwest::Method::GET,
            format!("{}/v1/audit", c1.admin_url),
            ADMIN_TOKEN,
            None,
        )
        .await;
        let v: Value = serde_json::from_str(&body).ok()?;
        let actions: Vec<String> = v["entries"]
            .as_array()?
            .iter()
            .map(|e| {
                format!(
                    "{}:{}:{}",
                    e["action"].as_str().unwrap_or(""),
                    e["org"].as_str().unwrap_or("-"),
                    e["outcome"].as_str().unwrap_or("")
                )
            })
            .collect();
        (actions.len() >= 5).then_some(actions)
    })
    .await
    .unwrap();
    for want in [
        "tokens.create:-:ok",
        "settings.put:org-a:ok",
        "settings.put:org-b:denied",
        "settings.put:org-b:ok",
        "tokens.revoke:-:ok",
    ] {
        assert!(audit.iter().any(|a| a == want), "{want} not in {audit:?}");
    }
    println!("tokens: created on c1, honoured by c2 after {} ms; revoked on c2, refused by c1 after {} ms (limit {} s); audit on c1: {audit:?}", arrived.as_millis(), gone.as_millis(), PROPAGATION_LIMIT.as_secs());

    // The secret in clear: nowhere but the answer that issued it.
    let mut checked = Vec::new();
    for c in [&c1, &c2] {
        let metrics = get(format!("{}/metrics", c.admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (_, tokens) = call(
            reqwest::Method::GET,
            format!("{}/v1/tokens", c.admin_url),
            ADMIN_TOKEN,
            None,
        )
        .await;
        let (_, audit) = call(
            reqwest::Method::GET,
            format!("{}/v1/audit", c.admin_url),
            ADMIN_TOKEN,
            None,
        )
        .await;
        for (what, text) in [
            ("log", c.proc.log_text()),
            ("metrics", metrics),
            ("GET /v1/tokens", tokens),
            ("GET /v1/audit", audit),
        ] {
            assert!(!text.is_empty(), "{what} of {}", c.proc.name);
            assert!(
                !text.contains(&secret[4..]),
                "{what} of {} has the secret",
                c.proc.name
            );
            checked.push(format!("{what} of {} ({} bytes)", c.proc.name, text.len()));
        }
    }
    assert!(!listed.contains(&secret[4..]));
    let mut topics = Vec::new();
    for topic in ["els.tokens", "els.audit"] {
        let (records, bytes) = topic_bytes(&broker, topic);
        assert!(records > 0, "{topic} is empty");
        assert!(
            !bytes.windows(64).any(|w| w == &secret.as_bytes()[4..]),
            "{topic} has the secret"
        );
        topics.push(format!("{topic}: {records} records, {} bytes", bytes.len()));
    }
    for name in ["c1-data", "c2-data"] {
        let hits = files_containing(&dir.join(name), &secret.as_bytes()[4..]);
        assert!(hits.is_empty(), "secret in sled files: {hits:?}");
    }
    println!("tokens: secret absent from {checked:?}, {topics:?}, elsctl tokens list and the sled files of both instances");
}
