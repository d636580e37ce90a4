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
