//! Tokens as stored and the identity a request acts as.
//!
//! A token's secret is `els_` + 64 hex characters (32 bytes from the OS's CSPRNG); only its
//! SHA-256 is stored, next to an id (`tok_` + 16 hex characters) that names the token in
//! lists and the audit trail and is not a credential. `Debug` of a record hides the hash.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use els_api::{Role, TokenInfo};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prefix of every issued secret (so a leaked one is recognisable, e.g. by scanners).
pub const SECRET_PREFIX: &str = "els_";
/// The id the bootstrap token (`ELS_ADMIN_TOKEN`) acts under.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// The persisted record (the tokens topic's value, key = token id), versioned.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "v")]
pub enum TokenRecord {
    #[serde(rename = "1")]
    V1(TokenRecordV1),
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecordV1 {
    pub id: String,
    pub role: Role,
    /// The orgs it may touch (empty for a super admin: all).
    pub orgs: BTreeSet<String>,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub description: String,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let TokenRecord::V1(v1) = self;
        f.debug_tuple("V1").field(v1).finish()
    }
}

impl std::fmt::Debug for TokenRecordV1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecordV1")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("orgs", &self.orgs)
            .field("secret_sha256", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl TokenRecordV1 {
    /// A new token and its secret (to be shown once).
    pub fn issue(
        role: Role,
        orgs: BTreeSet<String>,
        expires_at: DateTime<Utc>,
        created_by: &str,
        description: &str,
    ) -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let record = Self {
            id: format!("tok_{}", hex::encode(id)),
            role,
            orgs,
            secret_sha256: hash_secret(&secret),
            created_at: Utc::now(),
            expires_at,
            revoked_at: None,
            created_by: created_by.to_string(),
            description: description.to_string(),
        };
        (record, secret)
    }

    /// What the API shows of it.
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            role: self.role,
            orgs: self.orgs.iter().cloned().collect(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            created_by: self.created_by.clone(),
            description: self.description.clone(),
        }
    }

    pub fn principal(&self) -> Principal {
        Principal {
            token_id: self.id.clone(),
            role: self.role,
            orgs: self.orgs.clone(),
            expires_at: Some(self.expires_at),
        }
    }
}

/// Lower-case hex SHA-256 of `secret`.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who a request acts as: put into the request by the auth layer, read by handlers whose org
/// is not in the path (queries, bodies, records).
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    /// Ignored for a super admin (all orgs).
    pub orgs: BTreeSet<String>,
    /// `None` for the bootstrap token.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("token_id", &self.token_id)
            .field("role", &self.role)
            .field("orgs", &self.orgs)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// `ELS_ADMIN_TOKEN`.
    pub fn bootstrap() -> Self {
        Self {
            token_id: BOOTSTRAP_ID.to_string(),
            role: Role::SuperAdmin,
            orgs: BTreeSet::new(),
            expires_at: None,
        }
    }

    pub fn is_super_admin(&self) -> bool {
        self.role == Role::SuperAdmin
    }

    /// May change things (in its orgs): super and org admins.
    pub fn can_write(&self) -> bool {
        matches!(self.role, Role::SuperAdmin | Role::OrgAdmin)
    }

    /// May see (and, if [`Self::can_write`], change) `org`.
    pub fn covers(&self, org: &str) -> bool {
        self.is_super_admin() || self.orgs.contains(org)
    }

    /// The orgs it is limited to; `None` for all.
    pub fn scope(&self) -> Option<&BTreeSet<String>> {
        (!self.is_super_admin()).then_some(&self.orgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_only_their_hash_is_kept() {
        let orgs = BTreeSet::from(["org-a".to_string()]);
        let (a, secret_a) = TokenRecordV1::issue(Role::OrgAdmin, orgs.clone(), Utc::now(), "t", "");
        let (b, secret_b) = TokenRecordV1::issue(Role::OrgAdmin, orgs, Utc::now(), "t", "");
        assert!(secret_a.starts_with("els_") && secret_a.len() == 4 + 64);
        assert_ne!(secret_a, secret_b);
        assert_ne!(a.id, b.id);
        assert_eq!(a.secret_sha256, hash_secret(&secret_a));
        let stored = serde_json::to_string(&TokenRecord::V1(a.clone())).unwrap();
        assert!(stored.starts_with(r#"{"v":"1","#), "{stored}");
        assert!(!stored.contains(&secret_a[4..]), "{stored}");
        for shown in [
            format!("{a:?}"),
            format!("{:?}", TokenRecord::V1(a.clone())),
        ] {
            assert!(!shown.contains(&a.secret_sha256), "{shown}");
            assert!(shown.contains(&a.id), "ids are not secret: {shown}");
        }
        assert!(!serde_json::to_string(&a.info())
            .unwrap()
            .contains(&a.secret_sha256));
    }

    #[test]
    fn scopes() {
        let viewer = Principal {
            token_id: "t".into(),
            role: Role::OrgViewer,
            orgs: BTreeSet::from(["a".to_string()]),
            expires_at: None,
        };
        assert!(viewer.covers("a") && !viewer.covers("b") && !viewer.can_write());
        let sup = Principal::bootstrap();
        assert!(sup.covers("anything") && sup.can_write() && sup.scope().is_none());
    }
}
