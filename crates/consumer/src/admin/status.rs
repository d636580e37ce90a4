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

use super::settings::{body_bytes, check_org};
use super::{Admin, ApiError};
use crate::access::Principal;
use crate::streams::StreamStates;

/// Default and largest page of `GET /v1/status`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

fn status_of(admin: &Admin, org: &str) -> StreamStatus {
    let disabled = admin
        .settings()
        .get(org)
        .is_some_and(|rt| !rt.settings.enabled);
    admin.streams().status(org, disabled)
}

/// `GET /v1/orgs/{org}/status`.
pub async fn show(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
) -> Result<Json<StreamStatus>, ApiError> {
    check_org(&org)?;
    if admin.settings().get(&org).is_none() && !admin.streams().knows(&org) {
        return Err(ApiError::not_found(
            "org",
            format!("org {org} has no settings (and there is no default) and no stream here"),
        ));
    }
    Ok(Json(status_of(&admin, &org)))
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
    let mut orgs = admin.settings().org_ids();
    orgs.extend(admin.streams().orgs());
    // Only the orgs the token may see, counts included.
    orgs.retain(|o| who.covers(o));
    orgs.sort();
    orgs.dedup();
    let mut by_state: BTreeMap<String, usize> = StreamState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut matching = Vec::new();
    for org in orgs {
        let status = status_of(&admin, &org);
        *by_state
            .entry(status.state.as_str().to_string())
            .or_default() += 1;
        let wanted = query.state.is_none_or(|s| s == status.state)
            && query
                .org_prefix
                .as_deref()
                .is_none_or(|p| status.org.starts_with(p));
        if wanted {
            matching.push(status);
        }
    }
    let matched = matching.len();
    let after = query.after.as_deref();
    let mut items: Vec<StreamStatus> = matching
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.org.as_str() > a))
        .take(limit + 1)
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| s.org.clone())
    } else {
        None
    };
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

/// `POST /v1/orgs/{org}/pause`: hold the org's events until resumed.
pub async fn pause(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(&admin, &org, body, StreamStates::user_pause)
}

/// `POST /v1/orgs/{org}/resume`: resume a paused stream (by its user or by ELS) at once.
pub async fn resume(
    State(admin): State<Arc<Admin>>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamStatus>, ApiError> {
    act(&admin, &org, body, StreamStates::user_resume)
}

/// Check the org and the (empty) body, apply `change` to the org's stream, answer its status.
fn act(
    admin: &Admin,
    org: &str,
    body: Result<Bytes, BytesRejection>,
    change: fn(&StreamStates, &str),
) -> Result<Json<StreamStatus>, ApiError> {
    check_org(org)?;
    no_options(body)?;
    change(admin.streams(), org);
    Ok(Json(status_of(admin, org)))
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
