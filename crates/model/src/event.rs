//! The execution event, as the workflow engine emits it (the vendor's "Base Schema").
//!
//! Base fields are typed; event metadata seen in real events is typed and optional; anything
//! else the engine sends is kept verbatim in [`ExecutionEvent::extra`] so a newer engine never
//! loses data on the way through ELS. Likewise an event type this version does not know is
//! kept by name ([`EventType::Unknown`]) as long as it is well-formed.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::error::ModelError;
use crate::json::RawJson;

mod de;
mod event_type;

pub(crate) use de::IngestSeed;
pub use event_type::{EventType, TypeName, MAX_EVENT_TYPE_BYTES};

/// Longest accepted `org_id` (it is also the Kafka record key, which the producer's size
/// check counts at this length).
pub const MAX_ORG_ID_BYTES: usize = 128;

/// Why a flow failed (present on `FLOW_FAILED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowError {
    pub error_code: String,
    pub error_message: String,
    /// The step (card) that failed, when the engine knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
}

/// The limit that throttled a flow (present on `FLOW_THROTTLED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleLimit {
    /// What was limited, e.g. `executions_per_minute`.
    pub limit_type: String,
    pub limit: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Why and where a flow paused (present on `FLOW_PAUSED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowPause {
    /// What paused it, e.g. `wait_for`, `pause_until`, `approval`.
    pub pause_type: String,
    /// The step (card) that paused the flow, when the engine knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// When the engine resumes the flow by itself: this many milliseconds after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after_ms: Option<u64>,
}

/// The third-party service limit that held a flow (present on
/// `FLOW_THIRD_PARTY_RATE_LIMITED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThirdPartyLimit {
    /// The service that limited the flow, e.g. `slack`, `google_workspace`.
    pub service: String,
    /// The step (card) whose call was limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// How long the service asked to wait (its `Retry-After`), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// One execution event. Serialises back to the same flat JSON object it was read from.
///
/// `Deserialize` is written by hand (see [`de`]): serde's `flatten` for [`Self::extra`] would
/// buffer every field before typing it, which cost the consumer an eighth of its CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionEvent {
    /// Ours: assigned at ingest when absent, stable across retries and replays so receivers can
    /// de-duplicate (ELS delivers at least once).
    pub event_id: Uuid,
    pub event_type: EventType,
    pub execution_id: Uuid,
    /// RFC 3339 UTC with milliseconds on the wire.
    #[serde(serialize_with = "ser_ts")]
    pub timestamp: DateTime<Utc>,
    pub flow_id: String,
    pub flow_name: String,
    pub org_id: String,
    pub org_name: String,
    pub org_hostname: String,
    pub user_id: String,
    /// Clear text at the engine; ELS hashes it at ingest (see [`crate::privacy`]).
    pub user_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_flow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_flow_name: Option<String>,

    // Event metadata seen in real events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<bool>,
    /// Execution time in milliseconds (on completion events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_limit: Option<ThrottleLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<FlowPause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub third_party_limit: Option<ThirdPartyLimit>,

    /// Fields this version of ELS does not know; passed through untouched, as the text they
    /// were read from (see [`RawJson`]: an integer beyond `u64` stays exact).
    #[serde(flatten)]
    pub extra: BTreeMap<String, RawJson>,
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The vendor's base schema, in wire order: every event has these; everything else is
/// optional metadata.
pub const BASE_FIELDS: [&str; 11] = [
    "event_id",
    "event_type",
    "execution_id",
    "timestamp",
    "flow_id",
    "flow_name",
    "org_id",
    "org_name",
    "org_hostname",
    "user_id",
    "user_email",
];

/// Base fields that must be present and non-empty.
const REQUIRED_STRINGS: [&str; 7] = [
    "flow_id",
    "flow_name",
    "org_id",
    "org_name",
    "org_hostname",
    "user_id",
    "user_email",
];

/// Why `.` and `..` are not org ids.
pub const DOT_SEGMENT: &str = "must not be `.` or `..`: the admin API and the console name an \
     org in a URL path (/v1/orgs/{org}), where browsers and URL libraries resolve those away";

/// Whether `org` is a URL dot segment (`.`/`..`, also percent-encoded as `%2e`), which no URL
/// path can carry as an org id.
pub fn is_dot_segment(org: &str) -> bool {
    let lower = org.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

impl ExecutionEvent {
    /// Semantic checks that serde cannot express. Field names in errors are relative to the event.
    pub fn validate(&self) -> Result<(), ModelError> {
        for name in REQUIRED_STRINGS {
            if self.string_field(name).trim().is_empty() {
                return Err(ModelError::field(name, "must not be empty"));
            }
        }
        if is_dot_segment(&self.org_id) {
            return Err(ModelError::field("org_id", DOT_SEGMENT));
        }
        if self.org_id.len() > MAX_ORG_ID_BYTES {
            return Err(ModelError::field(
                "org_id",
                format!("longer than {MAX_ORG_ID_BYTES} bytes"),
            ));
        }
        // Ids end up in log lines, metric labels, record keys and HEC's `host`: a line break
        // or an escape sequence in one could forge a log line or a terminal's output.
        let control = |field: &str| {
            Err(ModelError::field(
                field,
                "must not contain control characters (line breaks, tabs, escapes, NUL)",
            ))
        };
        for (name, value) in self.ids() {
            if value.is_some_and(|v| v.chars().any(char::is_control)) {
                return control(name);
            }
        }
        for (name, value) in &self.extra {
            if name.ends_with("_id")
                && value
                    .as_string()
                    .is_some_and(|v| v.chars().any(char::is_control))
            {
                return control(name);
            }
        }
        if self.event_type == EventType::FlowFailed {
            if let Some(err) = &self.error {
                if err.error_code.trim().is_empty() {
                    return Err(ModelError::field("error.error_code", "must not be empty"));
                }
            }
        }
        if self
            .pause
            .as_ref()
            .is_some_and(|p| p.pause_type.trim().is_empty())
        {
            return Err(ModelError::field("pause.pause_type", "must not be empty"));
        }
        if self
            .third_party_limit
            .as_ref()
            .is_some_and(|l| l.service.trim().is_empty())
        {
            return Err(ModelError::field(
                "third_party_limit.service",
                "must not be empty",
            ));
        }
        Ok(())
    }

    /// Every identifier the event carries (`*_id`, `folder_id_path`, `idempotency_key`,
    /// `org_hostname`), by field path; `event_id` and `execution_id` are UUIDs already.
    fn ids(&self) -> [(&'static str, Option<&str>); 14] {
        [
            ("org_id", Some(&self.org_id)),
            ("flow_id", Some(&self.flow_id)),
            ("user_id", Some(&self.user_id)),
            ("org_hostname", Some(&self.org_hostname)),
            ("parent_execution_id", self.parent_execution_id.as_deref()),
            ("parent_flow_id", self.parent_flow_id.as_deref()),
            ("root_execution_id", self.root_execution_id.as_deref()),
            ("root_flow_id", self.root_flow_id.as_deref()),
            ("folder_id", self.folder_id.as_deref()),
            ("folder_id_path", self.folder_id_path.as_deref()),
            ("idempotency_key", self.idempotency_key.as_deref()),
            (
                "error.step_id",
                self.error.as_ref().and_then(|e| e.step_id.as_deref()),
            ),
            (
                "pause.step_id",
                self.pause.as_ref().and_then(|p| p.step_id.as_deref()),
            ),
            (
                "third_party_limit.step_id",
                self.third_party_limit
                    .as_ref()
                    .and_then(|l| l.step_id.as_deref()),
            ),
        ]
    }

    fn string_field(&self, name: &str) -> &str {
        match name {
            "flow_id" => &self.flow_id,
            "flow_name" => &self.flow_name,
            "org_id" => &self.org_id,
            "org_name" => &self.org_name,
            "org_hostname" => &self.org_hostname,
            "user_id" => &self.user_id,
            "user_email" => &self.user_email,
            _ => "",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    pub(crate) fn sample_json() -> Value {
        serde_json::json!({
            "event_id": "5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59",
            "event_type": "FLOW_FAILED",
            "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z",
            "flow_id": "flo1",
            "flow_name": "Onboard user",
            "org_id": "org-1",
            "org_name": "Acme",
            "org_hostname": "acme.example.com",
            "user_id": "u1",
            "user_email": "Alice@Example.com",
            "depth": 1,
            "error": {"error_code": "E42", "error_message": "boom", "step_name": "HTTP"},
            "future_field": {"nested": [1, 2]}
        })
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let event: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        assert_eq!(event.event_type, EventType::FlowFailed);
        assert_eq!(event.depth, Some(1));
        assert!(event.extra.contains_key("future_field"));
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back, sample_json());
    }

    #[test]
    fn timestamp_normalised_to_utc_millis() {
        let mut v = sample_json();
        v["timestamp"] = "2026-11-25T02:02:03+01:00".into();
        let event: ExecutionEvent = serde_json::from_value(v).unwrap();
        let out = serde_json::to_value(&event).unwrap();
        assert_eq!(out["timestamp"], "2026-11-25T01:02:03.000Z");
        assert_eq!(event.timestamp.timestamp_millis(), 1_795_568_523_000);
    }

    #[test]
    fn dot_segment_org_ids_are_refused() {
        let mut e: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        for org in [".", "..", "%2e", "%2E%2e", ".%2E"] {
            e.org_id = org.into();
            let err = e.validate().unwrap_err().to_string();
            assert!(
                err.contains("org_id") && err.contains("`..`"),
                "{org}: {err}"
            );
        }
        for org in ["...", ".a", "a.", "org.example"] {
            e.org_id = org.into();
            e.validate().unwrap();
        }
    }

    #[test]
    fn control_characters_in_ids_are_named() {
        let base: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        base.validate().unwrap();
        type Edit = fn(&mut ExecutionEvent, String);
        let edits: [(&str, Edit); 7] = [
            ("org_id", |e, v| e.org_id = v),
            ("flow_id", |e, v| e.flow_id = v),
            ("user_id", |e, v| e.user_id = v),
            ("org_hostname", |e, v| e.org_hostname = v),
            ("root_flow_id", |e, v| e.root_flow_id = Some(v)),
            ("error.step_id", |e, v| {
                if let Some(err) = e.error.as_mut() {
                    err.step_id = Some(v)
                }
            }),
            ("tenant_id", |e, v| {
                e.extra
                    .insert("tenant_id".into(), RawJson::from_value(&v.into()));
            }),
        ];
        for (field, edit) in edits {
            for bad in ["a\nb", "a\u{1b}[31mb", "a\0", "a\tb", "a\u{85}b", "a\u{7f}"] {
                let mut e = base.clone();
                edit(&mut e, bad.to_string());
                let err = e.validate().unwrap_err();
                assert_eq!(err.field_name(), Some(field), "{bad:?}: {err}");
            }
            // Unicode that is not a control character is fine.
            let mut e = base.clone();
            edit(&mut e, "org-é-✓".into());
            e.validate().unwrap();
        }
        // A non-id extra field may hold anything.
        let mut e = base.clone();
        e.extra
            .insert("note".into(), RawJson::from_value(&"a\nb".into()));
        e.validate().unwrap();
    }

    #[test]
    fn paused_and_third_party_limited_events_keep_their_metadata() {
        let mut v = sample_json();
        v["event_type"] = "FLOW_PAUSED".into();
        v.as_object_mut().unwrap().remove("error");
        v["pause"] = serde_json::json!({
            "pause_type": "wait_for", "step_id": "s1", "step_name": "Wait For",
            "resume_after_ms": 60000
        });
        let e: ExecutionEvent = serde_json::from_value(v.clone()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.event_type, EventType::FlowPaused);
        assert_eq!(e.pause.as_ref().unwrap().resume_after_ms, Some(60_000));
        assert_eq!(serde_json::to_value(&e).unwrap(), v);

        let mut v = sample_json();
        v["event_type"] = "FLOW_THIRD_PARTY_RATE_LIMITED".into();
        v["third_party_limit"] = serde_json::json!({"service": "slack", "retry_after_ms": 30000});
        let e: ExecutionEvent = serde_json::from_value(v.clone()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.third_party_limit.as_ref().unwrap().service, "slack");
        assert_eq!(serde_json::to_value(&e).unwrap(), v);

        // Typed like the other metadata: wrong types and empty names are refused.
        for (field, value) in [
            ("pause", serde_json::json!({"step_id": "s1"})),
            (
                "pause",
                serde_json::json!({"pause_type": "w", "resume_after_ms": "soon"}),
            ),
            ("third_party_limit", serde_json::json!({"service": 7})),
            ("third_party_limit", serde_json::json!("slack")),
        ] {
            let mut v = sample_json();
            v[field] = value;
            assert!(
                serde_json::from_value::<ExecutionEvent>(v).is_err(),
                "{field}"
            );
        }
        let mut e: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        e.pause = Some(FlowPause {
            pause_type: " ".into(),
            step_id: None,
            step_name: None,
            resume_after_ms: None,
        });
        assert_eq!(
            e.validate().unwrap_err().field_name(),
            Some("pause.pause_type")
        );
        e.pause = None;
        e.third_party_limit = Some(ThirdPartyLimit {
            service: "slack".into(),
            step_id: Some("s\n1".into()),
            step_name: None,
            retry_after_ms: None,
        });
        assert_eq!(
            e.validate().unwrap_err().field_name(),
            Some("third_party_limit.step_id")
        );
    }

    #[test]
    fn unknown_event_types_round_trip_unchanged() {
        let mut v = sample_json();
        v["event_type"] = "FLOW_RESUMED".into();
        v["resumed_by"] = "approval".into();
        let e: ExecutionEvent = serde_json::from_value(v.clone()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.event_type.as_str(), "FLOW_RESUMED");
        assert!(!e.event_type.is_known());
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
    }

    #[test]
    fn empty_required_field_named() {
        let mut event: ExecutionEvent = serde_json::from_value(sample_json()).unwrap();
        event.org_hostname = " ".into();
        let err = event.validate().unwrap_err();
        assert_eq!(err.field_name(), Some("org_hostname"));
    }
}
