//! "Send test event" (`POST /v1/orgs/{org}/test`, body empty or `{}`; `elsctl test-event` is
//! its client): a sample `FLOW_COMPLETE` event for the org, rendered and sent exactly like a
//! real delivery (custom fields, hashing, template, HEC envelope or generic body, headers,
//! SSRF guard: [`crate::delivery::request`], [`crate::delivery::siem`]), with the org's event
//! and flow filters bypassed and one attempt only. The SIEM's answer comes back for the
//! operator to read ([`TestEventResult`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use els_api::TestEventResult;
use els_model::event::ExecutionEvent;
use els_model::privacy::hash_email;
use els_model::settings::{EndpointKind, HttpFormat};
use els_model::topic::TopicEvent;
use els_model::EventType;
use uuid::Uuid;

use super::settings::{body_bytes, check_stream};
use super::{Admin, ApiError};
use crate::delivery::request;
use crate::delivery::siem::{Failure, SiemClient};
use crate::settings::OrgRuntime;
use els_model::settings::DEFAULT_STREAM;

/// Most body bytes returned to the operator.
pub const MAX_BODY_EXCERPT: usize = 4 * 1024;

/// A complete sample event for `org`: every base field and typical metadata.
pub fn sample_event(org: &str) -> ExecutionEvent {
    let execution = Uuid::new_v4();
    let root = Uuid::new_v4();
    ExecutionEvent {
        event_id: Uuid::new_v4(),
        event_type: EventType::FlowComplete,
        execution_id: execution,
        timestamp: Utc::now(),
        flow_id: "els-test-flow".into(),
        flow_name: "ELS test event".into(),
        org_id: org.to_string(),
        org_name: "ELS test org".into(),
        org_hostname: "els-test.example.com".into(),
        user_id: "els-test-user".into(),
        user_email: hash_email("els-test@example.com"),
        parent_execution_id: Some(root.to_string()),
        parent_flow_id: Some("els-test-parent-flow".into()),
        parent_flow_name: Some("ELS test parent flow".into()),
        root_execution_id: Some(root.to_string()),
        root_flow_id: Some("els-test-parent-flow".into()),
        root_flow_name: Some("ELS test parent flow".into()),
        folder_id: Some("els-test-folder".into()),
        folder_name: Some("ELS tests".into()),
        folder_id_path: Some("/els-test-folder".into()),
        engine_mode: Some("standard".into()),
        idempotency_key: Some(format!("els-test-{execution}")),
        depth: Some(1),
        throttled: Some(false),
        duration: Some(1234),
        step_count: Some(3),
        error: None,
        throttle_limit: None,
        pause: None,
        third_party_limit: None,
        extra: BTreeMap::new(),
    }
}

/// The request body a delivery of `event` alone would have.
pub fn body_for(event: &ExecutionEvent, runtime: &OrgRuntime) -> Vec<u8> {
    let Ok(event) = TopicEvent::from_event(event) else {
        return Vec::new();
    };
    let event = &event;
    match runtime.settings.endpoint {
        EndpointKind::Hec => request::hec_body(std::iter::once(event), runtime),
        EndpointKind::Http if runtime.settings.http.format == HttpFormat::Single => {
            request::event_body(event, runtime)
        }
        _ => request::batch_body(std::iter::once(event), runtime),
    }
}

/// Send one sample event for `org` and report the answer.
pub async fn send(siem: &SiemClient, org: &str, runtime: &OrgRuntime) -> TestEventResult {
    let body = body_for(&sample_event(org), runtime);
    let started = Instant::now();
    let answer = siem.exchange(runtime, body.into()).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match answer {
        Ok(exchange) => {
            let mut headers: BTreeMap<String, String> = BTreeMap::new();
            for (name, value) in &exchange.headers {
                if name == reqwest::header::SET_COOKIE {
                    continue;
                }
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                headers
                    .entry(name.as_str().to_string())
                    .and_modify(|v| {
                        v.push_str(", ");
                        v.push_str(&value);
                    })
                    .or_insert(value);
            }
            let (hec_code, hec_text) = match runtime.settings.endpoint {
                EndpointKind::Hec => hec_reply(&exchange.body),
                _ => (None, None),
            };
            let hec_ack_id = match runtime.settings.endpoint {
                EndpointKind::Hec => {
                    crate::delivery::hec::parse_reply(&exchange.body).and_then(|r| r.ack_id)
                }
                _ => None,
            };
            TestEventResult {
                status: Some(exchange.status),
                headers,
                body: excerpt(&exchange.body, MAX_BODY_EXCERPT),
                latency_ms,
                error: None,
                hec_code,
                hec_text,
                hec_ack_id,
            }
        }
        Err(failure) => TestEventResult {
            status: None,
            headers: BTreeMap::new(),
            body: String::new(),
            latency_ms,
            error: Some(match failure {
                Failure::Refused(r) => r.to_string(),
                Failure::Network(text) => text,
            }),
            hec_code: None,
            hec_text: None,
            hec_ack_id: None,
        },
    }
}

/// The route: check the request (no options), then [`send`] with the settings of the org's
/// stream `default` (or the file's default).
pub async fn post(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TestEventResult>, ApiError> {
    post_one(&admin, &org, DEFAULT_STREAM, body).await
}

/// `POST /v1/orgs/{org}/streams/{stream}/test`: the same for one stream.
pub async fn post_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TestEventResult>, ApiError> {
    post_one(&admin, &org, &stream, body).await
}

async fn post_one(
    admin: &Admin,
    org: &str,
    stream: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TestEventResult>, ApiError> {
    let key = check_stream(org, stream)?;
    let bytes = body_bytes(body)?;
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) if map.is_empty() => {}
            Ok(serde_json::Value::Object(map)) => {
                let field = map.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::bad_request(
                    &field,
                    "unknown field: the test request takes no options (send {} or nothing)",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "body",
                    "must be empty or the JSON object {}",
                ))
            }
        }
    }
    let Some(runtime) = admin.settings().stream(&key) else {
        return Err(if stream == DEFAULT_STREAM {
            ApiError::not_found(
                "org",
                format!("org {org} has no settings (and there is no default)"),
            )
        } else {
            ApiError::not_found("stream", format!("org {org} has no stream {stream}"))
        });
    };
    let result = send(admin.siem(), org, &runtime).await;
    tracing::info!(org_id = %org, stream, status = ?result.status, latency_ms = result.latency_ms, error = ?result.error, "test event sent");
    if result.is_success() {
        // The SIEM takes the stream's events again: a paused stream resumes at once.
        admin
            .streams()
            .resume_now(key.as_str(), "a test event was accepted");
    }
    Ok(Json(result))
}

/// HEC's `{"text": "...", "code": n}` reply, when the body is one.
fn hec_reply(body: &str) -> (Option<i64>, Option<String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
        return (None, None);
    };
    (
        value.get("code").and_then(serde_json::Value::as_i64),
        value
            .get("text")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
    )
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, serve_settings, stored, TOKEN};
    use super::*;
    use els_model::settings::OrgSettings;
    use serde_json::{json, Value};

    #[test]
    fn sample_event_is_complete_and_valid() {
        let event = sample_event("org-1");
        event.validate().unwrap();
        let json = serde_json::to_value(&event).unwrap();
        let metadata = ["parent_execution_id", "root_flow_name"];
        for field in els_model::event::BASE_FIELDS.into_iter().chain(metadata) {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["event_type"], "FLOW_COMPLETE");
        assert!(!json["user_email"].as_str().unwrap().contains('@'));
    }

    #[test]
    fn body_goes_through_the_delivery_rendering() {
        let mut s = OrgSettings::hec("https://x/services/collector/event", "t");
        s.body_template = Some(r#"{"els":"${event}"}"#.into());
        let hec = body_for(&sample_event("org-1"), &OrgRuntime::new(s.clone()).unwrap());
        let envelope: serde_json::Value = serde_json::from_slice(&hec).unwrap();
        assert_eq!(envelope["event"]["els"]["flow_id"], "els-test-flow");
        assert!(
            envelope["event"]["els"].get("org_id").is_none(),
            "ids only on request"
        );
        s.endpoint = EndpointKind::Http;
        let generic = body_for(&sample_event("org-1"), &OrgRuntime::new(s).unwrap());
        let body: serde_json::Value = serde_json::from_slice(&generic).unwrap();
        assert_eq!(body["els"]["event_type"], "FLOW_COMPLETE");
    }

    #[test]
    fn hec_replies_and_excerpts() {
        assert_eq!(
            hec_reply(r#"{"text":"Invalid token","code":4}"#),
            (Some(4), Some("Invalid token".into()))
        );
        assert_eq!(hec_reply("<html>"), (None, None));
        assert_eq!(excerpt("ééé", 3), "é");
        assert_eq!(excerpt("abc", 10), "abc");
    }

    #[tokio::test]
    async fn test_event_reports_the_ssrf_refusal() {
        let base = serve_settings(stored()).await;
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
