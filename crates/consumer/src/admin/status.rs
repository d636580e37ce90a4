//! The stream-health API (`elsctl status`, `pause`, `resume` and the console's overview are
//! its clients): each org's stream state ([`crate::streams`]), a paged list of all, the
//! user's pause and resume, and the org's lifecycle notices.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use els_api::status::{
    NoticeList, NoticeQuery, StatusList, StatusQuery, StreamState, StreamStatus,
};

use els_model::settings::DEFAULT_STREAM;

use super::settings::{body_bytes, check_org, check_stream};
use super::{Admin, ApiError};
use crate::access::Principal;
use crate::streams::{StreamKey, StreamStates};

/// Default and largest page of `GET /v1/status`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

fn status_of(admin: &Admin, key: &StreamKey) -> StreamStatus {
    let disabled = admin
        .settings()
        .stream(key)
        .is_some_and(|rt| !rt.settings.enabled);
    admin.streams().status(key.as_str(), disabled)
}

/// `GET /v1/orgs/{org}/status`: the org's stream `default`.
pub async fn show(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
) -> Result<Json<StreamStatus>, ApiError> {
    show_one(&admin, &org, DEFAULT_STREAM)
}

/// `GET /v1/orgs/{org}/streams/{stream}/status`.
pub async fn show_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
) -> Result<Json<StreamStatus>, ApiError> {
    show_one(&admin, &org, &stream)
}

fn show_one(admin: &Admin, org: &str, stream: &str) -> Result<Json<StreamStatus>, ApiError> {
    let key = check_stream(org, stream)?;
    if admin.settings().stream(&key).is_none() && !admin.streams().knows(key.as_str()) {
        let (field, what) = if stream == DEFAULT_STREAM {
            (
                "org",
                format!("org {org} has no settings (and there is no default)"),
            )
        } else {
            ("stream", format!("org {org} has no stream {stream}"))
        };
        return Err(ApiError::not_found(
            field,
            format!("{what} and no stream state here"),
        ));
    }
    Ok(Json(status_of(admin, &key)))
}

/// `GET /v1/status`: every org the token covers with settings of its own or a stream state
/// here, by org id.
pub async fn list(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<StatusList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be 1-{MAX_PAGE}"),
        ));
    }
    let settings = admin.settings();
    let mut keys: Vec<StreamKey> = settings
        .org_ids()
        .iter()
        .flat_map(|org| {
            settings
                .own_streams(org)
                .into_iter()
                .map(move |(id, _)| StreamKey::new(org, &id))
        })
        .collect();
    keys.extend(
        admin
            .streams()
            .orgs()
            .iter()
            .map(|k| StreamKey::from_encoded(k)),
    );
    // Only the orgs the token may see, counts included.
    keys.retain(|k| who.covers(k.org()));
    keys.sort();
    keys.dedup();
    let mut by_state: BTreeMap<String, usize> = StreamState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut matching = Vec::new();
    for key in keys {
        let status = status_of(&admin, &key);
        *by_state
            .entry(status.state.as_str().to_string())
            .or_default() += 1;
        let wanted = query.state.is_none_or(|s| s == status.state)
            && query
                .org_prefix
                .as_deref()
                .is_none_or(|p| status.org.starts_with(p));
        if wanted {
            matching.push((key, status));
        }
    }
    let matched = matching.len();
    let after = query.after.as_deref();
    // Paged by the encoded stream key (an org id alone as `after` starts at its stream
    // `default`'s successor).
    let mut page: Vec<(StreamKey, StreamStatus)> = matching
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(k, _)| k.as_str().to_string())
    } else {
        None
    };
    let items = page.into_iter().map(|(_, s)| s).collect();
    Ok(Json(StatusList {
        items,
        matched,
        by_state,
        next,
    }))
}

/// The body of pause and resume: empty or `{}`.
fn no_options(body: Result<Bytes, BytesRejection>) -> Result<(), ApiError> {
    let bytes = body_bytes(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) if map.is_empty() => Ok(()),
        Ok(serde_json::Value::Object(map)) => Err(ApiError::bad_request(
            map.keys().next().map_or("body", String::as_str),
            "unknown field: this call takes no options (send {} or nothing)",
        )),
        _ => Err(ApiError::bad_request(
            "body",
            "must be empty or the JSON object {}",
        )),
    }
}

/// `POST /v1/orgs/{org}/pause`: hold the events of the org's stream `default` until
/// resumed.
pub async fn pause(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(&admin, &org, DEFAULT_STREAM, body, StreamStates::user_pause)
}

/// `POST /v1/orgs/{org}/streams/{stream}/pause`.
pub async fn pause_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(&admin, &org, &stream, body, StreamStates::user_pause)
}

/// `POST /v1/orgs/{org}/streams/{stream}/resume`.
pub async fn resume_stream(
    State(admin): State<Arc<Admin>>,
    Path((org, stream)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(&admin, &org, &stream, body, StreamStates::user_resume)
}

/// `POST /v1/orgs/{org}/resume`: resume a paused stream (by its user or by ELS) at once.
pub async fn resume(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(
        &admin,
        &org,
        DEFAULT_STREAM,
        body,
        StreamStates::user_resume,
    )
}

/// Check org, stream and the (empty) body, apply `change` to the stream, answer its status.
fn act(
    admin: &Admin,
    org: &str,
    stream: &str,
    body: Result<Bytes, BytesRejection>,
    change: fn(&StreamStates, &str),
) -> Result<Json<StreamStatus>, ApiError> {
    let key = check_stream(org, stream)?;
    no_options(body)?;
    change(admin.streams(), key.as_str());
    Ok(Json(status_of(admin, &key)))
}

/// `GET /v1/orgs/{org}/stream-events`: the org's recent state changes, oldest first.
pub async fn notices(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    query: Result<Query<NoticeQuery>, QueryRejection>,
) -> Result<Json<NoticeList>, ApiError> {
    check_org(&org)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be 1-{MAX_PAGE}"),
        ));
    }
    Ok(Json(NoticeList {
        items: admin.streams().notices(&org, limit),
    }))
}
