//! Who may do what: the roles of admin API tokens ([`Role`]), a token as the API shows it
//! ([`TokenInfo`]: never the secret), the request that creates one ([`CreateToken`]) and the
//! one answer that carries the secret ([`CreatedToken`]), the caller's own identity
//! ([`WhoAmI`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every org, and token management (the bootstrap `ELS_ADMIN_TOKEN` is one).
    SuperAdmin,
    /// Its orgs: settings, streams, test events, status, dead letters, replay, purge.
    OrgAdmin,
    /// Its orgs, read only.
    OrgViewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::SuperAdmin, Role::OrgAdmin, Role::OrgViewer];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::OrgAdmin => "org_admin",
            Role::OrgViewer => "org_viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/tokens` (super admin): a new token for `orgs` (empty for a super admin) that
/// expires after `ttl_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub role: Role,
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Lifetime in seconds (at most ten years).
    pub ttl_secs: u64,
    /// A note for operators (who or what uses it).
    #[serde(default)]
    pub description: String,
}

/// A token as lists and answers show it: its id (not secret), role, orgs and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// `tok_<hex>`: names the token in lists, the audit trail and `revoke`; not a credential.
    pub id: String,
    pub role: Role,
    pub orgs: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set once revoked: the token no longer works.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token id of the super admin that created it.
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub description: String,
}

/// `POST /v1/tokens` answer: the token and its secret, shown this once (only its hash is
/// stored). `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenInfo,
    /// The bearer token, `els_` + 64 hex characters (32 random bytes).
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `GET /v1/tokens` (super admin): every token, revoked and expired ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `GET /v1/whoami`: the calling token (any role), so the console offers only what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// `bootstrap` for `ELS_ADMIN_TOKEN`.
    pub token_id: String,
    pub role: Role,
    /// The orgs it may touch; empty for a super admin (all orgs).
    pub orgs: Vec<String>,
    /// `None` for the bootstrap token.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it may change things (settings, test events, dead letters).
    pub can_write: bool,
}
