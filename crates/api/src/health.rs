//! The probes' JSON answers (`/healthz` answers plain `ok` while live).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /readyz`, status 200 when `ready`, else 503.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Partitions assigned and the store accepting writes.
    pub ready: bool,
    /// Partitions of the events topic this instance owns.
    pub partitions: Vec<i32>,
    /// The local store accepts writes.
    pub store_ok: bool,
}

/// `GET /healthz` when no longer live (status 503): restart the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `false` in this answer.
    pub live: bool,
    pub reason: String,
}
