//! `Deserialize` for [`ExecutionEvent`], by hand.
//!
//! The derived version needed `#[serde(flatten)]` to keep unknown fields, and flatten buffers
//! the whole object into an intermediate tree before typing any field. Here each key is
//! matched once (no allocation for known names) and its value typed straight from the input;
//! unknown keys go to `extra` as JSON values. Errors read as the derived ones did
//! (`missing field `flow_id``, `duplicate field `depth``, `invalid type: ...`), so ingest's
//! field-named errors are unchanged.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

use super::{EventType, ExecutionEvent, FlowError, ThrottleLimit};

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
                            $(stringify!($req) => Field::$req,)*
                            $(stringify!($opt) => Field::$opt,)*
                            other => Field::Other(other.to_owned()),
                        })
                    }
                }
                d.deserialize_identifier(V)
            }
        }

        struct EventVisitor;

        impl<'de> Visitor<'de> for EventVisitor {
            type Value = ExecutionEvent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ExecutionEvent")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExecutionEvent, A::Error> {
                $(let mut $req: Option<$req_ty> = None;)*
                // Outer `Some` = the key was present (possibly `null`).
                $(let mut $opt: Option<Option<$opt_ty>> = None;)*
                let mut extra = BTreeMap::new();
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
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
                            let value: Value = map.next_value()?;
                            extra.insert(name, value);
                        }
                    }
                }
                Ok(ExecutionEvent {
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
        event_id: Uuid,
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
    }
}

impl<'de> Deserialize<'de> for ExecutionEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_json;
    use super::*;

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
        assert_eq!(event.extra["zz_new"], serde_json::json!([1, {"a": null}]));
        assert_eq!(
            event.extra["future_field"],
            serde_json::json!({"nested": [1, 2]})
        );
        // From bytes (the consumer's path) as from a value (ingest's path).
        let from_bytes: ExecutionEvent =
            serde_json::from_slice(&serde_json::to_vec(&sample_json()).unwrap()).unwrap();
        let from_value: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        assert_eq!(from_bytes, from_value);
    }
}
