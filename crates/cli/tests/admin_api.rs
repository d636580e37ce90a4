//! `elsctl` commands against a canned admin API (axum on 127.0.0.1:0): what is sent (method,
//! path, query, body, bearer token) and what is printed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Parser;
use elsctl::{exit, Cli, Error, Io, Outcome};
use serde_json::{json, Value};

const TOKEN: &str = "tok-3f9c2d-very-secret";

/// One request as the fake admin API saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    auth: Option<String>,
    body: String,
}

#[derive(Clone, Default)]
struct Api {
    /// "METHOD /path" -> (status, JSON body).
    routes: Arc<HashMap<String, (u16, Value)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Api {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn answer(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.seen.lock().expect("lock").push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    match api.routes.get(&format!("{method} {}", uri.path())) {
        Some((status, body)) => (
            StatusCode::from_u16(*status).expect("status"),
            axum::Json(body.clone()),
        )
            .into_response(),
        // Like axum for an unknown route: 404 with an empty body.
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Start a fake admin API; returns its base URL.
async fn serve(routes: &[(&str, u16, Value)]) -> (String, Api) {
    let api = Api {
        routes: Arc::new(
            routes
                .iter()
                .map(|(key, status, body)| (key.to_string(), (*status, body.clone())))
                .collect(),
        ),
        seen: Arc::default(),
    };
    let app = Router::new().fallback(answer).with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), api)
}

struct Run {
    result: Result<Outcome, Error>,
    out: String,
    err: String,
}

impl Run {
    fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(outcome) => *outcome,
            Err(e) => panic!("command failed: {e}\nstdout: {}", self.out),
        }
    }

    fn error(&self) -> &Error {
        match &self.result {
            Ok(outcome) => panic!("expected an error, got {outcome:?}\nstdout: {}", self.out),
            Err(e) => e,
        }
    }

    /// The exit code `main` would use.
    fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(outcome) => outcome.exit_code(),
            Err(e) => e.exit_code(),
        }
    }
}

/// Parse and run `elsctl <args>` against `base` with the secret token, then check the token
/// appears nowhere in what was printed or in the error.
async fn elsctl_with(base: &str, token: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut argv = vec!["elsctl", "--admin-url", base];
    if let Some(token) = token {
        argv.extend(["--token", token]);
    }
    argv.extend(args);
    let cli = Cli::try_parse_from(&argv).expect("arguments parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let result = elsctl::run(
        cli,
        &mut Io {
            stdin: &mut input,
            out: &mut out,
            err: &mut err,
        },
    )
    .await;
    let run = Run {
        result,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    };
    let error = match &run.result {
        Ok(_) => String::new(),
        Err(e) => format!("{e} {e:?} {}", e.hint().unwrap_or_default()),
    };
    for text in [&run.out, &run.err, &error] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    run
}

async fn elsctl(base: &str, args: &[&str]) -> Run {
    elsctl_with(base, Some(TOKEN), args, "").await
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

fn record(id: u64, org: &str, reason: &str, status: Option<u16>, error: &str) -> Value {
    json!({
        "id": id, "org_id": org,
        "event": {"event_id": format!("evt-{id}"), "event_type": "FLOW_FAILED", "flow_id": "f-1"},
        "reason": reason, "attempts": 3, "last_status": status, "last_error": error,
        "first_failed_at": "2024-05-01T10:00:00Z", "last_failed_at": "2024-05-01T10:05:00.250Z",
        "partition": 2, "offset": 40 + id
    })
}

fn list_body(items: Vec<Value>, total: u64) -> Value {
    let mut by_reason = serde_json::Map::new();
    for item in &items {
        let reason = item["reason"].as_str().unwrap_or_default().to_string();
        let n = by_reason.get(&reason).and_then(Value::as_u64).unwrap_or(0);
        by_reason.insert(reason, json!(n + 1));
    }
    json!({"total": total, "matched": items.len(), "by_reason": by_reason, "items": items})
}

#[tokio::test]
async fn dlq_list_sends_filters_and_token_and_prints_a_table() {
    let long_error = format!(
        "{{\"text\":\"Incorrect index\",\"code\":7}} {}",
        "z".repeat(80)
    );
    let body = list_body(
        vec![
            record(1, "org-1", "rejected", Some(400), &long_error),
            record(2, "org-1", "rejected", Some(403), "Invalid token"),
        ],
        9,
    );
    let (base, api) = serve(&[("GET /v1/dead-letters", 200, body)]).await;
    let run = elsctl(
        &base,
        &[
            "dlq",
            "list",
            "--org",
            "org-1",
            "--reason",
            "rejected",
            "--since",
            "2024-05-01T00:00:00+02:00",
            "--until",
            "2024-05-02T00:00:00Z",
            "--limit",
            "10",
        ],
    )
    .await;
    assert_eq!(run.outcome(), Outcome::Success);

    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/v1/dead-letters");
    assert_eq!(
        seen[0].query.as_deref(),
        Some("org=org-1&reason=rejected&since=2024-05-01T00%3A00%3A00%2B02%3A00&until=2024-05-02T00%3A00%3A00%2B00%3A00&limit=10")
    );
    assert_eq!(seen[0].auth, bearer());

    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.out);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "ORG",
            "REASON",
            "STATUS",
            "ATTEMPTS",
            "EVENT_TYPE",
            "EVENT_ID",
            "LAST_FAILED_AT",
            "ERROR"
        ]
    );
    assert!(lines[1].starts_with("1   org-1  rejected  400     3         FLOW_FAILED  evt-1     2024-05-01T10:05:00Z  {\"text\":\"Incorrect index\",\"code\":7} zz"), "{}", run.out);
    assert!(lines[1].ends_with('…'));
    assert!(lines[2].ends_with("Invalid token"));
    assert_eq!(lines[3], "2 matched of 9 dead letters (rejected: 2)");
    assert_eq!(run.err, "");
}

#[tokio::test]
async fn dlq_list_json_prints_the_api_answer() {
    let body = list_body(vec![record(5, "org-2", "rate_limited", None, "")], 1);
    let (base, _api) = serve(&[("GET /v1/dead-letters", 200, body.clone())]).await;
    let run = elsctl(&base, &["dlq", "list", "--output", "json"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    let printed: Value = serde_json::from_str(&run.out).expect("stdout is JSON");
    assert_eq!(printed, body);
    assert!(run.out.contains("\n  \"items\""), "pretty: {}", run.out);
}

#[tokio::test]
async fn dlq_show_prints_the_record_and_reports_a_missing_one() {
    let (base, api) = serve(&[
        (
            "GET /v1/dead-letters/7",
            200,
            record(7, "org-1", "retries_exhausted", Some(503), "busy"),
        ),
        (
            "GET /v1/dead-letters/8",
            404,
            json!({"error": "Not Found", "field": "id", "message": "no dead letter 8"}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["dlq", "show", "7"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    let printed: Value = serde_json::from_str(&run.out).expect("JSON");
    assert_eq!(printed["event"]["event_id"], "evt-7");

    let run = elsctl(&base, &["dlq", "show", "8"]).await;
    assert_eq!(
        run.error().to_string(),
        "404 Not Found: field `id`: no dead letter 8"
    );
    assert_eq!(run.exit_code(), exit::FAILURE);
    assert_eq!(api.seen()[1].path, "/v1/dead-letters/8");
}

#[tokio::test]
async fn replay_counts_first_then_posts_the_filters() {
    let (base, api) = serve(&[
        (
            "GET /v1/dead-letters",
            200,
            list_body(
                vec![
                    record(1, "org-1", "retries_exhausted", Some(503), "busy"),
                    record(2, "org-1", "retries_exhausted", None, "timeout"),
                ],
                5,
            ),
        ),
        (
            "POST /v1/dead-letters/replay",
            200,
            json!({"matched": 2, "replayed": 2, "failed": 0, "last_error": null, "remaining": 3}),
        ),
    ])
    .await;
    let run = elsctl(
        &base,
        &[
            "dlq",
            "replay",
            "--org",
            "org-1",
            "--reason",
            "retries_exhausted",
            "--rate",
            "50",
        ],
    )
    .await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(
        run.out,
        "replaying 2 dead letters...\nreplayed 2 of 2 (failed 0)\n3 dead letters remain\n"
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/v1/dead-letters")
    );
    assert_eq!(
        seen[0].query.as_deref(),
        Some("org=org-1&reason=retries_exhausted")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("POST", "/v1/dead-letters/replay")
    );
    let body: Value = serde_json::from_str(&seen[1].body).expect("JSON body");
    assert_eq!(
        body,
        json!({"org": "org-1", "reason": "retries_exhausted", "rate": 50})
    );
    assert!(seen.iter().all(|s| s.auth == bearer()));
}

#[tokio::test]
async fn replay_with_failures_prints_the_counts_and_fails() {
    let (base, _api) = serve(&[
        (
            "GET /v1/dead-letters",
            200,
            list_body(vec![record(1, "org-1", "rejected", Some(400), "bad")], 1),
        ),
        (
            "POST /v1/dead-letters/replay",
            502,
            json!({"matched": 1, "replayed": 0, "failed": 1, "last_error": "Message production error: MessageTimedOut", "remaining": 1}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["dlq", "replay", "--limit", "1"]).await;
    assert_eq!(run.outcome(), Outcome::Failure);
    assert_eq!(run.exit_code(), exit::FAILURE);
    assert!(
        run.out.contains("replayed 0 of 1 (failed 1)\n"),
        "{}",
        run.out
    );
    assert!(run
        .out
        .contains("last error: Message production error: MessageTimedOut"));

    // JSON mode keeps stdout one JSON document; progress goes to stderr.
    let run = elsctl(
        &base,
        &["dlq", "replay", "--limit", "1", "--output", "json"],
    )
    .await;
    assert_eq!(run.outcome(), Outcome::Failure);
    let printed: Value = serde_json::from_str(&run.out).expect("JSON");
    assert_eq!(printed["failed"], 1);
    assert_eq!(run.err, "replaying 1 dead letters...\n");
}

#[tokio::test]
async fn replaying_or_purging_everything_needs_yes() {
    let (base, api) = serve(&[]).await;
    for verb in ["replay", "purge"] {
        let run = elsctl(&base, &["dlq", verb]).await;
        assert_eq!(run.exit_code(), exit::USAGE);
        assert!(run.error().to_string().contains("needs --yes"), "{verb}");
    }
    let run = elsctl(
        &base,
        &[
            "dlq",
            "list",
            "--since",
            "2024-06-01T00:00:00Z",
            "--until",
            "2024-05-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(run.exit_code(), exit::USAGE);
    assert!(api.seen().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn purge_everything_with_yes() {
    let (base, api) = serve(&[(
        "DELETE /v1/dead-letters",
        200,
        json!({"purged": 3, "remaining": 0}),
    )])
    .await;
    let run = elsctl(&base, &["dlq", "purge", "--yes"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(run.out, "purged 3, 0 remain\n");
    let seen = api.seen();
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(seen[0].query, None);

    let run = elsctl(&base, &["dlq", "purge", "--org", "org 9"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(api.seen()[1].query.as_deref(), Some("org=org+9"));
}

#[tokio::test]
async fn api_errors_show_status_field_and_message() {
    let (base, _api) = serve(&[(
        "GET /v1/dead-letters",
        400,
        json!({"error": "Bad Request", "field": "reason", "message": "unknown reason `x`; one of rejected, retries_exhausted, rate_limited, invalid_event"}),
    )])
    .await;
    let run = elsctl(&base, &["dlq", "list"]).await;
    assert_eq!(
        run.error().to_string(),
        "400 Bad Request: field `reason`: unknown reason `x`; one of rejected, retries_exhausted, rate_limited, invalid_event"
    );
    assert_eq!(run.exit_code(), exit::FAILURE);
}

#[tokio::test]
async fn without_a_token_no_header_is_sent_and_401_hints_at_it() {
    let (base, api) = serve(&[(
        "GET /v1/dead-letters",
        401,
        json!({"error": "Unauthorized", "field": "Authorization", "message": "missing or wrong bearer token"}),
    )])
    .await;
    let run = elsctl_with(&base, None, &["dlq", "list"], "").await;
    assert_eq!(api.seen()[0].auth, None);
    let e = run.error();
    assert_eq!(
        e.to_string(),
        "401 Unauthorized: field `Authorization`: missing or wrong bearer token"
    );
    assert!(e.hint().unwrap_or_default().contains("--token"));
}

#[tokio::test]
async fn cannot_connect_exits_3_and_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let base = format!("http://{addr}");
    let run = elsctl(&base, &["dlq", "list"]).await;
    assert_eq!(run.exit_code(), exit::CONNECT);
    let e = run.error();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("cannot connect to the admin API at {base}/: ")),
        "{text}"
    );
    assert!(e
        .hint()
        .unwrap_or_default()
        .contains("els-consumer is running"));
}

#[tokio::test]
async fn unknown_route_suggests_an_older_consumer() {
    let (base, _api) = serve(&[]).await;
    let run = elsctl(&base, &["settings", "list"]).await;
    let e = run.error();
    assert_eq!(e.to_string(), "404 Not Found");
    assert!(e.hint().unwrap_or_default().contains("older"));
}

#[tokio::test]
async fn admin_url_path_prefix_and_org_escaping() {
    let (base, api) = serve(&[(
        "GET /els/v1/orgs/a%2Fb/settings",
        200,
        json!({"url": "https://x"}),
    )])
    .await;
    let run = elsctl(&format!("{base}/els/"), &["settings", "get", "a/b"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(api.seen()[0].path, "/els/v1/orgs/a%2Fb/settings");
}

#[tokio::test]
async fn settings_list_get_delete() {
    let settings = json!({
        "enabled": true, "url": "https://siem.example:8088/services/collector/event",
        "auth_headers": [{"name": "Authorization", "value": "********"}]
    });
    let (base, api) = serve(&[
        ("GET /v1/orgs", 200, json!({"orgs": ["org-1", "org-2"]})),
        ("GET /v1/orgs/org-1/settings", 200, settings.clone()),
        (
            "DELETE /v1/orgs/org-1/settings",
            200,
            json!({"deleted": true}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["settings", "list"]).await;
    assert_eq!(run.out, "ORG\norg-1\norg-2\n2 orgs with settings\n");

    let run = elsctl(&base, &["settings", "get", "org-1"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&run.out).expect("JSON"),
        settings
    );

    let run = elsctl(&base, &["settings", "delete", "org-1"]).await;
    assert_eq!(run.out, "deleted settings for org-1\n");

    let seen = api.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/v1/orgs"),
            ("GET", "/v1/orgs/org-1/settings"),
            ("DELETE", "/v1/orgs/org-1/settings")
        ]
    );
    assert!(seen.iter().all(|s| s.auth == bearer()));
}

#[tokio::test]
async fn settings_set_from_file_and_stdin() {
    let stored = json!({"url": "https://siem.example/services/collector/event",
                        "auth_headers": [{"name": "Authorization", "value": "********"}]});
    let (base, api) = serve(&[
        ("PUT /v1/orgs/org-1/settings", 200, stored.clone()),
        (
            "PUT /v1/orgs/org-2/settings",
            400,
            json!({"error": "Bad Request", "field": "url", "message": "https is required (set allow_http for local demos)"}),
        ),
    ])
    .await;
    let sent = json!({"url": "https://siem.example/services/collector/event",
                      "auth_headers": [{"name": "Authorization", "value": "Splunk abc-123"}]});
    let path = std::env::temp_dir().join(format!("elsctl-test-{}.json", std::process::id()));
    std::fs::write(&path, sent.to_string()).expect("write temp file");
    let file = path.to_string_lossy().into_owned();

    let run = elsctl(&base, &["settings", "set", "org-1", "--file", &file]).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(run.outcome(), Outcome::Success);
    assert!(run
        .out
        .starts_with("stored settings for org-1 (auth header values redacted):\n{"));
    assert!(!run.out.contains("abc-123"), "{}", run.out);
    assert_eq!(run.err, "");
    let seen = api.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].body).expect("body"),
        sent
    );

    let run = elsctl_with(
        &base,
        Some(TOKEN),
        &["settings", "set", "org-2", "--file", "-", "--output", "json"],
        r#"{"url": "http://siem.example", "auth_headers": [{"name": "Authorization", "value": "********"}]}"#,
    )
    .await;
    assert_eq!(
        run.error().to_string(),
        "400 Bad Request: field `url`: https is required (set allow_http for local demos)"
    );
    assert_eq!(run.exit_code(), exit::FAILURE);
    assert!(
        run.err
            .starts_with("warning: auth_headers[0] (Authorization)"),
        "{}",
        run.err
    );
    assert_eq!(api.seen()[1].path, "/v1/orgs/org-2/settings");

    // Not JSON: nothing is sent.
    let run = elsctl_with(
        &base,
        Some(TOKEN),
        &["settings", "set", "org-3", "--file", "-"],
        "{nope",
    )
    .await;
    assert_eq!(run.exit_code(), exit::USAGE);
    assert_eq!(api.seen().len(), 2);
}

#[tokio::test]
async fn test_event_success_and_rejected_credentials() {
    let (base, api) = serve(&[
        (
            "POST /v1/orgs/org-1/test",
            200,
            json!({"status": 200, "headers": {"content-type": "application/json; charset=UTF-8", "x-request-id": "r-1"},
                   "body": "{\"text\":\"Success\",\"code\":0}", "latency_ms": 37, "error": null,
                   "hec_code": 0, "hec_text": "Success"}),
        ),
        (
            "POST /v1/orgs/org-2/test",
            200,
            json!({"status": 403, "headers": {}, "body": "{\"text\":\"Invalid token\",\"code\":4}",
                   "latency_ms": 12, "error": null, "hec_code": 4, "hec_text": "Invalid token"}),
        ),
        (
            "POST /v1/orgs/org-3/test",
            200,
            json!({"status": null, "headers": {}, "body": "", "latency_ms": 10003,
                   "error": "error sending request: connection refused", "hec_code": null, "hec_text": null}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["test-event", "--org", "org-1"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(
        run.out,
        "status: 200 (HEC code 0: Success)\nlatency: 37 ms\nindexer acknowledgement: off for this token — a 200 means delivered\nheaders:\n  content-type: application/json; charset=UTF-8\n  x-request-id: r-1\nbody: {\"text\":\"Success\",\"code\":0}\n"
    );
    assert_eq!(api.seen()[0].method, "POST");
    assert_eq!(api.seen()[0].auth, bearer());

    let run = elsctl(&base, &["test-event", "--org", "org-2"]).await;
    assert_eq!(run.outcome(), Outcome::Failure);
    assert!(run
        .out
        .starts_with("status: 403 (HEC code 4: Invalid token)\n"));
    assert!(run.out.ends_with("the SIEM rejected the credentials: HEC code 4 \"Invalid token\" — check the org's Authorization header\n"), "{}", run.out);

    let run = elsctl(&base, &["test-event", "--org", "org-3"]).await;
    assert_eq!(run.outcome(), Outcome::Failure);
    assert!(run
        .out
        .contains("status: no response\nlatency: 10003 ms\nerror: error sending request: connection refused\n"), "{}", run.out);
}

fn stream_status(stream: &str, state: &str) -> Value {
    json!({"org": "org-1", "stream": stream, "state": state, "since": "2026-12-01T10:00:00Z",
           "held_events": 0, "held_bytes": 0, "delivered_last_hour": 0, "failed_last_hour": 0})
}

#[tokio::test]
async fn streams_list_get_set_delete_and_test() {
    let list = json!({"org": "org-1", "max_streams": 5, "streams": [
        {"id": "default", "status": stream_status("default", "active"),
         "settings": {"url": "https://siem.example:8088/services/collector/event",
                      "auth_headers": [{"name": "Authorization", "value": "********"}]}},
        {"id": "lake", "status": stream_status("lake", "paused_by_user"),
         "settings": {"name": "Data lake", "endpoint": "http", "enabled": true,
                      "url": "https://lake.example/ingest", "http": {"format": "ndjson"},
                      "future_field": {"x": 1}}}
    ]});
    let lake = list["streams"][1]["settings"].clone();
    let (base, api) = serve(&[
        ("GET /v1/orgs/org-1/streams", 200, list.clone()),
        ("GET /v1/orgs/org-1/streams/lake", 200, lake.clone()),
        ("PUT /v1/orgs/org-1/streams/lake", 200, lake.clone()),
        (
            "PUT /v1/orgs/org-1/streams/sixth",
            409,
            json!({"error": "Conflict", "field": "stream",
                   "message": "org org-1 has 5 streams, the most allowed (max_streams_per_org); remove one first"}),
        ),
        (
            "DELETE /v1/orgs/org-1/streams/lake",
            200,
            json!({"deleted": true}),
        ),
        (
            "POST /v1/orgs/org-1/streams/lake/test",
            200,
            json!({"status": 200, "headers": {}, "body": "ok", "latency_ms": 5, "error": null,
                   "hec_code": null, "hec_text": null}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["streams", "list", "org-1"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert_eq!(
        run.out,
        "ID       NAME       ENDPOINT  URL                                                 ENABLED  STATE\n\
         default  -          hec       https://siem.example:8088/services/collector/event  yes      active\n\
         lake     Data lake  http      https://lake.example/ingest                         yes      paused_by_user\n\
         2 of at most 5 streams for org-1\n"
    );
    let run = elsctl(&base, &["streams", "list", "org-1", "--output", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&run.out).expect("JSON"), list);

    let run = elsctl(&base, &["streams", "get", "org-1", "lake"]).await;
    assert_eq!(serde_json::from_str::<Value>(&run.out).expect("JSON"), lake);

    let run = elsctl_with(
        &base,
        Some(TOKEN),
        &["streams", "set", "org-1", "lake", "--file", "-"],
        &lake.to_string(),
    )
    .await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert!(
        run.out
            .starts_with("stored stream lake of org-1 (secrets redacted):\n{"),
        "{}",
        run.out
    );

    let run = elsctl_with(
        &base,
        Some(TOKEN),
        &["streams", "set", "org-1", "sixth", "--file", "-"],
        r#"{"url": "https://six.example"}"#,
    )
    .await;
    assert_eq!(
        run.error().to_string(),
        "409 Conflict: field `stream`: org org-1 has 5 streams, the most allowed (max_streams_per_org); remove one first"
    );
    assert_eq!(run.exit_code(), exit::FAILURE);

    let run = elsctl(&base, &["streams", "test", "org-1", "lake"]).await;
    assert_eq!(run.outcome(), Outcome::Success);
    assert!(
        run.out.starts_with("status: 200\nlatency: 5 ms\n"),
        "{}",
        run.out
    );

    let run = elsctl(&base, &["streams", "delete", "org-1", "lake"]).await;
    assert_eq!(run.out, "deleted stream lake of org-1\n");

    let calls: Vec<(String, String)> = api
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    let calls: Vec<(&str, &str)> = calls
        .iter()
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/v1/orgs/org-1/streams"),
            ("GET", "/v1/orgs/org-1/streams"),
            ("GET", "/v1/orgs/org-1/streams/lake"),
            ("PUT", "/v1/orgs/org-1/streams/lake"),
            ("PUT", "/v1/orgs/org-1/streams/sixth"),
            ("POST", "/v1/orgs/org-1/streams/lake/test"),
            ("DELETE", "/v1/orgs/org-1/streams/lake"),
        ]
    );
    assert_eq!(
        serde_json::from_str::<Value>(&api.seen()[3].body).expect("body"),
        lake
    );
    assert!(api.seen().iter().all(|s| s.auth == bearer()));

    // A bad stream id is a usage error before anything is sent.
    let err = Cli::try_parse_from(["elsctl", "streams", "get", "org-1", "Lake"]).expect_err("id");
    assert_eq!(err.exit_code(), i32::from(exit::USAGE));
}
