//! Authentication and authorization of the `/v1` and `/console/api` routes: one layer the
//! router puts on every such route ([`mod@super::router`]), so no handler checks a token itself
//! and none can forget.
//!
//! For each request [`guard`]:
//! 1. authenticates the bearer token ([`crate::access::TokenRegistry::authenticate`]): 401
//!    for a missing, wrong, expired or revoked one; 403 while the API is disabled;
//! 2. checks the route's [`Access`] against the token's role: writes need a super or org
//!    admin, token management a super admin (403 with the reason);
//! 3. checks the org the request names, in the path (`{org}`) or the query (`org=`), against
//!    the token's orgs (403, `field: "org"`); handlers whose org is in a body or a record read
//!    the [`Principal`] the layer put into the request and check it themselves
//!    ([`Principal::covers`]), and lists keep only the token's orgs;
//! 4. for routes the table marks as audited, records the outcome ([`crate::access::AuditLog`]):
//!    token id, action, org (from the path, the query, or an [`AuditNote`] the handler adds
//!    to its answer), status.

use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use els_api::AuditEntry;

use super::router::Access;
use super::{Admin, ApiError};
use crate::access::Principal;

/// The layer's state: the admin state and what the route needs.
#[derive(Clone)]
pub struct Guard {
    pub admin: Arc<Admin>,
    pub access: Access,
    /// Recorded in the audit trail under this action, if set.
    pub action: Option<&'static str>,
}

/// What a handler tells the audit layer about its request when the path and query do not
/// say it (the org of a replay body, the id of a new token). Put into the answer with
/// `axum::Extension`.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub org: Option<String>,
    pub target: Option<String>,
}

/// The route layer (see the module's doc).
pub async fn guard(
    State(guard): State<Guard>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = authenticate(&guard.admin, request.headers())?;
    let param = |name: &str| {
        params.as_ref().ok().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    // Every org the request names (a repeated `org=` is refused later by the query parser, but
    // none may slip past here either).
    let mut orgs: Vec<String> = param("org").into_iter().collect();
    if let Some(query) = request.uri().query() {
        orgs.extend(
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "org")
                .map(|(_, v)| v.into_owned()),
        );
    }
    let org = orgs.first().cloned();
    let checked = if orgs.is_empty() {
        authorize(guard.access, &principal, None)
    } else {
        orgs.iter()
            .try_for_each(|o| authorize(guard.access, &principal, Some(o)))
    };
    let response = match checked {
        Err(refused) => refused.into_response(),
        Ok(()) => {
            request.extensions_mut().insert(principal.clone());
            next.run(request).await
        }
    };
    if let Some(action) = guard.action {
        let note = response.extensions().get::<AuditNote>().cloned();
        let note = note.unwrap_or_default();
        let status = response.status();
        let outcome = if status.is_success() {
            "ok"
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            "denied"
        } else {
            "failed"
        };
        let entry = AuditEntry {
            at: Utc::now(),
            token_id: principal.token_id.clone(),
            action: action.to_string(),
            org: note.org.or(org),
            status: status.as_u16(),
            outcome: outcome.to_string(),
            target: note.target.or_else(|| param("id")),
        };
        guard.admin.audit().record(entry).await;
    }
    Ok(response)
}

/// Who the request's bearer token is: 403 while the API is disabled (no `ELS_ADMIN_TOKEN`),
/// 401 for a missing, wrong, expired or revoked token.
pub fn authenticate(admin: &Admin, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if admin.token().is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            "the admin API is disabled: set ELS_ADMIN_TOKEN",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
        .unwrap_or("");
    admin
        .tokens()
        .authenticate(admin.token(), given)
        .map_err(|refusal| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Some("Authorization"),
                refusal.message(),
            )
        })
}

/// Whether `principal` may use a route of `access` on `org` (if the request names one).
pub fn authorize(access: Access, principal: &Principal, org: Option<&str>) -> Result<(), ApiError> {
    let forbidden = |field: Option<&str>, message: String| {
        Err(ApiError::new(StatusCode::FORBIDDEN, field, message))
    };
    match access {
        Access::Public | Access::Read => {}
        Access::Write if !principal.can_write() => {
            return forbidden(None, format!("a {} token may only read", principal.role))
        }
        Access::SuperAdmin if !principal.is_super_admin() => {
            return forbidden(
                None,
                format!(
                    "only a super_admin token may do this (this is a {} token)",
                    principal.role
                ),
            )
        }
        Access::Write | Access::SuperAdmin => {}
    }
    match org {
        Some(org) if !principal.covers(org) => {
            forbidden(Some("org"), format!("this token may not access org {org}"))
        }
        _ => Ok(()),
    }
}

/// The [`Principal`] the layer authenticated; a 500 on a route without the layer (a bug the
/// router's tests rule out).
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "route without the auth layer",
            )
        })
    }
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme is matched
/// case-insensitively (RFC 7235 section 2.1: "bearer" and "BEARER" are the same scheme).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::TokenRegistry;

    fn with(value: &str) -> Option<&str> {
        bearer_credentials(value)
    }

    #[test]
    fn the_scheme_is_case_insensitive_the_token_is_not() {
        let token = "0123456789abcdef-token";
        let registry = TokenRegistry::default();
        for ok in ["Bearer ", "bearer ", "BEARER ", "bEaReR  "] {
            let given = with(&format!("{ok}{token}")).unwrap_or("").to_string();
            assert!(registry.authenticate(token, &given).is_ok(), "{ok:?}");
        }
        for bad in [
            format!("Basic {token}"),
            format!("Bearer {}", token.to_uppercase()),
            format!("Bearer{token}"),
            token.to_string(),
        ] {
            let given = with(&bad).unwrap_or("").to_string();
            assert!(registry.authenticate(token, &given).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_and_orgs_decide() {
        let mut viewer = Principal::bootstrap();
        viewer.role = els_api::Role::OrgViewer;
        viewer.orgs.insert("a".into());
        assert!(authorize(Access::Read, &viewer, Some("a")).is_ok());
        assert!(authorize(Access::Read, &viewer, None).is_ok());
        let err = authorize(Access::Read, &viewer, Some("b")).unwrap_err();
        assert_eq!(
            (err.status, err.field.as_deref()),
            (StatusCode::FORBIDDEN, Some("org"))
        );
        assert_eq!(
            authorize(Access::Write, &viewer, Some("a"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let mut admin = viewer.clone();
        admin.role = els_api::Role::OrgAdmin;
        assert!(authorize(Access::Write, &admin, Some("a")).is_ok());
        assert!(authorize(Access::SuperAdmin, &admin, None).is_err());
        assert!(authorize(Access::SuperAdmin, &Principal::bootstrap(), Some("z")).is_ok());
    }
}
