//! What of an event may leave ELS.
//!
//! - `user_email` leaves only as the SHA-256 hex digest of the trimmed, lower-cased address.
//! - `org_id` and `user_id` are removed unless the org's custom fields ask for them.
//! - A custom field never replaces `event_id`, `user_email`, `org_id` or `user_id`
//!   ([`RESERVED_FIELD_KEYS`]): settings that try are refused at validation, and
//!   [`write_outbound`] skips such a field should one reach it anyway.
//! - Events never carry flow inputs or outputs; the engine does not send them and the schema
//!   has no place for them.

use sha2::{Digest, Sha256};

use crate::settings::CustomField;
use crate::topic::TopicEvent;

/// Keys a custom field may not have: the id receivers de-duplicate on, the hashed address,
/// and the ids that leave ELS only as a custom field's *value* (`${org_id}`, `${user_id}`).
pub const RESERVED_FIELD_KEYS: [&str; 4] = ["event_id", "user_email", "org_id", "user_id"];

/// Whether `key` is (or, trimmed and in any case, reads as) a reserved key.
pub fn is_reserved_field_key(key: &str) -> bool {
    let key = key.trim();
    RESERVED_FIELD_KEYS
        .iter()
        .any(|reserved| key.eq_ignore_ascii_case(reserved))
}

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

/// Append the JSON object sent to the SIEM for `event`: its members as read from the topic
/// without `org_id` and `user_id`, the email as its SHA-256 hash, then the org's custom
/// fields. A custom field replaces a member of the same name (the last of equal keys wins);
/// its values `${org_id}` and `${user_id}` become the event's ids, the only way they leave
/// ELS. Custom fields with a [reserved key](RESERVED_FIELD_KEYS) are skipped (validation
/// refuses them). Members are copied as text (runs of kept members in one slice), not
/// re-serialised.
pub fn write_outbound(out: &mut Vec<u8>, event: &TopicEvent, custom_fields: &[CustomField]) {
    let text = event.json();
    let replaced = |name: &str| {
        custom_fields
            .iter()
            .any(|f| f.key == name && !is_reserved_field_key(&f.key))
    };
    let email_hashed = is_hashed(event.user_email());
    let mut first = true;
    // A run of kept members not yet copied: byte range in `text`.
    let mut run: Option<(usize, usize)> = None;
    out.push(b'{');
    for m in event.members() {
        let keep = !matches!(m.key, "org_id" | "user_id")
            && (m.key != "user_email" || email_hashed)
            && !replaced(m.key);
        match (keep, m.span) {
            (true, Some((a, b))) => {
                run = Some(run.map_or((a, b), |(start, _)| (start, b)));
                continue;
            }
            _ => {
                if let Some((a, b)) = run.take() {
                    comma(out, &mut first);
                    out.extend_from_slice(&text.as_bytes()[a..b]);
                }
            }
        }
        if keep {
            // A key with escapes: written again, its value copied.
            comma(out, &mut first);
            write_json_str(out, m.key);
            out.push(b':');
            out.extend_from_slice(m.value.as_bytes());
        } else if m.key == "user_email" {
            comma(out, &mut first);
            out.extend_from_slice(b"\"user_email\":");
            write_json_str(out, &hash_email(event.user_email()));
        }
    }
    if let Some((a, b)) = run {
        comma(out, &mut first);
        out.extend_from_slice(&text.as_bytes()[a..b]);
    }
    for (i, field) in custom_fields.iter().enumerate() {
        if is_reserved_field_key(&field.key)
            || custom_fields[i + 1..]
                .iter()
                .any(|later| later.key == field.key)
        {
            continue;
        }
        let value = match field.value.as_str() {
            "${org_id}" => event.org_id(),
            "${user_id}" => event.user_id(),
            other => other,
        };
        comma(out, &mut first);
        write_json_str(out, &field.key);
        out.push(b':');
        write_json_str(out, value);
    }
    out.push(b'}');
}

/// A separator before every member but the first.
fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::replace(first, false) {
        out.push(b',');
    }
}

/// Append `s` as a JSON string.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
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

    use crate::event::ExecutionEvent;

    /// The outbound object as specified: the event as a JSON value, ids removed, email
    /// hashed, custom fields inserted in order except those with a reserved key.
    fn reference(event: &ExecutionEvent, custom: &[CustomField]) -> serde_json::Value {
        let mut value = serde_json::to_value(event).unwrap();
        let obj = value.as_object_mut().unwrap();
        obj.remove("org_id");
        obj.remove("user_id");
        obj.insert("user_email".into(), hash_email(&event.user_email).into());
        for f in custom.iter().filter(|f| !is_reserved_field_key(&f.key)) {
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
            "event_id",
            "User_ID",
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

    #[test]
    fn reserved_custom_fields_never_shadow_the_event() {
        let mut event: ExecutionEvent =
            serde_json::from_value(crate::event::tests::sample_json()).unwrap();
        event.user_id = "alice@example.com".into();
        let topic = TopicEvent::from_event(&event).unwrap();
        let custom: Vec<CustomField> = ["user_email", "event_id", "org_id", "USER_ID"]
            .iter()
            .map(|k| CustomField {
                key: k.to_string(),
                value: "${user_id}".into(),
            })
            .collect();
        let mut text = Vec::new();
        write_outbound(&mut text, &topic, &custom);
        let got: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(got["user_email"], hash_email("Alice@Example.com").as_str());
        assert_eq!(got["event_id"], event.event_id.to_string().as_str());
        assert!(got.get("org_id").is_none() && got.get("USER_ID").is_none());
        assert!(!String::from_utf8(text).unwrap().contains('@'));
    }

    #[test]
    fn pass_through_numbers_reach_the_siem_exactly() {
        let text = crate::event::tests::sample_json().to_string().replacen(
            "\"depth\":1",
            "\"depth\":1,\"big\":123456789012345678901234567890",
            1,
        );
        let event = crate::ingest::parse_body(text.as_bytes(), crate::ingest::BodyFormat::Json, 1)
            .unwrap()
            .remove(0);
        let mut out = Vec::new();
        write_outbound(&mut out, &TopicEvent::from_event(&event).unwrap(), &[]);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\"big\":123456789012345678901234567890"),
            "{out}"
        );
    }

    proptest! {
        #[test]
        fn outbound_matches_the_reference(
            custom in prop::collection::vec(custom_field(), 0..5),
            drop_optionals in any::<bool>(),
            hashed in any::<bool>(),
            weird_key in any::<bool>(),
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
            if weird_key {
                event.extra.insert(
                    "we\"ird\n".into(),
                    crate::json::RawJson::from_value(&serde_json::json!({"k": [1, "\u{1}"]})),
                );
            }
            let mut text = Vec::new();
            write_outbound(&mut text, &TopicEvent::from_event(&event).unwrap(), &custom);
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
