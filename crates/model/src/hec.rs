//! Splunk HTTP Event Collector (HEC) envelopes and response codes.
//!
//! A HEC request body is one or more JSON envelopes concatenated; each envelope wraps one
//! event with its `time` (epoch seconds, millisecond precision), `host`, `source`,
//! `sourcetype`, optional `index` and indexed `fields`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::ExecutionEvent;

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
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    time: f64,
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    event: &'a Value,
    fields: Fields<'a>,
}

#[derive(Serialize)]
struct Fields<'a> {
    event_type: &'static str,
    event_id: String,
    flow_id: &'a str,
}

/// Append one envelope for `event` (whose outbound body is `body`) to `out`, newline-terminated.
pub fn write_envelope(out: &mut Vec<u8>, event: &ExecutionEvent, body: &Value, opts: &HecOptions) {
    let envelope = Envelope {
        time: event.epoch_seconds(),
        host: &event.org_hostname,
        source: &opts.source,
        sourcetype: &opts.sourcetype,
        index: opts.index.as_deref(),
        event: body,
        fields: Fields {
            event_type: event.event_type.as_str(),
            event_id: event.event_id.to_string(),
            flow_id: &event.flow_id,
        },
    };
    // Serialising a Value-bearing struct to a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &envelope).is_ok() {
        out.push(b'\n');
    }
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

    #[test]
    fn envelope_is_one_json_line() {
        let event: ExecutionEvent =
            serde_json::from_value(crate::event::tests::sample_json()).unwrap();
        let mut out = Vec::new();
        let body = serde_json::json!({"k": "v\n\"quoted\""});
        write_envelope(&mut out, &event, &body, &HecOptions::default());
        write_envelope(&mut out, &event, &body, &HecOptions::default());
        let parsed: Vec<Value> = serde_json::Deserializer::from_slice(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["event"], body);
        assert_eq!(parsed[0]["time"], 1_795_568_523.456);
        assert_eq!(parsed[0]["host"], "acme.example.com");
        assert_eq!(parsed[0]["fields"]["event_type"], "FLOW_FAILED");
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
