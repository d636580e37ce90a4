//! Parsing ingest request bodies into validated events.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON (one object per line).
//! Every event is checked before any is accepted, so a rejected request enqueues nothing.
//! `event_id` is assigned when absent and `user_email` is hashed here, so the clear-text
//! address never reaches Kafka, the dead-letter store or a SIEM.

use serde_json::Value;
use uuid::Uuid;

use crate::error::ModelError;
use crate::event::ExecutionEvent;
use crate::privacy;

/// How the body is framed, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: an object or an array of objects.
    Json,
    /// `application/x-ndjson` (or `application/jsonl`): one object per line.
    NdJson,
}

impl BodyFormat {
    /// Map a `Content-Type` header value to a format; `None` means unsupported (HTTP 415).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::NdJson),
            _ => None,
        }
    }
}

/// Parse and validate a whole request body. All-or-nothing: the first bad event fails it.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    max_events: usize,
) -> Result<Vec<ExecutionEvent>, ModelError> {
    let (values, batched) = match format {
        BodyFormat::Json => match parse_json(body, None)? {
            Value::Array(items) => (items, true),
            other => (vec![other], false),
        },
        BodyFormat::NdJson => {
            let mut items = Vec::new();
            for (idx, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                items.push(parse_json(line, Some(idx + 1))?);
            }
            (items, true)
        }
    };
    if values.is_empty() {
        return Err(ModelError::Empty);
    }
    if values.len() > max_events {
        return Err(ModelError::TooManyEvents {
            count: values.len(),
            limit: max_events,
        });
    }
    values
        .into_iter()
        .enumerate()
        .map(|(idx, value)| {
            parse_event(value).map_err(|e| {
                if batched {
                    e.within(&format!("events[{idx}]"))
                } else {
                    e
                }
            })
        })
        .collect()
}

fn parse_json(bytes: &[u8], line: Option<usize>) -> Result<Value, ModelError> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::MalformedJson {
        line,
        message: e.to_string(),
    })
}

/// Turn one JSON value into a validated event: assign `event_id`, type-check with the failing
/// field's path, validate, and hash the email.
pub fn parse_event(mut value: Value) -> Result<ExecutionEvent, ModelError> {
    let Some(obj) = value.as_object_mut() else {
        return Err(ModelError::field("", "an event must be a JSON object"));
    };
    if obj.get("event_id").is_none_or(Value::is_null) {
        obj.insert("event_id".into(), Value::String(Uuid::new_v4().to_string()));
    }
    let mut event: ExecutionEvent = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = missing_field(&message)
            .map(str::to_string)
            .unwrap_or_else(|| if path == "." { String::new() } else { path });
        ModelError::field(field, message)
    })?;
    event.validate()?;
    event.user_email = privacy::hash_email(&event.user_email);
    Ok(event)
}

/// serde reports a missing field at the parent's path; pull the field's name out of the message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_json() -> Value {
        json!({
            "event_type": "FLOW_START",
            "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z",
            "flow_id": "flo1", "flow_name": "F", "org_id": "org-1", "org_name": "Acme",
            "org_hostname": "acme.example.com", "user_id": "u1", "user_email": "a@b.c"
        })
    }

    #[test]
    fn single_object_gets_id_and_hashed_email() {
        let body = serde_json::to_vec(&event_json()).unwrap();
        let events = parse_body(&body, BodyFormat::Json, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].user_email, privacy::hash_email("a@b.c"));
        assert!(!events[0].user_email.contains('@'));
    }

    #[test]
    fn array_and_ndjson() {
        let arr = json!([event_json(), event_json()]);
        let events = parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 10).unwrap();
        assert_eq!(events.len(), 2);
        assert_ne!(events[0].event_id, events[1].event_id);
        let line = serde_json::to_string(&event_json()).unwrap();
        let nd = format!("{line}\n\n{line}\n");
        assert_eq!(
            parse_body(nd.as_bytes(), BodyFormat::NdJson, 10)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn missing_field_is_named() {
        let mut v = event_json();
        v.as_object_mut().unwrap().remove("flow_id");
        let err = parse_body(&serde_json::to_vec(&v).unwrap(), BodyFormat::Json, 10).unwrap_err();
        assert_eq!(err.field_name(), Some("flow_id"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_index() {
        let mut bad = event_json();
        bad["depth"] = json!("deep");
        let arr = json!([event_json(), bad]);
        let err = parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 10).unwrap_err();
        assert_eq!(err.field_name(), Some("events[1].depth"), "{err}");
    }

    #[test]
    fn bad_enum_and_uuid_and_timestamp() {
        for (field, value) in [
            ("event_type", json!("FLOW_EXPLODED")),
            ("execution_id", json!("not-a-uuid")),
            ("timestamp", json!("yesterday")),
            ("event_id", json!(42)),
        ] {
            let mut v = event_json();
            v[field] = value;
            let err =
                parse_body(&serde_json::to_vec(&v).unwrap(), BodyFormat::Json, 10).unwrap_err();
            assert_eq!(err.field_name(), Some(field), "{err}");
        }
    }

    #[test]
    fn malformed_and_limits() {
        assert!(matches!(
            parse_body(b"{\"event_type\":", BodyFormat::Json, 10),
            Err(ModelError::MalformedJson { .. })
        ));
        assert!(matches!(
            parse_body(b"{}\nnope", BodyFormat::NdJson, 10),
            Err(ModelError::InvalidField { .. }) | Err(ModelError::MalformedJson { .. })
        ));
        assert_eq!(
            parse_body(b"[]", BodyFormat::Json, 10),
            Err(ModelError::Empty)
        );
        let arr = json!([event_json(), event_json(), event_json()]);
        assert!(matches!(
            parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 2),
            Err(ModelError::TooManyEvents { count: 3, limit: 2 })
        ));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_body(deep.as_bytes(), BodyFormat::Json, 10).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("application/x-ndjson"),
            Some(BodyFormat::NdJson)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
    }
}

#[cfg(test)]
mod fuzz {
    //! Bounded fuzzing of the parser: arbitrary bytes and arbitrary JSON never panic, and
    //! whatever is accepted is a valid event with a hashed email.
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("event_type".to_string()),
                        Just("user_email".to_string()),
                        Just("timestamp".to_string()),
                        Just("org_id".to_string()),
                        "[a-z_]{1,10}"
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_body(&bytes, BodyFormat::Json, 100);
            let _ = parse_body(&bytes, BodyFormat::NdJson, 100);
        }

        #[test]
        fn arbitrary_json_never_panics_and_accepted_is_valid(value in arb_json()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            if let Ok(events) = parse_body(&bytes, BodyFormat::Json, 100) {
                for e in events {
                    prop_assert!(e.validate().is_ok());
                    prop_assert!(crate::privacy::is_hashed(&e.user_email));
                }
            }
        }

        #[test]
        fn mutated_valid_events_never_panic(field in "[a-z_]{1,16}", value in arb_json()) {
            let mut v = serde_json::json!({
                "event_type": "FLOW_START",
                "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
                "timestamp": "2026-11-25T01:02:03.456Z",
                "flow_id": "f", "flow_name": "F", "org_id": "o", "org_name": "O",
                "org_hostname": "h", "user_id": "u", "user_email": "a@b.c"
            });
            v[field] = value;
            let _ = parse_event(v);
        }
    }
}
