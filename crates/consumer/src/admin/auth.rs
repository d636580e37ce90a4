//! Authentication of the `/v1` and `/console/api` routes: a layer the router puts on every
//! such route ([`mod@super::router`]), so no handler checks the token itself and none can forget.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{Admin, ApiError};

/// Let the request through only with the admin bearer token: 403 while the admin API is
/// disabled (no token configured), 401 for a missing or wrong token.
pub async fn require_token(
    State(admin): State<Arc<Admin>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(admin.token(), request.headers())?;
    Ok(next.run(request).await)
}

/// Constant-time comparison of the bearer token with `token`.
pub fn check(token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if token.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            "the admin API is disabled: set ELS_ADMIN_TOKEN",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let a = given.as_bytes();
    let b = token.as_bytes();
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("Authorization"),
            "missing or wrong bearer token",
        ))
    }
}
