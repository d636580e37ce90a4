//! `elsctl status|pause|resume` against a canned admin API (axum on 127.0.0.1:0): what is
//! sent (method, path, query, body, bearer token), that every page is followed, and what is
//! printed. Routes match on "METHOD /path?query" first, then "METHOD /path".

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

const TOKEN: &str = "tok-7d1e0a-status-secret";

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
    routes: Arc<HashMap<String, (u16, Value)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Api {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn calls(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| match &s.query {
                Some(q) => format!("{} {}?{q}", s.method, s.path),
                None => format!("{} {}", s.method, s.path),
            })
            .collect()
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
    let exact = format!("{method} {}?{}", uri.path(), uri.query().unwrap_or(""));
    let loose = format!("{method} {}", uri.path());
    match api.routes.get(&exact).or_else(|| api.routes.get(&loose)) {
        Some((status, body)) => (
            StatusCode::from_u16(*status).expect("status"),
            axum::Json(body.clone()),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

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
    fn ok(&self) -> &str {
        match &self.result {
            Ok(Outcome::Success) => &self.out,
            Ok(other) => panic!("outcome {other:?}\nstdout: {}", self.out),
            Err(e) => panic!("command failed: {e}\nstdout: {}", self.out),
        }
    }

    fn error(&self) -> &Error {
        match &self.result {
            Ok(outcome) => panic!("expected an error, got {outcome:?}\nstdout: {}", self.out),
            Err(e) => e,
        }
    }
}

async fn elsctl(base: &str, args: &[&str]) -> Run {
    let mut argv = vec!["elsctl", "--admin-url", base, "--token", TOKEN];
    argv.extend(args);
    let cli = Cli::try_parse_from(&argv).expect("arguments parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdin: &[u8] = b"";
    let result = elsctl::run(
        cli,
        &mut Io {
            stdin: &mut stdin,
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
    for text in [&run.out, &run.err] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    run
}

fn stream(org: &str, state: &str) -> Value {
    json!({"org": org, "stream": "default", "state": state, "since": "2026-12-01T10:00:00Z",
           "held_events": 0, "held_bytes": 0, "delivered_last_hour": 7, "failed_last_hour": 0})
}

fn paused(org: &str) -> Value {
    let mut s = stream(org, "paused");
    s["reason"] = json!({"status": 403, "hec_code": 4, "text": "Invalid token"});
    s["held_events"] = json!(25);
    s["held_bytes"] = json!(11_000);
    s["failed_last_hour"] = json!(26);
    s["last_success"] = json!("2026-12-01T09:59:00Z");
    s
}

fn by_state() -> Value {
    json!({"active": 2, "paused": 1})
}

#[tokio::test]
async fn status_follows_every_page_and_prints_one_table() {
    let (base, api) = serve(&[
        (
            "GET /v1/status?limit=1000",
            200,
            json!({"items": [stream("org-a", "active"), paused("org-b")], "matched": 3,
                   "by_state": by_state(), "next": "org-b"}),
        ),
        (
            "GET /v1/status?after=org-b&limit=1000",
            200,
            json!({"items": [stream("org-c", "active")], "matched": 3, "by_state": by_state()}),
        ),
    ])
    .await;
    let out = elsctl(&base, &["status"]).await.ok().to_string();
    assert_eq!(
        api.calls(),
        [
            "GET /v1/status?limit=1000",
            "GET /v1/status?after=org-b&limit=1000"
        ]
    );
    assert!(api
        .seen()
        .iter()
        .all(|s| s.auth.as_deref() == Some(&format!("Bearer {TOKEN}")[..])));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ORG",
            "STREAM",
            "STATE",
            "SINCE",
            "FOR",
            "HELD",
            "DELIVERED_1H",
            "FAILED_1H",
            "REASON"
        ]
    );
    assert!(
        lines[1].starts_with("org-a  default  active  2026-12-01T10:00:00Z"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("org-b  default  paused  2026-12-01T10:00:00Z"),
        "{out}"
    );
    assert!(
        lines[2].ends_with("25    7             26         403, HEC code 4: Invalid token"),
        "{out}"
    );
    assert!(lines[3].starts_with("org-c  default  active"), "{out}");
    assert_eq!(lines[4], "3 streams (all orgs: active: 2, paused: 1)");
}

#[tokio::test]
async fn status_json_is_one_document_with_every_page() {
    let (base, _api) = serve(&[
        (
            "GET /v1/status?limit=1000",
            200,
            json!({"items": [stream("org-a", "active")], "matched": 2,
                   "by_state": by_state(), "next": "org-a"}),
        ),
        (
            "GET /v1/status?after=org-a&limit=1000",
            200,
            json!({"items": [paused("org-b")], "matched": 2, "by_state": by_state()}),
        ),
    ])
    .await;
    let run = elsctl(&base, &["status", "--output", "json"]).await;
    let printed: Value = serde_json::from_str(run.ok()).expect("stdout is one JSON document");
    assert_eq!(
        printed,
        json!({"items": [stream("org-a", "active"), paused("org-b")], "matched": 2,
               "by_state": by_state()})
    );
}

#[tokio::test]
async fn status_state_filter_goes_in_the_query() {
    let (base, api) = serve(&[(
        "GET /v1/status?state=paused_by_user&limit=1000",
        200,
        json!({"items": [], "matched": 0, "by_state": by_state()}),
    )])
    .await;
    let run = elsctl(&base, &["status", "--state", "paused_by_user"]).await;
    assert_eq!(
        run.ok(),
        "0 streams paused_by_user (all orgs: active: 2, paused: 1)\n"
    );
    assert_eq!(
        api.calls(),
        ["GET /v1/status?state=paused_by_user&limit=1000"]
    );
}

#[tokio::test]
async fn a_next_page_that_repeats_stops_with_an_error() {
    let (base, api) = serve(&[(
        "GET /v1/status",
        200,
        json!({"items": [stream("org-a", "active")], "matched": 9, "by_state": by_state(),
               "next": "org-a"}),
    )])
    .await;
    let run = elsctl(&base, &["status"]).await;
    let e = run.error();
    assert!(e.to_string().contains("asked for already"), "{e}");
    assert_eq!(e.exit_code(), exit::FAILURE);
    assert_eq!(api.seen().len(), 2);
}

#[tokio::test]
async fn status_of_one_org_shows_detail_and_notices() {
    let notices = json!({"items": [
        {"org": "org-b", "from": "active", "to": "paused",
         "reason": {"status": 403, "hec_code": 4, "text": "Invalid token"},
         "at": "2026-12-01T10:00:00Z"}
    ]});
    let (base, api) = serve(&[
        ("GET /v1/orgs/org-b/status", 200, paused("org-b")),
        (
            "GET /v1/orgs/org-b/stream-events?limit=10",
            200,
            notices.clone(),
        ),
    ])
    .await;
    let out = elsctl(&base, &["status", "--org", "org-b"])
        .await
        .ok()
        .to_string();
    assert_eq!(
        api.calls(),
        [
            "GET /v1/orgs/org-b/status",
            "GET /v1/orgs/org-b/stream-events?limit=10"
        ]
    );
    for wanted in [
        "org:           org-b\n",
        "state:         paused since 2026-12-01T10:00:00Z (",
        "reason:        403, HEC code 4: Invalid token\n",
        "last success:  2026-12-01T09:59:00Z (",
        "held events:   25 (11000 bytes)\n",
        "last hour:     7 delivered, 26 failed\n",
        "hint: events are held",
        "recent state changes (oldest first):\n",
        "  2026-12-01T10:00:00Z  active  paused  403, HEC code 4: Invalid token\n",
    ] {
        assert!(out.contains(wanted), "{wanted:?} missing from:\n{out}");
    }

    let run = elsctl(&base, &["status", "--org", "org-b", "--output", "json"]).await;
    let printed: Value = serde_json::from_str(run.ok()).expect("JSON");
    assert_eq!(
        printed,
        json!({"status": paused("org-b"), "stream_events": notices})
    );
}

#[tokio::test]
async fn status_of_an_unknown_org_is_the_api_error() {
    let (base, _api) = serve(&[(
        "GET /v1/orgs/nope/status",
        404,
        json!({"error": "Not Found", "field": "org", "message": "no stream for org nope"}),
    )])
    .await;
    let run = elsctl(&base, &["status", "--org", "nope"]).await;
    assert_eq!(
        run.error().to_string(),
        "404 Not Found: field `org`: no stream for org nope"
    );
    assert_eq!(run.error().exit_code(), exit::FAILURE);
}

#[tokio::test]
async fn pause_and_resume_post_and_print_the_new_state() {
    let mut by_user = stream("org a/1", "paused_by_user");
    by_user["reason"] = json!({"text": "paused by user"});
    by_user["held_events"] = json!(4);
    let (base, api) = serve(&[
        ("POST /v1/orgs/org%20a%2F1/pause", 200, by_user.clone()),
        (
            "POST /v1/orgs/org%20a%2F1/resume",
            200,
            stream("org a/1", "active"),
        ),
        ("POST /v1/orgs/org-b/resume", 200, paused("org-b")),
    ])
    .await;
    let out = elsctl(&base, &["pause", "--org", "org a/1"])
        .await
        .ok()
        .to_string();
    assert!(
        out.starts_with("paused org a/1: paused_by_user since 2026-12-01T10:00:00Z ("),
        "{out}"
    );
    assert!(out.contains("), 4 held events\n"), "{out}");
    assert!(out.ends_with("its events are held until `elsctl resume --org org a/1`\n"));

    let out = elsctl(&base, &["resume", "--org", "org a/1"])
        .await
        .ok()
        .to_string();
    assert!(out.starts_with("resumed org a/1: active since "), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // Resumed, but the SIEM still refuses: the answer says so.
    let out = elsctl(&base, &["resume", "--org", "org-b"])
        .await
        .ok()
        .to_string();
    assert!(
        out.contains("still holding: 403, HEC code 4: Invalid token"),
        "{out}"
    );

    let run = elsctl(&base, &["pause", "--org", "org a/1", "--output", "json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(run.ok()).expect("JSON"),
        by_user
    );

    let seen = api.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.method == "POST"));
    assert_eq!(seen[0].path, "/v1/orgs/org%20a%2F1/pause");
    assert_eq!(seen[1].path, "/v1/orgs/org%20a%2F1/resume");
    assert!(seen.iter().all(|s| s.body == "{}"), "{seen:?}");
}

#[tokio::test]
async fn a_stream_other_than_default_has_its_own_routes() {
    let mut lake = stream("org-b", "paused_by_user");
    lake["stream"] = json!("lake");
    let notices = json!({"items": [
        {"org": "org-b", "stream": "default", "from": "active", "to": "paused",
         "at": "2026-12-01T10:00:00Z"},
        {"org": "org-b", "stream": "lake", "from": "active", "to": "paused_by_user",
         "reason": {"text": "paused by user"}, "at": "2026-12-01T10:01:00Z"}
    ]});
    let (base, api) = serve(&[
        ("POST /v1/orgs/org-b/streams/lake/pause", 200, lake.clone()),
        ("POST /v1/orgs/org-b/streams/lake/resume", 200, lake.clone()),
        ("GET /v1/orgs/org-b/streams/lake/status", 200, lake.clone()),
        (
            "GET /v1/orgs/org-b/stream-events?limit=10",
            200,
            notices.clone(),
        ),
    ])
    .await;
    let out = elsctl(&base, &["pause", "org-b", "--stream", "lake"])
        .await
        .ok()
        .to_string();
    assert!(
        out.starts_with("paused org-b (stream lake): paused_by_user since "),
        "{out}"
    );
    assert!(
        out.ends_with("held until `elsctl resume --org org-b --stream lake`\n"),
        "{out}"
    );
    elsctl(&base, &["resume", "--org", "org-b", "--stream", "lake"])
        .await
        .ok();
    let out = elsctl(&base, &["status", "--org", "org-b", "--stream", "lake"])
        .await
        .ok()
        .to_string();
    assert!(out.contains("stream:        lake\n"), "{out}");
    assert!(
        out.contains("active  paused_by_user  paused by user\n"),
        "{out}"
    );
    assert!(
        !out.contains("active  paused  "),
        "only its own notices: {out}"
    );
    let run = elsctl(
        &base,
        &[
            "status", "--org", "org-b", "--stream", "lake", "--output", "json",
        ],
    )
    .await;
    let printed: Value = serde_json::from_str(run.ok()).expect("JSON");
    assert_eq!(
        printed["stream_events"]["items"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        api.calls(),
        [
            "POST /v1/orgs/org-b/streams/lake/pause",
            "POST /v1/orgs/org-b/streams/lake/resume",
            "GET /v1/orgs/org-b/streams/lake/status",
            "GET /v1/orgs/org-b/stream-events?limit=10",
            "GET /v1/orgs/org-b/streams/lake/status",
            "GET /v1/orgs/org-b/stream-events?limit=10",
        ]
    );
}

#[tokio::test]
async fn an_older_consumer_without_the_routes_hints_at_it() {
    let (base, _api) = serve(&[]).await;
    let run = elsctl(&base, &["status"]).await;
    let e = run.error();
    assert_eq!(e.to_string(), "404 Not Found");
    assert!(e.hint().unwrap_or_default().contains("older"));
    let run = elsctl(&base, &["pause", "--org", "org-1"]).await;
    assert_eq!(run.error().to_string(), "404 Not Found");
}

#[test]
fn bad_arguments_are_usage_errors_before_anything_is_sent() {
    for args in [
        &["elsctl", "status", "--state", "stopped"][..],
        &["elsctl", "status", "--state", "Paused"],
        &["elsctl", "status", "--org", "o", "--state", "paused"],
        &["elsctl", "pause"],
        &["elsctl", "resume", "--org", ""],
    ] {
        let err = Cli::try_parse_from(args).expect_err("usage");
        assert_eq!(err.exit_code(), i32::from(exit::USAGE), "{args:?}");
    }
    let err = Cli::try_parse_from(["elsctl", "status", "--state", "stopped"]).expect_err("usage");
    let text = err.to_string();
    assert!(
        text.contains(
            "[possible values: active, failing, paused, probing, paused_by_user, disabled]"
        ),
        "{text}"
    );
}
