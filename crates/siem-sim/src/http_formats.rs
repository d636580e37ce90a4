//! Batched generic HTTP bodies: newline-delimited JSON (`POST /http/ndjson`) and a JSON
//! array (`POST /http/array`), each with a cap on events and on bytes per request.
//!
//! There is no single standard here; the caps follow what HTTP log intakes document (Google
//! SecOps refuses requests over 4 MB, most intakes cap the events per request), and the
//! answers name the cap or the bad line so a sender's log says what to change. A refused
//! request stores nothing, so a sender may re-send it whole.

use serde_json::{json, Value};

/// Default largest number of events in one request.
pub const DEFAULT_MAX_EVENTS: usize = 1000;
/// Default largest (decompressed) body: 4 MiB, at or above Google SecOps' 4 MB.
pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Why a batch is refused; [`BatchError::status`] and [`BatchError::body`] are the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// More events than `max_events` (413).
    TooManyEvents { count: usize, max: usize },
    /// A body larger than `max_bytes` (413).
    TooLarge { max: usize },
    /// An empty body, or an array or NDJSON body without events (400).
    NoEvents,
    /// NDJSON: line `line` (1-based, counting empty lines) is not JSON (400).
    BadLine { line: usize, reason: String },
    /// Array: the body is not a JSON array (400).
    NotAnArray { reason: String },
}

impl BatchError {
    pub fn status(&self) -> u16 {
        match self {
            BatchError::TooManyEvents { .. } | BatchError::TooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A JSON body naming the cap (`cap`, `limit`) or the bad line / reason.
    pub fn body(&self) -> Value {
        match self {
            BatchError::TooManyEvents { count, max } => json!({
                "error": format!("{count} events in one request, more than the {max} allowed"),
                "cap": "max_events",
                "limit": max,
            }),
            BatchError::TooLarge { max } => json!({
                "error": format!("request body larger than {max} bytes"),
                "cap": "max_bytes",
                "limit": max,
            }),
            BatchError::NoEvents => json!({"error": "no events in the request body"}),
            BatchError::BadLine { line, reason } => json!({
                "error": format!("line {line} is not valid JSON: {reason}"),
                "line": line,
            }),
            BatchError::NotAnArray { reason } => json!({
                "error": format!("body is not a JSON array of events: {reason}"),
            }),
        }
    }
}

/// Parse NDJSON: one JSON value per line (`\n`, optionally `\r\n`), empty or blank lines
/// ignored. The event count is checked as lines are read, so an oversized batch is refused
/// without parsing it all.
pub fn parse_ndjson(body: &[u8], max_events: usize) -> Result<Vec<Value>, BatchError> {
    let mut events = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == max_events {
            let count = max_events
                + 1
                + body
                    .split(|b| *b == b'\n')
                    .skip(i + 1)
                    .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                    .count();
            return Err(BatchError::TooManyEvents {
                count,
                max: max_events,
            });
        }
        let value = serde_json::from_slice(line).map_err(|e| BatchError::BadLine {
            line: i + 1,
            reason: e.to_string(),
        })?;
        events.push(value);
    }
    if events.is_empty() {
        return Err(BatchError::NoEvents);
    }
    Ok(events)
}

/// Parse a JSON array of events (of any JSON kind each).
pub fn parse_array(body: &[u8], max_events: usize) -> Result<Vec<Value>, BatchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::NoEvents);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| BatchError::NotAnArray {
        reason: e.to_string(),
    })?;
    let Value::Array(events) = value else {
        return Err(BatchError::NotAnArray {
            reason: "the top-level value is not an array".to_owned(),
        });
    };
    if events.is_empty() {
        return Err(BatchError::NoEvents);
    }
    if events.len() > max_events {
        return Err(BatchError::TooManyEvents {
            count: events.len(),
            max: max_events,
        });
    }
    Ok(events)
}

/// The index (0-based) of the first event whose JSON text contains `marker`, for the
/// `reject_containing` fault.
pub fn first_containing(events: &[Value], marker: &str) -> Option<usize> {
    events.iter().position(|e| e.to_string().contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_skips_blank_lines_and_accepts_crlf() {
        let body = b"{\"event_id\":\"a\"}\r\n\n  \n{\"event_id\":\"b\"}\n";
        let got = parse_ndjson(body, 10).unwrap();
        assert_eq!(got, [json!({"event_id": "a"}), json!({"event_id": "b"})]);
    }

    #[test]
    fn ndjson_names_the_bad_line() {
        let err = parse_ndjson(b"{\"a\":1}\n\n{oops\n", 10).unwrap_err();
        assert!(
            matches!(err, BatchError::BadLine { line: 3, .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
        assert_eq!(err.body()["line"], 3);
        assert_eq!(parse_ndjson(b"\n \n", 10), Err(BatchError::NoEvents));
    }

    #[test]
    fn ndjson_counts_past_the_cap() {
        let body = b"1\n2\n3\n\n4\n";
        let err = parse_ndjson(body, 2).unwrap_err();
        assert_eq!(err, BatchError::TooManyEvents { count: 4, max: 2 });
        assert_eq!(err.status(), 413);
        assert_eq!(err.body()["cap"], "max_events");
        assert_eq!(err.body()["limit"], 2);
        assert_eq!(parse_ndjson(b"1\n2", 2).unwrap().len(), 2);
    }

    #[test]
    fn array_bodies() {
        assert_eq!(parse_array(b"[1, {\"a\":2}]", 5).unwrap().len(), 2);
        assert!(matches!(
            parse_array(b"{\"a\":1}", 5),
            Err(BatchError::NotAnArray { .. })
        ));
        assert!(matches!(
            parse_array(b"[1,", 5),
            Err(BatchError::NotAnArray { .. })
        ));
        assert_eq!(parse_array(b"[]", 5), Err(BatchError::NoEvents));
        assert_eq!(
            parse_array(b"[1,2,3]", 2),
            Err(BatchError::TooManyEvents { count: 3, max: 2 })
        );
        let too_large = BatchError::TooLarge { max: 10 }.body();
        assert_eq!(too_large["cap"], "max_bytes");
    }

    #[test]
    fn marker_search() {
        let events = [json!({"a": "ok"}), json!({"a": "poison"})];
        assert_eq!(first_containing(&events, "poison"), Some(1));
        assert_eq!(first_containing(&events, "none"), None);
    }
}
