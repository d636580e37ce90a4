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
        .and_then(bearer_credentials)
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

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive_the_token_is_not() {
        let token = "0123456789abcdef-token";
        for ok in ["Bearer ", "bearer ", "BEARER ", "bEaReR  "] {
            assert!(
                check(token, &with(&format!("{ok}{token}"))).is_ok(),
                "{ok:?}"
            );
        }
        for bad in [
            format!("Basic {token}"),
            format!("Bearer {}", token.to_uppercase()),
            format!("Bearer{token}"),
            token.to_string(),
        ] {
            let err = check(token, &with(&bad)).unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{bad:?}");
        }
        assert_eq!(
            check("", &with(&format!("Bearer {token}")))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }
}
