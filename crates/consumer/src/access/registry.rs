//! [`TokenRegistry`]: every issued token in memory (id -> record, secret hash -> id), fed by
//! the tokens topic on every instance, so a token created or revoked through any instance is
//! honoured by all within about a second. Authenticates a bearer token: the bootstrap
//! `ELS_ADMIN_TOKEN` (compared in constant time) or an issued one (looked up by the SHA-256
//! of what was sent: the lookup never sees a stored secret, there is none).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::Utc;

use super::token::{hash_secret, Principal, TokenRecord, TokenRecordV1};
use super::topic::TopicWriter;
use crate::error::ConsumerError;

/// Why a bearer token was not accepted (every one is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Unknown,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "missing bearer token",
            Refusal::Unknown => "wrong bearer token",
            Refusal::Expired => "the token has expired",
            Refusal::Revoked => "the token has been revoked",
        }
    }
}

#[derive(Default)]
struct Tokens {
    by_id: HashMap<String, TokenRecordV1>,
    by_hash: HashMap<String, String>,
}

/// Every token, shared by the auth layer and the token routes.
#[derive(Clone, Default)]
pub struct TokenRegistry {
    tokens: Arc<RwLock<Tokens>>,
    /// The tokens topic; without it tokens cannot be issued (only the bootstrap token works).
    writer: Arc<OnceLock<TopicWriter>>,
}

impl std::fmt::Debug for TokenRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRegistry")
            .field("tokens", &self.list().len())
            .finish_non_exhaustive()
    }
}

impl TokenRegistry {
    /// Writes go to `writer` from now on.
    pub fn attach_writer(&self, writer: TopicWriter) {
        let _ = self.writer.set(writer);
    }

    pub fn writable(&self) -> bool {
        self.writer.get().is_some()
    }

    /// Take a record read from the topic (or, in tests, put directly); `None` removes `id`.
    pub fn apply(&self, id: &str, record: Option<TokenRecordV1>) {
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = tokens.by_id.remove(id) {
            tokens.by_hash.remove(&old.secret_sha256);
        }
        if let Some(r) = record {
            tokens.by_hash.insert(r.secret_sha256.clone(), r.id.clone());
            tokens.by_id.insert(id.to_string(), r);
        }
    }

    /// Apply one topic record (key = id); undecodable ones are skipped with a warning that
    /// names only the id.
    pub fn apply_payload(&self, id: &str, payload: Option<&[u8]>) {
        match payload.map(serde_json::from_slice::<TokenRecord>) {
            None => self.apply(id, None),
            Some(Ok(TokenRecord::V1(r))) if r.id == id => self.apply(id, Some(r)),
            Some(_) => tracing::warn!(token_id = id, "skipping an unreadable token record"),
        }
    }

    pub fn get(&self, id: &str) -> Option<TokenRecordV1> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens.by_id.get(id).cloned()
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenRecordV1> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = tokens.by_id.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Who `given` (the bearer credentials, empty when none) is; `bootstrap` is
    /// `ELS_ADMIN_TOKEN`.
    pub fn authenticate(&self, bootstrap: &str, given: &str) -> Result<Principal, Refusal> {
        if given.is_empty() {
            return Err(Refusal::Missing);
        }
        if constant_time_eq(given.as_bytes(), bootstrap.as_bytes()) {
            return Ok(Principal::bootstrap());
        }
        let hash = hash_secret(given);
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let record = tokens
            .by_hash
            .get(&hash)
            .and_then(|id| tokens.by_id.get(id))
            .ok_or(Refusal::Unknown)?;
        if record.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if record.expires_at <= Utc::now() {
            return Err(Refusal::Expired);
        }
        Ok(record.principal())
    }

    /// Store `record` in the topic (acked) and apply it here at once.
    pub async fn save(&self, record: TokenRecordV1) -> Result<(), ConsumerError> {
        let writer = self.writer.get().ok_or(ConsumerError::ReadOnlyTokens)?;
        let payload = serde_json::to_vec(&TokenRecord::V1(record.clone()))?;
        writer.write(&record.id, Some(&payload)).await?;
        self.apply(&record.id.clone(), Some(record));
        Ok(())
    }
}

/// Equal bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_api::Role;
    use std::collections::BTreeSet;

    #[test]
    fn authenticates_bootstrap_issued_expired_and_revoked_tokens() {
        let registry = TokenRegistry::default();
        let orgs = BTreeSet::from(["org-a".to_string()]);
        let soon = Utc::now() + chrono::Duration::hours(1);
        let (good, good_secret) = TokenRecordV1::issue(Role::OrgAdmin, orgs.clone(), soon, "t", "");
        let (mut old, old_secret) =
            TokenRecordV1::issue(Role::OrgAdmin, orgs.clone(), soon, "t", "");
        old.expires_at = Utc::now() - chrono::Duration::seconds(1);
        let (mut gone, gone_secret) = TokenRecordV1::issue(Role::OrgViewer, orgs, soon, "t", "");
        gone.revoked_at = Some(Utc::now());
        for r in [&good, &old, &gone] {
            registry.apply(&r.id, Some(r.clone()));
        }
        let boot = "bootstrap-token-0123456789";
        assert!(registry.authenticate(boot, boot).unwrap().is_super_admin());
        let p = registry.authenticate(boot, &good_secret).unwrap();
        assert_eq!(
            (p.role, p.token_id.as_str()),
            (Role::OrgAdmin, good.id.as_str())
        );
        assert_eq!(
            registry.authenticate(boot, &old_secret),
            Err(Refusal::Expired)
        );
        assert_eq!(
            registry.authenticate(boot, &gone_secret),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            registry.authenticate(boot, "els_nope"),
            Err(Refusal::Unknown)
        );
        assert_eq!(registry.authenticate(boot, ""), Err(Refusal::Missing));
        // The hash itself is not a credential.
        assert_eq!(
            registry.authenticate(boot, &good.secret_sha256),
            Err(Refusal::Unknown)
        );
        // A tombstone forgets the token.
        registry.apply_payload(&good.id, None);
        assert_eq!(
            registry.authenticate(boot, &good_secret),
            Err(Refusal::Unknown)
        );
    }
}
