//! The settings part of the admin API (bearer token; `elsctl settings` and `elsctl
//! test-event` are its client):
//!
//! - `GET /v1/orgs` -> `{"orgs": [..]}`: orgs with their own settings.
//! - `GET /v1/orgs/{org}/settings`: the org's settings, auth header values as `********`;
//!   404 when it has none.
//! - `PUT /v1/orgs/{org}/settings`: store settings (written to the settings topic, acked,
//!   applied here at once, on other instances within about a second); answers the stored
//!   settings, redacted. An auth header value of exactly `********` keeps the value stored
//!   for that header name, so `get` -> edit -> `set` round-trips without re-entering secrets.
//!   400 `{"error","field","message"}` names the field; 413 above 256 KiB.
//! - `DELETE /v1/orgs/{org}/settings` -> `{"deleted": bool}` (a tombstone on the topic).
//! - `POST /v1/orgs/{org}/test` (body empty or `{}`): [`crate::testevent`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use els_model::settings::OrgSettings;
use els_model::ModelError;
use serde_json::json;

use crate::admin::{authorized, error, Admin};
use crate::error::ConsumerError;
use crate::testevent;

/// Largest settings document (or test request) accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The settings routes, merged into [`crate::admin::router`].
pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/v1/orgs", get(list))
        .route("/v1/orgs/{org}/settings", get(show).put(put).delete(delete))
        .route("/v1/orgs/{org}/test", post(test))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// An error answer, built into the admin API's JSON error shape at the end (small, unlike
/// a `Response`).
struct Reject {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl Reject {
    fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        error(self.status, self.field.as_deref(), self.message)
    }
}

/// Org ids as in events: 1-128 bytes, no control characters.
fn check_org(org: &str) -> Result<(), Reject> {
    if org.trim().is_empty() || org.len() > 128 || org.chars().any(char::is_control) {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            Some("org"),
            "must be 1-128 bytes without control characters",
        ));
    }
    Ok(())
}

/// The bearer token and the org id in the path: the answer to give when either is wrong.
fn gate(admin: &Admin, headers: &HeaderMap, org: Option<&str>) -> Option<Response> {
    if let Err(r) = authorized(admin, headers) {
        return Some(r);
    }
    org.and_then(|o| check_org(o).err())
        .map(Reject::into_response)
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Reject> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Reject::new(
                status,
                Some("body"),
                format!("larger than {} KiB", MAX_BODY_BYTES / 1024),
            )
        } else {
            Reject::new(status, Some("body"), rejection.body_text())
        }
    })
}

fn invalid(e: ModelError) -> Response {
    match e {
        ModelError::InvalidField { field, message } => {
            error(StatusCode::BAD_REQUEST, Some(&field), message)
        }
        other => error(StatusCode::BAD_REQUEST, None, other.to_string()),
    }
}

fn failed(e: ConsumerError) -> Response {
    match e {
        ConsumerError::ReadOnlySettings => error(StatusCode::CONFLICT, None, e.to_string()),
        ConsumerError::Settings(_) => error(StatusCode::BAD_REQUEST, None, e.to_string()),
        other => {
            tracing::error!(error = %other, "settings write failed");
            error(StatusCode::SERVICE_UNAVAILABLE, None, other.to_string())
        }
    }
}

async fn list(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&admin, &headers, None) {
        return r;
    }
    Json(json!({"orgs": admin.status.shared.settings.org_ids()})).into_response()
}

async fn show(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    if let Some(r) = gate(&admin, &headers, Some(&org)) {
        return r;
    }
    match admin.status.shared.settings.get_own(&org) {
        Some(rt) => Json(rt.settings.redacted()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            Some("org"),
            format!("org {org} has no settings"),
        ),
    }
}

async fn put(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = gate(&admin, &headers, Some(&org)) {
        return r;
    }
    let bytes = match body_bytes(body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let store = &admin.status.shared.settings;
    let mut settings = match OrgSettings::from_json(&bytes) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let stored = store.get_own(&org);
    if let Err(e) = settings.keep_stored_secrets(stored.as_ref().map(|rt| &rt.settings)) {
        return invalid(e);
    }
    if let Err(e) = settings.validate() {
        return invalid(e);
    }
    if let Err(e) = store.save(&org, settings.clone()).await {
        return failed(e);
    }
    tracing::info!(org_id = %org, "org settings stored through the admin API");
    Json(settings.redacted()).into_response()
}

async fn delete(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    if let Some(r) = gate(&admin, &headers, Some(&org)) {
        return r;
    }
    let store = &admin.status.shared.settings;
    if store.get_own(&org).is_none() {
        return Json(json!({"deleted": false})).into_response();
    }
    if let Err(e) = store.delete(&org).await {
        return failed(e);
    }
    tracing::info!(org_id = %org, "org settings deleted through the admin API");
    Json(json!({"deleted": true})).into_response()
}

async fn test(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = gate(&admin, &headers, Some(&org)) {
        return r;
    }
    let bytes = match body_bytes(body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) if map.is_empty() => {}
            Ok(serde_json::Value::Object(map)) => {
                let field = map.keys().next().cloned().unwrap_or_default();
                return error(
                    StatusCode::BAD_REQUEST,
                    Some(&field),
                    "unknown field: the test request takes no options (send {} or nothing)",
                );
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("body"),
                    "must be empty or the JSON object {}",
                )
            }
        }
    }
    let shared = &admin.status.shared;
    let Some(runtime) = shared.settings.get(&org) else {
        return error(
            StatusCode::NOT_FOUND,
            Some("org"),
            format!("org {org} has no settings (and there is no default)"),
        );
    };
    let result = testevent::send(&shared.sink, &org, &runtime).await;
    tracing::info!(org_id = %org, status = ?result.status, latency_ms = result.latency_ms, error = ?result.error, "test event sent");
    Json(result).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::settings::SettingsStore;
    use serde_json::Value;

    const TOKEN: &str = "unit-test-admin-token";

    /// An admin server on 127.0.0.1:0 with file-only (read-only) settings.
    async fn serve(store: SettingsStore) -> String {
        let config = Config::default();
        let dir = std::env::temp_dir().join(format!("els-api-{}", uuid::Uuid::new_v4().simple()));
        let dlq = crate::dlq::Store::open(&dir).unwrap();
        let (status, _done) =
            crate::pipeline::prepare(&config, store, dlq, crate::metrics::Metrics::new()).unwrap();
        let admin =
            Arc::new(Admin::new(status, TOKEN.into(), "127.0.0.1:1", "els.events").unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::admin::router(admin)).await });
        format!("http://{addr}")
    }

    async fn call(
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        token: &str,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token);
        if let Some(b) = body {
            request = request.body(b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn stored() -> SettingsStore {
        let store = SettingsStore::default();
        let mut s = OrgSettings::hec("http://127.0.0.1:9/services/collector/event", "CANARY-7f3a");
        s.allow_http = true;
        store.put("org-1", s).unwrap();
        store
    }

    #[tokio::test]
    async fn reads_are_redacted_and_authorized() {
        let base = serve(stored()).await;
        let (status, body) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/orgs"),
            None,
            "nope",
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["field"], "Authorization");
        let (status, body) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/orgs"),
            None,
            TOKEN,
        )
        .await;
        assert_eq!((status, body), (200, json!({"orgs": ["org-1"]})));
        let url = format!("{base}/v1/orgs/org-1/settings");
        let (status, body) = call(reqwest::Method::GET, &url, None, TOKEN).await;
        assert_eq!(status, 200);
        assert_eq!(body["auth_headers"][0]["value"], "********");
        assert!(!body.to_string().contains("CANARY"));
        let (status, body) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/orgs/org-2/settings"),
            None,
            TOKEN,
        )
        .await;
        assert_eq!((status, body["field"].clone()), (404, json!("org")));
    }

    #[tokio::test]
    async fn writes_are_validated_with_field_names() {
        let base = serve(stored()).await;
        let put = |org: &str, body: &str| {
            let url = format!("{base}/v1/orgs/{org}/settings");
            let body = body.as_bytes().to_vec();
            async move { call(reqwest::Method::PUT, &url, Some(body), TOKEN).await }
        };
        let cases = [
            (r#"{"url": "https://x", "colour": "red"}"#, json!("colour")),
            (r#"{"url": "ftp://x"}"#, json!("url")),
            (r#"{"url": "https://x", "events": []}"#, json!("events")),
            (
                r#"{"url": "https://x", "flows": {"mode": "include"}}"#,
                json!("flows.flow_ids"),
            ),
            (
                r#"{"url": "https://x", "body_template": "{}"}"#,
                json!("body_template"),
            ),
            (
                r#"{"url": "https://x", "auth_headers": [{"name": "X-Key", "value": "********"}]}"#,
                json!("auth_headers[0].value"),
            ),
            (r#"{"url": "https://x""#, Value::Null),
        ];
        for (body, field) in cases {
            let (status, answer) = put("org-1", body).await;
            assert_eq!(status, 400, "{body} -> {answer}");
            assert_eq!(answer["field"], field, "{body} -> {answer}");
            assert_eq!(answer["error"], "Bad Request");
        }
        // Valid, with the placeholder kept: refused only because this store is read-only.
        let (status, answer) = put(
            "org-1",
            r#"{"url": "http://127.0.0.1:9/x", "allow_http": true, "auth_headers": [{"name": "authorization", "value": "********"}]}"#,
        )
        .await;
        assert_eq!(status, 409, "{answer}");
        let big = format!(
            r#"{{"url": "https://x", "body_template": "{}"}}"#,
            "a".repeat(300 * 1024)
        );
        let (status, answer) = put("org-1", &big).await;
        assert_eq!((status, answer["field"].clone()), (413, json!("body")));
        let (status, _) = put(&"o".repeat(200), r#"{"url": "https://x"}"#).await;
        assert_eq!(status, 400);
        let (status, answer) = call(
            reqwest::Method::DELETE,
            &format!("{base}/v1/orgs/org-9/settings"),
            None,
            TOKEN,
        )
        .await;
        assert_eq!((status, answer), (200, json!({"deleted": false})));
    }

    #[tokio::test]
    async fn test_event_reports_the_ssrf_refusal() {
        let base = serve(stored()).await;
        let url = format!("{base}/v1/orgs/org-1/test");
        let (status, answer) = call(reqwest::Method::POST, &url, Some(b"{}".to_vec()), TOKEN).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], Value::Null);
        assert_eq!(
            answer["error"],
            "refused: 127.0.0.1 is a loopback address (not in ssrf_allow)"
        );
        let (status, _) = call(reqwest::Method::POST, &url, None, TOKEN).await;
        assert_eq!(status, 200);
        let (status, answer) = call(
            reqwest::Method::POST,
            &url,
            Some(br#"{"x":1}"#.to_vec()),
            TOKEN,
        )
        .await;
        assert_eq!((status, answer["field"].clone()), (400, json!("x")));
        let (status, _) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/orgs/org-2/test"),
            None,
            TOKEN,
        )
        .await;
        assert_eq!(status, 404);
    }
}
