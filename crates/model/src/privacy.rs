//! What of an event may leave ELS.
//!
//! - `user_email` leaves only as the SHA-256 hex digest of the trimmed, lower-cased address.
//! - `org_id` and `user_id` are removed unless the org's custom fields ask for them.
//! - Events never carry flow inputs or outputs; the engine does not send them and the schema
//!   has no place for them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use crate::event::ExecutionEvent;
use crate::settings::CustomField;

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

/// The JSON object sent to the SIEM for an event, serialised straight into the request body
/// (no intermediate `serde_json::Value`): the event's fields without `org_id` and `user_id`,
/// the email as its SHA-256 hash, unknown fields as received, then the org's custom fields.
/// A custom field replaces an event field of the same name (the last of equal keys wins);
/// its values `${org_id}` and `${user_id}` become the event's ids, the only way they leave ELS.
pub struct Outbound<'a> {
    pub event: &'a ExecutionEvent,
    pub custom_fields: &'a [CustomField],
}

impl Serialize for Outbound<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exhaustive on purpose: a field added to the event must be placed here.
        let ExecutionEvent {
            event_id,
            event_type,
            execution_id,
            timestamp,
            flow_id,
            flow_name,
            org_id,
            org_name,
            org_hostname,
            user_id,
            user_email,
            parent_execution_id,
            parent_flow_id,
            parent_flow_name,
            root_execution_id,
            root_flow_id,
            root_flow_name,
            folder_id,
            folder_name,
            folder_id_path,
            engine_mode,
            idempotency_key,
            depth,
            throttled,
            duration,
            step_count,
            error,
            throttle_limit,
            extra,
        } = self.event;
        let custom = self.custom_fields;
        let replaced = |name: &str| custom.iter().any(|f| f.key == name);
        let mut map = s.serialize_map(None)?;
        macro_rules! put {
            ($name:expr, $value:expr) => {
                if !replaced($name) {
                    map.serialize_entry($name, $value)?;
                }
            };
        }
        macro_rules! put_some {
            ($($name:ident),* $(,)?) => {
                $(if let Some(value) = $name {
                    put!(stringify!($name), value);
                })*
            };
        }
        put!("event_id", event_id);
        put!("event_type", event_type);
        put!("execution_id", execution_id);
        put!("timestamp", &Rfc3339Millis(timestamp));
        put!("flow_id", flow_id);
        put!("flow_name", flow_name);
        put!("org_name", org_name);
        put!("org_hostname", org_hostname);
        put!("user_email", &*hashed_email(user_email));
        put_some!(
            parent_execution_id,
            parent_flow_id,
            parent_flow_name,
            root_execution_id,
            root_flow_id,
            root_flow_name,
            folder_id,
            folder_name,
            folder_id_path,
            engine_mode,
            idempotency_key,
            depth,
            throttled,
            duration,
            step_count,
            error,
            throttle_limit,
        );
        for (name, value) in extra {
            if !replaced(name) {
                map.serialize_entry(name, value)?;
            }
        }
        for (i, field) in custom.iter().enumerate() {
            if custom[i + 1..].iter().any(|later| later.key == field.key) {
                continue;
            }
            let value = match field.value.as_str() {
                "${org_id}" => org_id.as_str(),
                "${user_id}" => user_id.as_str(),
                other => other,
            };
            map.serialize_entry(&field.key, value)?;
        }
        map.end()
    }
}

/// The hash of `address`, borrowed when it is already one.
fn hashed_email(address: &str) -> Cow<'_, str> {
    if is_hashed(address) {
        Cow::Borrowed(address)
    } else {
        Cow::Owned(hash_email(address))
    }
}

struct Rfc3339Millis<'a>(&'a DateTime<Utc>);

impl Serialize for Rfc3339Millis<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::event::ser_ts(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// The outbound object as first specified: the event as a JSON value, ids removed, email
    /// hashed, custom fields inserted in order.
    fn reference(event: &ExecutionEvent, custom: &[CustomField]) -> serde_json::Value {
        let mut value = serde_json::to_value(event).unwrap();
        let obj = value.as_object_mut().unwrap();
        obj.remove("org_id");
        obj.remove("user_id");
        obj.insert("user_email".into(), hash_email(&event.user_email).into());
        for f in custom {
            let v = match f.value.as_str() {
                "${org_id}" => event.org_id.clone(),
                "${user_id}" => event.user_id.clone(),
                other => other.to_string(),
            };
            obj.insert(f.key.clone(), v.into());
        }
        value
    }

    /// The top-level keys of an object, repeats included.
    struct Keys(Vec<String>);

    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }

    fn custom_field() -> impl Strategy<Value = CustomField> {
        let keys = prop::sample::select(vec![
            "org_id",
            "user_id",
            "flow_id",
            "user_email",
            "depth",
            "error",
            "future_field",
            "tenant",
            "x",
        ]);
        let values = prop_oneof![
            Just("${org_id}".to_string()),
            Just("${user_id}".to_string()),
            ".{0,8}",
        ];
        (keys, values).prop_map(|(key, value)| CustomField {
            key: key.to_string(),
            value,
        })
    }

    proptest! {
        #[test]
        fn outbound_matches_the_reference(
            custom in prop::collection::vec(custom_field(), 0..5),
            drop_optionals in any::<bool>(),
            hashed in any::<bool>(),
        ) {
            let mut json = crate::event::tests::sample_json();
            if drop_optionals {
                for k in ["depth", "error", "future_field"] {
                    json.as_object_mut().unwrap().remove(k);
                }
            }
            let mut event: ExecutionEvent = serde_json::from_value(json).unwrap();
            if hashed {
                event.user_email = hash_email(&event.user_email);
            }
            let text = serde_json::to_vec(&Outbound { event: &event, custom_fields: &custom }).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&text).unwrap();
            prop_assert_eq!(got, reference(&event, &custom));
            // No key twice (a JSON object with duplicate keys is ambiguous for receivers).
            let mut keys = serde_json::from_slice::<Keys>(&text).unwrap().0;
            let all = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), all);
        }
    }
}
