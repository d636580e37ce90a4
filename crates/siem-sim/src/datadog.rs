//! Datadog logs intake, `POST /api/v2/logs` ("Send logs", Datadog API reference), pure and
//! unit-tested.
//!
//! Reference: <https://docs.datadoghq.com/api/latest/logs/#send-logs>.
//!
//! As documented there:
//! - the body is a JSON array of log entries (a single object is accepted too), each with
//!   the reserved attributes `ddsource`, `ddtags`, `hostname`, `message`, `service` and any
//!   other attributes;
//! - at most 1,000 entries per array and 5 MB uncompressed per payload, else 413 ("Payload
//!   too large"); `Content-Encoding: gzip` is accepted;
//! - a single log larger than 1 MB is *accepted and truncated* (2xx), not refused: the sim
//!   cuts its `message` so the entry fits and counts it in `truncated`;
//! - the API key is the `DD-API-KEY` header (or `dd-api-key` query parameter): missing is
//!   401, not valid is 403 (the documented status codes); success is 202 `{}`.
//!
//! The event id of an entry (what tests count) is its `event_id` attribute (or
//! `event.event_id`); else, when `message` is a string holding a JSON object, that object's
//! `event_id` (or `event.event_id`).

use serde_json::{json, Value};

/// Largest uncompressed payload: 5 MB.
pub const MAX_PAYLOAD_BYTES: usize = 5_000_000;
/// Largest single log before truncation: 1 MB.
pub const MAX_LOG_BYTES: usize = 1_000_000;
/// Most entries in one array.
pub const MAX_ENTRIES: usize = 1000;

/// Datadog's error answer, `{"errors":["..."]}`.
pub fn error_body(message: &str) -> Value {
    json!({ "errors": [message] })
}

/// The text Datadog puts in `errors` for a status.
pub fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Why a payload is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsError {
    /// Not JSON, or not an object or array of objects (400).
    BadRequest(String),
    /// More than [`MAX_ENTRIES`] entries, or more than [`MAX_PAYLOAD_BYTES`] (413).
    TooLarge(String),
}

impl LogsError {
    pub fn status(&self) -> u16 {
        match self {
            LogsError::BadRequest(_) => 400,
            LogsError::TooLarge(_) => 413,
        }
    }

    pub fn body(&self) -> Value {
        let detail = match self {
            LogsError::BadRequest(d) | LogsError::TooLarge(d) => d,
        };
        json!({ "errors": [status_text(self.status()), detail] })
    }
}

/// Parsed entries and how many were truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct Logs {
    pub entries: Vec<Value>,
    pub truncated: u64,
}

/// Parse an uncompressed payload.
pub fn parse_logs(body: &[u8]) -> Result<Logs, LogsError> {
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err(LogsError::TooLarge(format!(
            "payload is {} bytes uncompressed, more than {MAX_PAYLOAD_BYTES}",
            body.len()
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| LogsError::BadRequest(format!("invalid JSON: {e}")))?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(_) => vec![value],
        _ => {
            return Err(LogsError::BadRequest(
                "expected a log object or an array of log objects".to_owned(),
            ))
        }
    };
    if entries.len() > MAX_ENTRIES {
        return Err(LogsError::TooLarge(format!(
            "{} entries in the array, more than {MAX_ENTRIES}",
            entries.len()
        )));
    }
    if let Some(i) = entries.iter().position(|e| !e.is_object()) {
        return Err(LogsError::BadRequest(format!(
            "entry {i} is not a JSON object"
        )));
    }
    let mut truncated = 0;
    let entries = entries
        .into_iter()
        .map(|entry| {
            let (entry, cut) = truncate(entry);
            truncated += u64::from(cut);
            entry
        })
        .collect();
    Ok(Logs { entries, truncated })
}

/// Cut an entry larger than [`MAX_LOG_BYTES`] by shortening its `message`.
fn truncate(mut entry: Value) -> (Value, bool) {
    let size = entry.to_string().len();
    if size <= MAX_LOG_BYTES {
        return (entry, false);
    }
    let excess = size - MAX_LOG_BYTES;
    if let Some(Value::String(message)) = entry.get_mut("message") {
        let mut keep = message.len().saturating_sub(excess);
        while !message.is_char_boundary(keep) {
            keep -= 1;
        }
        message.truncate(keep);
    }
    (entry, true)
}

/// The event id of an entry (see the module doc).
pub fn event_id(entry: &Value) -> Option<String> {
    crate::state::event_id(entry).or_else(|| {
        let message = entry.get("message")?.as_str()?;
        let inner: Value = serde_json::from_str(message).ok()?;
        crate::state::event_id(&inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_or_single_object() {
        let logs = parse_logs(br#"[{"message":"a","ddsource":"els"},{"message":"b"}]"#).unwrap();
        assert_eq!(logs.entries.len(), 2);
        assert_eq!(logs.truncated, 0);
        assert_eq!(parse_logs(br#"{"message":"a"}"#).unwrap().entries.len(), 1);
    }

    #[test]
    fn refusals() {
        let bad = parse_logs(b"[{").unwrap_err();
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.body()["errors"][0], "Bad Request");
        assert_eq!(parse_logs(b"[1]").unwrap_err().status(), 400);
        assert_eq!(parse_logs(b"\"x\"").unwrap_err().status(), 400);
        let many = format!("[{}]", vec!["{}"; MAX_ENTRIES + 1].join(","));
        let err = parse_logs(many.as_bytes()).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(err.body()["errors"][0], "Payload Too Large");
        assert_eq!(
            parse_logs(&vec![b' '; MAX_PAYLOAD_BYTES + 1])
                .unwrap_err()
                .status(),
            413
        );
        assert_eq!(error_body("Forbidden"), json!({"errors": ["Forbidden"]}));
    }

    #[test]
    fn oversized_logs_are_truncated_not_refused() {
        let big = "é".repeat(MAX_LOG_BYTES);
        let body = json!([{"event_id": "x", "message": big}, {"message": "small"}]).to_string();
        let logs = parse_logs(body.as_bytes()).unwrap();
        assert_eq!(logs.truncated, 1);
        assert!(logs.entries[0].to_string().len() <= MAX_LOG_BYTES);
        assert_eq!(event_id(&logs.entries[0]).as_deref(), Some("x"));
    }

    #[test]
    fn event_id_from_attribute_or_json_message() {
        assert_eq!(event_id(&json!({"event_id": "a"})).as_deref(), Some("a"));
        let inner = json!({"event_id": "b", "org_id": "o"}).to_string();
        assert_eq!(event_id(&json!({"message": inner})).as_deref(), Some("b"));
        let nested = json!({"event": {"event_id": 7}}).to_string();
        assert_eq!(event_id(&json!({"message": nested})).as_deref(), Some("7"));
        assert_eq!(event_id(&json!({"message": "plain text"})), None);
    }
}
