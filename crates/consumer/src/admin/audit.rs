//! `GET /v1/audit?org=&limit=` -> [`AuditList`]: the newest recorded actions first (default
//! 100, at most [`crate::access::audit::KEEP`]); a super admin sees every org's, others only
//! their orgs' (an `org=` outside them is refused by the auth layer).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use els_api::{AuditList, AuditQuery};

use super::{Admin, ApiError};
use crate::access::audit::KEEP;
use crate::access::Principal;

pub async fn list(
    State(admin): State<Arc<Admin>>,
    principal: Principal,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100).min(KEEP);
    Ok(Json(AuditList {
        entries: admin.audit().list(&principal, query.org.as_deref(), limit),
    }))
}
