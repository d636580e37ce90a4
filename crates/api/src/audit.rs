//! The audit trail: who ([`AuditEntry::token_id`]) did what to which org, when, and how it
//! went; `GET /v1/audit` ([`AuditQuery`] -> [`AuditList`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The acting token's id (`bootstrap` for `ELS_ADMIN_TOKEN`); never its secret.
    pub token_id: String,
    /// `settings.put`, `settings.delete`, `test_event`, `dead_letters.replay`,
    /// `dead_letters.purge`, `tokens.create`, `tokens.revoke`, ...
    pub action: String,
    /// The org acted on; `None` for actions on no single org (tokens, a purge across orgs).
    pub org: Option<String>,
    /// The answer's status code.
    pub status: u16,
    /// `ok` (2xx) or `failed`.
    pub outcome: String,
    /// What was acted on besides the org (a token id, a dead-letter id), if anything.
    #[serde(default)]
    pub target: Option<String>,
}

/// `GET /v1/audit?org=&limit=`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}
