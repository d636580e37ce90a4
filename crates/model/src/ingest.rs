//! Parsing ingest request bodies into validated events.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON (one object per line).
//! Every event is checked before any is accepted, so a rejected request enqueues nothing: no
//! object in the body may name a key twice (at any depth, see [`crate::json::unique_keys`]),
//! and every event must type-check and validate (for instance ids without control
//! characters). `event_id` is assigned when absent and `user_email` is hashed here, so the
//! clear-text address never reaches Kafka, the dead-letter store or a SIEM.
//!
//! Events are typed straight from the body's text, never through a `serde_json::Value`, so
//! fields ELS passes through keep their exact text (an integer beyond `u64` stays an integer).

use serde::de::DeserializeSeed;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::ModelError;
use crate::event::{ExecutionEvent, IngestSeed};
use crate::json::{unique_keys, KeyCheckError};
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

/// The validated events of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub events: Vec<ExecutionEvent>,
    /// Whether the body was a batch (an array or NDJSON) rather than one object: errors then
    /// name an event as `events[3]`.
    pub batched: bool,
}

impl Batch {
    /// How an error names the event at `index`: `events[3]` in a batch, `body` when the body
    /// is the one event.
    pub fn event_field(&self, index: usize) -> String {
        if self.batched {
            format!("events[{index}]")
        } else {
            "body".to_string()
        }
    }
}

/// Parse and validate a whole request body. All-or-nothing: the first bad event fails it.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    max_events: usize,
) -> Result<Vec<ExecutionEvent>, ModelError> {
    parse_batch(body, format, max_events).map(|b| b.events)
}

/// [`parse_body`], also telling whether the body was a batch.
pub fn parse_batch(
    body: &[u8],
    format: BodyFormat,
    max_events: usize,
) -> Result<Batch, ModelError> {
    let (texts, batched): (Vec<&RawValue>, bool) = match format {
        BodyFormat::Json => {
            let array = body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'[');
            check_keys(body, None, if array { Some("events") } else { None })?;
            let texts = if array {
                serde_json::from_slice(body).map_err(|e| malformed(None, &e))?
            } else {
                vec![serde_json::from_slice(body).map_err(|e| malformed(None, &e))?]
            };
            (texts, array)
        }
        BodyFormat::NdJson => {
            let mut texts = Vec::new();
            for (idx, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let prefix = format!("events[{}]", texts.len());
                check_keys(line, Some(idx + 1), Some(&prefix))?;
                texts.push(serde_json::from_slice(line).map_err(|e| malformed(Some(idx + 1), &e))?);
            }
            (texts, true)
        }
    };
    if texts.is_empty() {
        return Err(ModelError::Empty);
    }
    if texts.len() > max_events {
        return Err(ModelError::TooManyEvents {
            count: texts.len(),
            limit: max_events,
        });
    }
    let events = texts
        .into_iter()
        .enumerate()
        .map(|(idx, text)| {
            parse_event_text(text.get()).map_err(|e| {
                if batched {
                    e.within(&format!("events[{idx}]"))
                } else {
                    e
                }
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Batch { events, batched })
}

/// Refuse repeated keys anywhere in `text`; `prefix` names where the text sits in the body.
fn check_keys(text: &[u8], line: Option<usize>, prefix: Option<&str>) -> Result<(), ModelError> {
    match unique_keys(text) {
        Ok(()) => Ok(()),
        Err(KeyCheckError::Duplicate(field)) => {
            let e = ModelError::DuplicateKey { field };
            Err(prefix.map_or(e.clone(), |p| e.within(p)))
        }
        Err(KeyCheckError::Malformed(message)) => Err(ModelError::MalformedJson { line, message }),
    }
}

fn malformed(line: Option<usize>, e: &serde_json::Error) -> ModelError {
    ModelError::MalformedJson {
        line,
        message: e.to_string(),
    }
}

/// Turn one JSON value into a validated event: assign `event_id`, type-check with the failing
/// field's path, validate, and hash the email. (A `Value` has no repeated keys; numbers keep
/// whatever precision the `Value` kept. The API reads bodies as text, see [`parse_body`].)
pub fn parse_event(value: Value) -> Result<ExecutionEvent, ModelError> {
    parse_event_text(&value.to_string())
}

/// One event from its JSON text (already checked for repeated keys).
fn parse_event_text(text: &str) -> Result<ExecutionEvent, ModelError> {
    if !text.trim_start().starts_with('{') {
        return Err(ModelError::field("", "an event must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let read = IngestSeed.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let mut event = read.map_err(|e| {
        let path = track.path().to_string();
        let message = without_position(&e);
        let field = missing_field(&message)
            .map(str::to_string)
            .unwrap_or_else(|| if path == "." { String::new() } else { path });
        ModelError::field(field, message)
    })?;
    de.end().map_err(|e| malformed(None, &e))?;
    event.validate()?;
    event.user_email = privacy::hash_email(&event.user_email);
    Ok(event)
}

/// serde_json's message without ` at line 1 column 80`: the position is within one event's
/// text, not the body, so it would mislead; the field's path says where.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(m) if e.line() > 0 => m.to_string(),
        _ => message,
    }
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
            ("event_type", json!("flow_exploded")),
            ("event_type", json!("FLOW EXPLODED")),
            ("event_type", json!("")),
            ("event_type", json!("F".repeat(65))),
            ("event_type", json!(7)),
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
    fn new_and_unknown_event_types_pass_ingest_unchanged() {
        let mut paused = event_json();
        paused["event_type"] = json!("FLOW_PAUSED");
        paused["pause"] = json!({"pause_type": "wait_for", "resume_after_ms": 1000});
        let mut limited = event_json();
        limited["event_type"] = json!("FLOW_THIRD_PARTY_RATE_LIMITED");
        limited["third_party_limit"] = json!({"service": "slack"});
        let mut unknown = event_json();
        unknown["event_type"] = json!("FLOW_RESUMED");
        let body = serde_json::to_vec(&json!([paused, limited, unknown])).unwrap();
        let events = parse_body(&body, BodyFormat::Json, 10).unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "FLOW_PAUSED",
                "FLOW_THIRD_PARTY_RATE_LIMITED",
                "FLOW_RESUMED"
            ]
        );
        assert!(!events[2].event_type.is_known());
        let out = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(out["event_type"], "FLOW_RESUMED");
        // The metadata of the new types is typed: a bad value names its field.
        let mut bad = event_json();
        bad["pause"] = json!({"pause_type": "w", "resume_after_ms": -1});
        let arr = json!([event_json(), bad]);
        let err = parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 10).unwrap_err();
        assert_eq!(
            err.field_name(),
            Some("events[1].pause.resume_after_ms"),
            "{err}"
        );
        let mut bad = event_json();
        bad["event_type"] = json!("flow_resumed");
        let arr = json!([event_json(), bad]);
        let err = parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 10).unwrap_err();
        assert_eq!(err.field_name(), Some("events[1].event_type"), "{err}");
        assert!(err.to_string().contains("flow_resumed"), "{err}");
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
    fn duplicate_keys_are_refused_at_every_level_and_framing() {
        let line = serde_json::to_string(&event_json()).unwrap();
        let dup_org = line.replacen(
            "\"org_id\":\"org-1\"",
            "\"org_id\":\"A\",\"org_id\":\"B\"",
            1,
        );
        let dup_nested = line.replacen(
            "{",
            "{\"meta\":{\"items\":[{\"k\":1},{\"k\":1,\"k\":2}]},",
            1,
        );
        let dup_error = line.replacen(
            "{",
            "{\"error\":{\"error_code\":\"E\",\"error_message\":\"m\",\"error_code\":\"F\"},",
            1,
        );
        let dup_type = line.replacen("{", "{\"event_type\":\"FLOW_FAILED\",", 1);
        let cases = [
            (dup_org.clone(), BodyFormat::Json, "org_id"),
            (dup_type.clone(), BodyFormat::Json, "event_type"),
            (
                format!("[{line},{dup_nested}]"),
                BodyFormat::Json,
                "events[1].meta.items[1].k",
            ),
            (
                format!("[{dup_error}]"),
                BodyFormat::Json,
                "events[0].error.error_code",
            ),
            (
                format!("{line}\n\n{line}\n{dup_org}\n"),
                BodyFormat::NdJson,
                "events[2].org_id",
            ),
            (
                format!("{dup_nested}\n"),
                BodyFormat::NdJson,
                "events[0].meta.items[1].k",
            ),
        ];
        for (body, format, field) in cases {
            let err = parse_body(body.as_bytes(), format, 10).unwrap_err();
            assert!(matches!(err, ModelError::DuplicateKey { .. }), "{err}");
            assert_eq!(err.field_name(), Some(field), "{body} -> {err}");
        }
        // Equal keys in different objects are fine.
        let fine = line.replacen("{", "{\"a\":{\"org_id\":1},\"b\":[{\"org_id\":2}],", 1);
        assert!(parse_body(fine.as_bytes(), BodyFormat::Json, 10).is_ok());
    }

    #[test]
    fn control_characters_in_ids_are_refused() {
        for (field, value) in [
            ("org_id", "org-1\n2026-01-01 WARN forged"),
            ("org_id", "org\u{1b}[31m-1"),
            ("flow_id", "flo\r1"),
            ("user_id", "u\u{0}1"),
            ("org_hostname", "acme\t.example.com"),
            ("parent_flow_id", "p\u{85}"),
            ("folder_id", "f\u{7f}"),
        ] {
            let mut v = event_json();
            v[field] = json!(value);
            let err =
                parse_body(&serde_json::to_vec(&v).unwrap(), BodyFormat::Json, 10).unwrap_err();
            assert_eq!(err.field_name(), Some(field), "{value:?}: {err}");
            let arr = json!([event_json(), v]);
            let err =
                parse_body(&serde_json::to_vec(&arr).unwrap(), BodyFormat::Json, 10).unwrap_err();
            assert_eq!(
                err.field_name(),
                Some(format!("events[1].{field}").as_str())
            );
        }
    }

    #[test]
    fn pass_through_fields_keep_exact_numbers_and_ids_are_assigned() {
        let line = serde_json::to_string(&event_json()).unwrap().replacen(
            "{",
            "{\"event_id\":null,\"big\":123456789012345678901234567890,\"neg\":-18446744073709551617,\"m\":{\"n\":[18446744073709551616]},",
            1,
        );
        for (body, format) in [
            (line.clone(), BodyFormat::Json),
            (format!("[{line}]"), BodyFormat::Json),
            (format!("{line}\r\n"), BodyFormat::NdJson),
        ] {
            let batch = parse_batch(body.as_bytes(), format, 10).unwrap();
            assert_eq!(
                batch.batched,
                body.starts_with('[') || format == BodyFormat::NdJson
            );
            let out = serde_json::to_string(&batch.events[0]).unwrap();
            for digits in [
                "\"big\":123456789012345678901234567890",
                "\"neg\":-18446744073709551617",
                "\"m\":{\"n\":[18446744073709551616]}",
            ] {
                assert!(out.contains(digits), "{digits} not in {out}");
            }
            assert_eq!(batch.events[0].event_id.get_version_num(), 4);
        }
        let batch = parse_batch(line.as_bytes(), BodyFormat::Json, 10).unwrap();
        assert_eq!(batch.event_field(0), "body");
        let batch = parse_batch(format!("[{line}]").as_bytes(), BodyFormat::Json, 10).unwrap();
        assert_eq!(batch.event_field(3), "events[3]");
    }

    #[test]
    fn typing_errors_carry_no_position_within_the_event() {
        let mut v = event_json();
        v["depth"] = json!("deep");
        let err = parse_body(&serde_json::to_vec(&v).unwrap(), BodyFormat::Json, 10).unwrap_err();
        assert_eq!(err.field_name(), Some("depth"));
        assert!(!err.to_string().contains("column"), "{err}");
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
