//! The settings routes' answers. A settings document itself (the `PUT` body and the `GET`
//! answer) is [`OrgSettings`] from `els-model`; `elsctl` passes it through as opaque JSON so
//! that only the server validates it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use els_model::settings::{OrgSettings, REDACTED};

/// `GET /v1/orgs`: the orgs with their own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrgList {
    pub orgs: Vec<String>,
}

/// `DELETE /v1/orgs/{org}/settings`: `false` when the org had no settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettingsDeleted {
    pub deleted: bool,
}

/// `GET /v1/orgs/{org}/streams`: the org's streams, sorted by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamList {
    pub org: String,
    /// How many streams an org may have (`ELS_MAX_STREAMS_PER_ORG`).
    pub max_streams: usize,
    pub streams: Vec<StreamEntry>,
}

/// One stream of an org: its id, its settings (redacted) and its health here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamEntry {
    pub id: String,
    #[schema(value_type = Object)]
    pub settings: OrgSettings,
    pub status: crate::status::StreamStatus,
}
