//! Token management (super admins; `elsctl tokens` is its client) and `GET /v1/whoami`:
//!
//! - `POST /v1/tokens` [`CreateToken`] -> 201 [`CreatedToken`]: the secret, shown this once;
//!   the tokens topic keeps only its SHA-256. `super_admin` tokens take no orgs, org roles at
//!   least one; the lifetime is 1 minute to 10 years.
//! - `GET /v1/tokens` -> [`TokenList`]: every token with id, role, orgs, times.
//! - `DELETE /v1/tokens/{id}` -> [`TokenInfo`]: revoked (on every instance within about a
//!   second); revoking a revoked token answers it unchanged.
//! - `GET /v1/whoami` -> [`WhoAmI`] (any token): role, orgs, id, expiry.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use els_api::{CreateToken, CreatedToken, Role, TokenInfo, TokenList, WhoAmI};

use super::auth::AuditNote;
use super::settings::check_org;
use super::{Admin, ApiError};
use crate::access::{Principal, TokenRecordV1};

/// Largest create request.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Shortest and longest lifetime of a token.
pub const MIN_TTL_SECS: u64 = 60;
pub const MAX_TTL_SECS: u64 = 10 * 366 * 24 * 3600;
/// Most orgs one token may name.
pub const MAX_ORGS: usize = 1000;

/// The request, checked: its orgs.
fn check(request: &CreateToken) -> Result<BTreeSet<String>, ApiError> {
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&request.ttl_secs) {
        return Err(ApiError::bad_request(
            "ttl_secs",
            format!("must be between {MIN_TTL_SECS} and {MAX_TTL_SECS} seconds"),
        ));
    }
    if request.description.len() > 200 || request.description.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "description",
            "at most 200 bytes, no control characters",
        ));
    }
    match (request.role, request.orgs.is_empty()) {
        (Role::SuperAdmin, false) => {
            return Err(ApiError::bad_request(
                "orgs",
                "a super_admin token covers every org: leave orgs empty",
            ))
        }
        (Role::OrgAdmin | Role::OrgViewer, true) => {
            return Err(ApiError::bad_request(
                "orgs",
                "an org_admin or org_viewer token needs at least one org",
            ))
        }
        _ => {}
    }
    if request.orgs.len() > MAX_ORGS {
        return Err(ApiError::bad_request(
            "orgs",
            format!("at most {MAX_ORGS} orgs"),
        ));
    }
    for (i, org) in request.orgs.iter().enumerate() {
        check_org(org).map_err(|e| ApiError::bad_request(&format!("orgs[{i}]"), e.message))?;
    }
    Ok(request.orgs.iter().cloned().collect())
}

pub async fn create(
    State(admin): State<Arc<Admin>>,
    principal: Principal,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<CreatedToken>), ApiError> {
    let Json(request) = body.map_err(|e| ApiError::new(e.status(), Some("body"), e.body_text()))?;
    let orgs = check(&request)?;
    let expires_at = Utc::now() + chrono::Duration::seconds(request.ttl_secs as i64);
    let (record, secret) = TokenRecordV1::issue(
        request.role,
        orgs,
        expires_at,
        &principal.token_id,
        &request.description,
    );
    admin.tokens().save(record.clone()).await?;
    tracing::info!(token_id = %record.id, role = %record.role, created_by = %principal.token_id, "token issued");
    let note = AuditNote {
        org: None,
        target: Some(record.id.clone()),
    };
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(CreatedToken {
            token: record.info(),
            secret,
        }),
    ))
}

pub async fn list(State(admin): State<Arc<Admin>>) -> Json<TokenList> {
    Json(TokenList {
        tokens: admin
            .tokens()
            .list()
            .iter()
            .map(TokenRecordV1::info)
            .collect(),
    })
}

pub async fn revoke(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let Some(mut record) = admin.tokens().get(&id) else {
        return Err(ApiError::not_found("id", format!("no token {id}")));
    };
    if record.revoked_at.is_none() {
        record.revoked_at = Some(Utc::now());
        admin.tokens().save(record.clone()).await?;
        tracing::info!(token_id = %record.id, "token revoked");
    }
    Ok(Json(record.info()))
}

pub async fn whoami(principal: Principal) -> Json<WhoAmI> {
    Json(WhoAmI {
        can_write: principal.can_write(),
        token_id: principal.token_id,
        role: principal.role,
        orgs: principal.orgs.into_iter().collect(),
        expires_at: principal.expires_at,
    })
}
