//! `Deserialize` for [`ExecutionEvent`], by hand.
//!
//! The derived version needed `#[serde(flatten)]` to keep unknown fields, and flatten buffers
//! the whole object into an intermediate tree before typing any field. Here each key is
//! matched once (no allocation for known names) and its value typed straight from the input;
//! unknown keys go to `extra` as their JSON text ([`RawJson`]). Errors read as the derived
//! ones did (`missing field `flow_id``, `duplicate field `depth``, `invalid type: ...`), so
//! ingest's field-named errors are unchanged.
//!
//! `event_id` is required here (the topic's events all have one); ingest reads with
//! [`IngestSeed`], which assigns a fresh id when the engine sent none (absent or `null`).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::{EventType, ExecutionEvent, FlowError, FlowPause, ThirdPartyLimit, ThrottleLimit};
use crate::json::RawJson;

/// An RFC 3339 timestamp, normalised to UTC; parsed from the borrowed text.
struct Timestamp(DateTime<Utc>);

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, raw: &str) -> Result<Timestamp, E> {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| Timestamp(t.with_timezone(&Utc)))
                    .map_err(|e| E::custom(format!("not an RFC 3339 timestamp: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// Generates the field-name enum and the map visitor from one list of fields, so a field added
/// to [`ExecutionEvent`] but not here fails to compile (the struct literal would be incomplete).
macro_rules! event_visitor {
    (
        required { $($req:ident: $req_ty:ty),* $(,)? }
        optional { $($opt:ident: $opt_ty:ty),* $(,)? }
    ) => {
        #[allow(non_camel_case_types)]
        enum Field {
            event_id,
            $($req,)*
            $($opt,)*
            Other(String),
        }

        impl<'de> Deserialize<'de> for Field {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Field;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                        Ok(match name {
                            "event_id" => Field::event_id,
                            $(stringify!($req) => Field::$req,)*
                            $(stringify!($opt) => Field::$opt,)*
                            other => Field::Other(other.to_owned()),
                        })
                    }
                }
                d.deserialize_identifier(V)
            }
        }

        struct EventVisitor {
            /// Assign a fresh `event_id` when it is absent or `null` (ingest).
            assign_missing_id: bool,
        }

        impl<'de> Visitor<'de> for EventVisitor {
            type Value = ExecutionEvent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ExecutionEvent")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExecutionEvent, A::Error> {
                // Outer `Some` = the key was present; inner `None` = `null` (ingest only).
                let mut event_id: Option<Option<Uuid>> = None;
                $(let mut $req: Option<$req_ty> = None;)*
                // Outer `Some` = the key was present (possibly `null`).
                $(let mut $opt: Option<Option<$opt_ty>> = None;)*
                let mut extra = BTreeMap::new();
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::event_id => {
                            if event_id.is_some() {
                                return Err(de::Error::duplicate_field("event_id"));
                            }
                            event_id = Some(if self.assign_missing_id {
                                map.next_value()?
                            } else {
                                Some(map.next_value()?)
                            });
                        }
                        $(Field::$req => {
                            if $req.is_some() {
                                return Err(de::Error::duplicate_field(stringify!($req)));
                            }
                            $req = Some(map.next_value()?);
                        })*
                        $(Field::$opt => {
                            if $opt.is_some() {
                                return Err(de::Error::duplicate_field(stringify!($opt)));
                            }
                            $opt = Some(map.next_value()?);
                        })*
                        Field::Other(name) => {
                            let value: RawJson = map.next_value()?;
                            extra.insert(name, value);
                        }
                    }
                }
                let event_id = match event_id.flatten() {
                    Some(id) => id,
                    None if self.assign_missing_id => Uuid::new_v4(),
                    None => return Err(de::Error::missing_field("event_id")),
                };
                Ok(ExecutionEvent {
                    event_id,
                    $($req: $req
                        .ok_or_else(|| de::Error::missing_field(stringify!($req)))?
                        .into(),)*
                    $($opt: $opt.flatten(),)*
                    extra,
                })
            }
        }
    };
}

event_visitor! {
    required {
        event_type: EventType,
        execution_id: Uuid,
        timestamp: Timestamp,
        flow_id: String,
        flow_name: String,
        org_id: String,
        org_name: String,
        org_hostname: String,
        user_id: String,
        user_email: String,
    }
    optional {
        parent_execution_id: String,
        parent_flow_id: String,
        parent_flow_name: String,
        root_execution_id: String,
        root_flow_id: String,
        root_flow_name: String,
        folder_id: String,
        folder_name: String,
        folder_id_path: String,
        engine_mode: String,
        idempotency_key: String,
        depth: u32,
        throttled: bool,
        duration: u64,
        step_count: u32,
        error: FlowError,
        throttle_limit: ThrottleLimit,
        pause: FlowPause,
        third_party_limit: ThirdPartyLimit,
    }
}

impl<'de> Deserialize<'de> for ExecutionEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor {
            assign_missing_id: false,
        })
    }
}

/// Reads an event as ingest does: like [`ExecutionEvent`]'s `Deserialize`, but an absent or
/// `null` `event_id` gets a fresh UUID.
pub(crate) struct IngestSeed;

impl<'de> DeserializeSeed<'de> for IngestSeed {
    type Value = ExecutionEvent;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ExecutionEvent, D::Error> {
        d.deserialize_map(EventVisitor {
            assign_missing_id: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_json;
    use super::*;
    use serde_json::Value;

    #[test]
    fn pass_through_numbers_keep_their_digits() {
        let text = sample_json().to_string().replacen(
            "\"depth\":1",
            "\"depth\":1,\"big\":123456789012345678901234567890,\"neg\":-99999999999999999999,\
             \"dec\":0.1000000000000000055511151231257827,\"deep\":{\"n\":18446744073709551616}",
            1,
        );
        let event: ExecutionEvent = serde_json::from_str(&text).unwrap();
        let out = serde_json::to_string(&event).unwrap();
        for digits in [
            "\"big\":123456789012345678901234567890",
            "\"neg\":-99999999999999999999",
            "\"dec\":0.1000000000000000055511151231257827",
            "\"deep\":{\"n\":18446744073709551616}",
        ] {
            assert!(out.contains(digits), "{digits} not in {out}");
        }
    }

    #[test]
    fn ingest_assigns_missing_ids_the_topic_reader_does_not() {
        let mut v = sample_json();
        v["event_id"] = Value::Null;
        let text = v.to_string();
        let err = serde_json::from_str::<ExecutionEvent>(&text).unwrap_err();
        assert!(err.to_string().starts_with("invalid type: null"), "{err}");
        let mut de = serde_json::Deserializer::from_str(&text);
        let event = IngestSeed.deserialize(&mut de).unwrap();
        assert_eq!(event.event_id.get_version_num(), 4);
        v.as_object_mut().unwrap().remove("event_id");
        let err = serde_json::from_value::<ExecutionEvent>(v.clone()).unwrap_err();
        assert_eq!(err.to_string(), "missing field `event_id`");
        assert!(IngestSeed.deserialize(v).is_ok());
        let text = sample_json().to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        assert_eq!(
            IngestSeed
                .deserialize(&mut de)
                .unwrap()
                .event_id
                .to_string(),
            "5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = sample_json();
        v.as_object_mut().unwrap().remove("flow_id");
        let err = serde_json::from_value::<ExecutionEvent>(v).unwrap_err();
        assert_eq!(err.to_string(), "missing field `flow_id`");

        let text = sample_json().to_string();
        let doubled = text.replacen("\"depth\":1", "\"depth\":1,\"depth\":2", 1);
        let err = serde_json::from_str::<ExecutionEvent>(&doubled).unwrap_err();
        assert!(
            err.to_string().starts_with("duplicate field `depth`"),
            "{err}"
        );

        let mut v = sample_json();
        v["timestamp"] = "yesterday".into();
        let err = serde_json::from_value::<ExecutionEvent>(v).unwrap_err();
        assert!(
            err.to_string().starts_with("not an RFC 3339 timestamp"),
            "{err}"
        );

        let err = serde_json::from_str::<ExecutionEvent>("[1]").unwrap_err();
        assert!(
            err.to_string().contains("expected struct ExecutionEvent"),
            "{err}"
        );
    }

    #[test]
    fn null_optionals_are_absent_and_unknown_fields_kept() {
        let mut v = sample_json();
        v["folder_id"] = Value::Null;
        v["depth"] = Value::Null;
        v["zz_new"] = serde_json::json!([1, {"a": null}]);
        let event: ExecutionEvent = serde_json::from_value(v).unwrap();
        assert_eq!(event.folder_id, None);
        assert_eq!(event.depth, None);
        assert_eq!(
            event.extra["zz_new"].to_value(),
            serde_json::json!([1, {"a": null}])
        );
        assert_eq!(
            event.extra["future_field"].to_value(),
            serde_json::json!({"nested": [1, 2]})
        );
        // From bytes (the consumer's path) as from a value (ingest's path).
        let from_bytes: ExecutionEvent =
            serde_json::from_slice(&serde_json::to_vec(&sample_json()).unwrap()).unwrap();
        let from_value: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        assert_eq!(from_bytes, from_value);
    }
}
