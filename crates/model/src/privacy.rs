//! What of an event may leave ELS.
//!
//! - `user_email` leaves only as the SHA-256 hex digest of the trimmed, lower-cased address.
//! - `org_id` and `user_id` are removed unless the org's settings ask for them.
//! - Events never carry flow inputs or outputs; the engine does not send them and the schema
//!   has no place for them.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::ExecutionEvent;

/// SHA-256 hex of the trimmed, lower-cased address. Idempotent: an already hashed value (64
/// lower-case hex digits, which no e-mail address is) is returned unchanged, so replays and
/// re-ingestion never double-hash.
pub fn hash_email(address: &str) -> String {
    if is_hashed(address) {
        return address.to_string();
    }
    let normalised = address.trim().to_lowercase();
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// True when the value is already a SHA-256 hex digest.
pub fn is_hashed(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which identity fields an org chose to receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityFields {
    pub org_id: bool,
    pub user_id: bool,
}

/// The JSON object that is sent to the SIEM for this event.
pub fn outbound_event(event: &ExecutionEvent, identity: IdentityFields) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        if !identity.org_id {
            obj.remove("org_id");
        }
        if !identity.user_id {
            obj.remove("user_id");
        }
        obj.insert(
            "user_email".into(),
            Value::String(hash_email(&event.user_email)),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_normalised_and_idempotent() {
        let a = hash_email("  Alice@Example.COM ");
        assert_eq!(a, hash_email("alice@example.com"));
        assert_eq!(
            a,
            "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"
        );
        assert_eq!(hash_email(&a), a);
    }
}
