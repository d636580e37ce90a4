//! Public probes: `/metrics` (Prometheus text), liveness `/healthz` (`ok`, or [`Liveness`])
//! and readiness `/readyz` ([`Readiness`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use els_api::{Liveness, Readiness};

use super::Admin;

/// How long a failing store is tolerated before liveness fails.
pub const STORE_FAILURE_FATAL: Duration = Duration::from_secs(30);

pub async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    admin.count_dead_letters();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        admin.metrics().render(),
    )
        .into_response()
}

/// Liveness: fails once the store has refused writes for [`STORE_FAILURE_FATAL`]; sled keeps
/// I/O errors sticky, so a restart (which re-reads the unfinished events) is the way back.
pub async fn live(State(admin): State<Arc<Admin>>) -> Response {
    match admin.store_health().failing_for() {
        Some(d) if d >= STORE_FAILURE_FATAL => {
            let reason = format!(
                "dead-letter store failing for {} s; restart after fixing the disk",
                d.as_secs()
            );
            let body = Liveness {
                live: false,
                reason,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        _ => "ok".into_response(),
    }
}

/// Readiness: partitions assigned and the store accepting writes.
pub async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    let readiness = Readiness {
        ready: admin.ready(),
        partitions: admin.partitions(),
        store_ok: !admin.store_health().is_failing(),
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}
