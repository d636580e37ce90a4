//! Splunk HTTP Event Collector (HEC) envelopes and response codes.
//!
//! A HEC request body is one or more JSON envelopes concatenated; each envelope wraps one
//! event with its `time` (epoch seconds, millisecond precision), `host`, `source`,
//! `sourcetype`, optional `index` and indexed `fields`.

use serde::{Deserialize, Serialize};

use crate::topic::TopicEvent;

/// Per-org HEC metadata (defaults suit a fresh Splunk index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecOptions {
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Indexer acknowledgement: `true`, `false` or `"auto"` (the default).
    #[serde(default, skip_serializing_if = "AckMode::is_auto")]
    pub ack: AckMode,
}

/// Whether a `200` from HEC means "indexed" or only "appears valid": with indexer
/// acknowledgement on, the answer carries an `ackId` and the events are indexed when
/// `/services/collector/ack` confirms it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckMode {
    /// Wait for acks whenever an answer carries an `ackId` (the token has ack on).
    #[default]
    Auto,
    /// The token has ack on: wait for acks; a `200` without `ackId` is counted and logged.
    On,
    /// Never poll: a `200` is delivered, even when it carries an `ackId`.
    Off,
}

impl AckMode {
    pub fn is_auto(&self) -> bool {
        *self == AckMode::Auto
    }

    /// Whether an answer carrying `ack_id` must wait for its ack.
    pub fn waits_for(&self, ack_id: Option<u64>) -> bool {
        ack_id.is_some() && *self != AckMode::Off
    }
}

impl Serialize for AckMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AckMode::Auto => s.serialize_str("auto"),
            AckMode::On => s.serialize_bool(true),
            AckMode::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for AckMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(AckMode::On),
            serde_json::Value::Bool(false) => Ok(AckMode::Off),
            serde_json::Value::String(s) if s == "auto" => Ok(AckMode::Auto),
            other => Err(serde::de::Error::custom(format!(
                "hec.ack must be true, false or \"auto\", not {other}"
            ))),
        }
    }
}

fn default_source() -> String {
    "els".into()
}

fn default_sourcetype() -> String {
    "els:execution".into()
}

impl Default for HecOptions {
    fn default() -> Self {
        Self {
            source: default_source(),
            sourcetype: default_sourcetype(),
            index: None,
            ack: AckMode::Auto,
        }
    }
}

/// The envelope's leading fields; `event` and `fields` are appended after it.
#[derive(Serialize)]
struct Head<'a> {
    time: f64,
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
}

#[derive(Serialize)]
struct Fields<'a> {
    event_type: &'a str,
    event_id: &'a uuid::Uuid,
    flow_id: &'a str,
}

/// Append one envelope for `event` to `out`, newline-terminated. `body` writes the envelope's
/// `event` value (one JSON value) straight into `out`.
pub fn write_envelope(
    out: &mut Vec<u8>,
    event: &TopicEvent,
    opts: &HecOptions,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let head = Head {
        time: event.epoch_seconds(),
        host: event.org_hostname(),
        source: &opts.source,
        sourcetype: &opts.sourcetype,
        index: opts.index.as_deref(),
    };
    let fields = Fields {
        event_type: event.event_type.as_str(),
        event_id: &event.event_id,
        flow_id: event.flow_id(),
    };
    let start = out.len();
    // Serialising these plain structs into a Vec cannot fail; the head ends with its `}`,
    // which is replaced by the remaining members.
    if serde_json::to_writer(&mut *out, &head).is_err() || out.pop() != Some(b'}') {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b",\"event\":");
    body(out);
    out.extend_from_slice(b",\"fields\":");
    let _ = serde_json::to_writer(&mut *out, &fields);
    out.extend_from_slice(b"}\n");
}

/// A HEC JSON reply: `{"text":"Success","code":0}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HecReply {
    pub text: String,
    pub code: i64,
    #[serde(
        default,
        rename = "invalid-event-number",
        skip_serializing_if = "Option::is_none"
    )]
    pub invalid_event_number: Option<usize>,
    /// With indexer acknowledgement: the id to ask `/services/collector/ack` about.
    #[serde(default, rename = "ackId", skip_serializing_if = "Option::is_none")]
    pub ack_id: Option<u64>,
}

/// The answer of `POST /services/collector/ack`: `{"acks":{"0":true,"1":false}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckStatus {
    pub acks: std::collections::BTreeMap<String, bool>,
}

impl AckStatus {
    /// The ids answered `true`.
    pub fn acked(&self) -> impl Iterator<Item = u64> + '_ {
        self.acks
            .iter()
            .filter(|(_, done)| **done)
            .filter_map(|(id, _)| id.parse().ok())
    }
}

/// What a HEC code means for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HecCodeClass {
    Success,
    /// 1-4: token missing, malformed or invalid; fix the settings.
    Auth,
    /// 5-7, 10-16: the data is unacceptable.
    Data,
    /// 8: internal server error; 9: server busy. Worth retrying.
    Transient,
    /// 17/18 (health) and anything unknown.
    Other,
}

pub fn classify_code(code: i64) -> HecCodeClass {
    match code {
        0 => HecCodeClass::Success,
        1..=4 => HecCodeClass::Auth,
        5..=7 | 10..=16 => HecCodeClass::Data,
        8 | 9 => HecCodeClass::Transient,
        _ => HecCodeClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn ack_mode_reads_true_false_and_auto() {
        let read = |v: Value| serde_json::from_value::<HecOptions>(serde_json::json!({"ack": v}));
        assert_eq!(read(Value::Bool(true)).unwrap().ack, AckMode::On);
        assert_eq!(read(Value::Bool(false)).unwrap().ack, AckMode::Off);
        assert_eq!(read("auto".into()).unwrap().ack, AckMode::Auto);
        let err = read("yes".into()).unwrap_err().to_string();
        assert!(
            err.contains("hec.ack must be true, false or \"auto\""),
            "{err}"
        );
        let default: HecOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(default.ack, AckMode::Auto);
        // Auto is not written, so settings records stay as they were.
        assert!(!serde_json::to_string(&default).unwrap().contains("ack"));
        let on = HecOptions {
            ack: AckMode::On,
            ..HecOptions::default()
        };
        assert!(serde_json::to_string(&on)
            .unwrap()
            .contains(r#""ack":true"#));
        assert!(AckMode::Auto.waits_for(Some(1)) && !AckMode::Auto.waits_for(None));
        assert!(!AckMode::Off.waits_for(Some(1)));
    }

    #[test]
    fn replies_and_ack_status_parse() {
        let reply: HecReply =
            serde_json::from_str(r#"{"text":"Success","code":0,"ackId":7}"#).unwrap();
        assert_eq!(reply.ack_id, Some(7));
        let status: AckStatus =
            serde_json::from_str(r#"{"acks":{"0":true,"1":false,"12":true}}"#).unwrap();
        assert_eq!(status.acked().collect::<Vec<_>>(), vec![0, 12]);
    }

    #[test]
    fn envelope_is_one_json_line() {
        let event =
            TopicEvent::parse(crate::event::tests::sample_json().to_string().as_bytes()).unwrap();
        let mut out = Vec::new();
        let body = serde_json::json!({"k": "v\n\"quoted\""});
        let write = |o: &mut Vec<u8>| serde_json::to_writer(o, &body).unwrap();
        write_envelope(&mut out, &event, &HecOptions::default(), write);
        let opts = HecOptions {
            index: Some("main".into()),
            ..HecOptions::default()
        };
        write_envelope(&mut out, &event, &opts, write);
        let parsed: Vec<Value> = serde_json::Deserializer::from_slice(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["event"], body);
        assert_eq!(parsed[0]["time"], 1_795_568_523.456);
        assert_eq!(parsed[0]["host"], "acme.example.com");
        assert_eq!(parsed[0]["fields"]["event_type"], "FLOW_FAILED");
        assert_eq!(
            parsed[0]["fields"]["event_id"],
            "5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59"
        );
        assert!(parsed[0].get("index").is_none());
        assert_eq!(parsed[1]["index"], "main");
        assert_eq!(parsed[1]["event"], body);
    }

    #[test]
    fn codes() {
        assert_eq!(classify_code(0), HecCodeClass::Success);
        assert_eq!(classify_code(4), HecCodeClass::Auth);
        assert_eq!(classify_code(6), HecCodeClass::Data);
        assert_eq!(classify_code(9), HecCodeClass::Transient);
        assert_eq!(classify_code(17), HecCodeClass::Other);
    }
}
