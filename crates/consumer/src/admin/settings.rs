//! The settings part of the admin API (`elsctl settings` is its client):
//!
//! - `GET /v1/orgs` -> [`OrgList`] `{"orgs": [..]}`: orgs with their own settings (of
//!   those the token covers).
//! - `GET /v1/orgs/{org}/settings`: the org's settings, auth header values as `********`;
//!   404 when it has none.
//! - `PUT /v1/orgs/{org}/settings`: store settings (written to the settings topic, acked,
//!   applied here at once, on other instances within about a second); answers the stored
//!   settings, redacted. An auth header value of exactly `********` keeps the value stored
//!   for that header name, so `get` -> edit -> `set` round-trips without re-entering secrets.
//!   400 `{"error","field","message"}` names the field; 413 above 256 KiB.
//! - `DELETE /v1/orgs/{org}/settings` -> [`SettingsDeleted`] `{"deleted": bool}` (a tombstone
//!   on the topic).
//!
//! Those are the org's stream `default` (all an org had before streams). An org has up to
//! `max_streams_per_org` streams, each its own destination:
//! - `GET /v1/orgs/{org}/streams` -> [`StreamList`]: every stream's id, settings (redacted)
//!   and health.
//! - `GET`, `PUT`, `DELETE /v1/orgs/{org}/streams/{stream}`: as the settings routes, for one
//!   stream (`default` included); a new stream past the limit is 409 naming `stream`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use els_api::{OrgList, OrgSettings, SettingsDeleted, StreamEntry, StreamList};
use els_model::settings::{check_stream_id, stream_slot, DEFAULT_STREAM};

use super::{Admin, ApiError};
use crate::access::Principal;
use crate::streams::StreamKey;

/// Largest settings document (or test request) accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Org ids as in events: 1-128 bytes, no control characters.
pub(crate) fn check_org(org: &str) -> Result<(), ApiError> {
    if org.trim().is_empty() || org.len() > 128 || org.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "org",
            "must be 1-128 bytes without control characters",
        ));
    }
    if els_model::event::is_dot_segment(org) {
        return Err(ApiError::bad_request("org", els_model::event::DOT_SEGMENT));
    }
    Ok(())
}

/// The request body, or the answer to give when it could not be read (413 above
/// [`MAX_BODY_BYTES`]).
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|unread| {
        let status = unread.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                Some("body"),
                format!("larger than {} KiB", MAX_BODY_BYTES / 1024),
            )
        } else {
            ApiError::new(status, Some("body"), unread.body_text())
        }
    })
}

/// The orgs with settings that the token may see.
pub async fn list(State(admin): State<Arc<Admin>>, who: Principal) -> Json<OrgList> {
    let mut orgs = admin.settings().org_ids();
    orgs.retain(|o| who.covers(o));
    Json(OrgList { orgs })
}

pub async fn show(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
) -> Result<Json<OrgSettings>, ApiError> {
    show_one(&admin, &org, DEFAULT_STREAM).map(Json)
}

pub async fn put(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OrgSettings>, ApiError> {
    put_one(&admin, &org, DEFAULT_STREAM, body).await.map(Json)
}

pub async fn delete(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
) -> Result<Json<SettingsDeleted>, ApiError> {
    delete_one(&admin, &org, DEFAULT_STREAM).await.map(Json)
}

/// `GET /v1/orgs/{org}/streams`: the org's own streams with their health here.
pub async fn list_streams(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
) -> Result<Json<StreamList>, ApiError> {
    check_org(&org)?;
    let streams = admin
        .settings()
        .own_streams(&org)
        .into_iter()
        .map(|(id, rt)| {
            let key = StreamKey::new(&org, &id);
            let status = admin.streams().status(key.as_str(), !rt.settings.enabled);
            StreamEntry {
                id,
                settings: rt.settings.redacted(),
                status,
            }
        })
        .collect();
    Ok(Json(StreamList {
        org,
        max_streams: admin.max_streams(),
        streams,
    }))
}

pub async fn show_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
) -> Result<Json<OrgSettings>, ApiError> {
    show_one(&admin, &org, &stream).map(Json)
}

pub async fn put_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OrgSettings>, ApiError> {
    put_one(&admin, &org, &stream, body).await.map(Json)
}

pub async fn delete_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
) -> Result<Json<SettingsDeleted>, ApiError> {
    delete_one(&admin, &org, &stream).await.map(Json)
}

/// Org and stream id of a path, checked.
pub(crate) fn check_stream(org: &str, stream: &str) -> Result<StreamKey, ApiError> {
    check_org(org)?;
    check_stream_id(stream, "stream")?;
    Ok(StreamKey::new(org, stream))
}

fn show_one(admin: &Admin, org: &str, stream: &str) -> Result<OrgSettings, ApiError> {
    check_stream(org, stream)?;
    match admin.settings().stream_own(org, stream) {
        Some(rt) => Ok(rt.settings.redacted()),
        None if stream == DEFAULT_STREAM => Err(ApiError::not_found(
            "org",
            format!("org {org} has no settings"),
        )),
        None => Err(ApiError::not_found(
            "stream",
            format!("org {org} has no stream {stream}"),
        )),
    }
}

async fn put_one(
    admin: &Admin,
    org: &str,
    stream: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<OrgSettings, ApiError> {
    let key = check_stream(org, stream)?;
    let bytes = body_bytes(body)?;
    let store = admin.settings();
    let mut settings = OrgSettings::from_json(&bytes)?;
    let stored = store.stream_own(org, stream);
    if stored.is_none() {
        let others = store.own_streams(org);
        if others.len() >= admin.max_streams() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                Some("stream"),
                format!(
                    "org {org} has {} streams, the most allowed (max_streams_per_org); remove one first",
                    others.len()
                ),
            ));
        }
        let slot = stream_slot(stream);
        if let Some((other, _)) = others.iter().find(|(id, _)| stream_slot(id) == slot) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                Some("stream"),
                format!(
                    "stream id `{stream}` shares its dead-letter slot with stream `{other}` of this org; choose another id"
                ),
            ));
        }
    }
    settings.keep_stored_secrets(stored.as_ref().map(|rt| &rt.settings))?;
    settings.validate()?;
    store.save(&key, settings.clone()).await?;
    tracing::info!(org_id = %org, stream, "stream settings stored through the admin API");
    Ok(settings.redacted())
}

async fn delete_one(admin: &Admin, org: &str, stream: &str) -> Result<SettingsDeleted, ApiError> {
    let key = check_stream(org, stream)?;
    let store = admin.settings();
    if store.stream_own(org, stream).is_none() {
        return Ok(SettingsDeleted { deleted: false });
    }
    store.delete(&key).await?;
    tracing::info!(org_id = %org, stream, "stream settings deleted through the admin API");
    Ok(SettingsDeleted { deleted: true })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, serve_settings, stored, TOKEN};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn reads_are_redacted_and_authorized() {
        let base = serve_settings(stored()).await;
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
        let base = serve_settings(stored()).await;
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
}
