//! The Splunk HTTP Event Collector wire protocol: reply codes, the `Authorization` header and
//! the request body (optionally gzip, one or more concatenated JSON envelopes).
//!
//! Everything here is pure (no I/O, no clock) so it can be unit-tested exhaustively; the
//! routes in [`crate::server`] only glue it to axum.

use std::io::Read;

use axum::http::StatusCode;
use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};

/// Text Splunk sends for a HEC status code (as documented for HEC 8.x/9.x).
pub fn code_text(code: u16) -> &'static str {
    match code {
        0 => "Success",
        1 => "Token disabled",
        2 => "Token is required",
        3 => "Invalid authorization",
        4 => "Invalid token",
        5 => "No data",
        6 => "Invalid data format",
        7 => "Incorrect index",
        8 => "Internal server error",
        9 => "Server is busy",
        10 => "Data channel is missing",
        11 => "Invalid data channel",
        12 => "Event field is required",
        13 => "Event field cannot be blank",
        14 => "ACK is disabled",
        15 => "Error in handling indexed fields",
        16 => "Query string authorization is not enabled",
        17 => "HEC is healthy",
        18 => "HEC is unhealthy, queues are full",
        19 => "HEC is unhealthy, ack service unavailable",
        20 => "HEC is unhealthy, queues are full, ack service unavailable",
        _ => "Unknown error",
    }
}

/// One answer of the collector: an HTTP status plus the HEC JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Success,
    /// Success for a token with indexer acknowledgement: the answer carries `ackId`
    /// (docs.splunk.com "About HTTP Event Collector Indexer Acknowledgment").
    SuccessAck {
        ack_id: u64,
    },
    /// Code 7: an event names an index the token may not write to; the whole request is
    /// refused ("Troubleshoot HTTP Event Collector", status codes table: 400, code 7).
    IncorrectIndex {
        index: usize,
    },
    /// Code 10: an ack-enabled token got no channel ("Troubleshoot HTTP Event Collector":
    /// 400 "Data channel is missing"; "About HTTP Event Collector Indexer Acknowledgment").
    ChannelMissing,
    /// Code 11: the channel is not a GUID ("Troubleshoot HTTP Event Collector": 400).
    ChannelInvalid,
    /// Code 14: `/services/collector/ack` for a token without ack
    /// ("Troubleshoot HTTP Event Collector": 400 "ACK is disabled").
    AckDisabled,
    /// The body exceeds the configured `max_content_length` (Splunk's `[http]` setting in
    /// `limits.conf`, default 1,000,000 bytes). Splunk answers 413; the text below follows
    /// what Splunk is reported to send ("Content-Length of N too large (maximum is M)"), but
    /// the status codes table of "Troubleshoot HTTP Event Collector" documents no HEC `code`
    /// for it, so we are unsure of one and send none.
    ContentLengthTooLarge {
        length: u64,
        max: usize,
    },
    TokenRequired,
    InvalidAuthorization,
    InvalidToken,
    NoData,
    /// Body is not JSON (or not gzip when it claims to be). `index` is the zero-based number
    /// of the offending envelope, as Splunk's `invalid-event-number`.
    InvalidDataFormat {
        index: Option<usize>,
    },
    EventRequired {
        index: usize,
    },
    EventBlank {
        index: usize,
    },
    TooLarge,
    UnsupportedEncoding,
    Healthy,
    Unhealthy,
    /// An injected fault: any status, with a HEC code that fits it (see [`fault_code`]).
    Fault {
        status: StatusCode,
        code: u16,
    },
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Success | Reply::SuccessAck { .. } | Reply::Healthy => StatusCode::OK,
            Reply::IncorrectIndex { .. }
            | Reply::ChannelMissing
            | Reply::ChannelInvalid
            | Reply::AckDisabled => StatusCode::BAD_REQUEST,
            Reply::ContentLengthTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Reply::TokenRequired | Reply::InvalidAuthorization => StatusCode::UNAUTHORIZED,
            Reply::InvalidToken => StatusCode::FORBIDDEN,
            Reply::NoData
            | Reply::InvalidDataFormat { .. }
            | Reply::EventRequired { .. }
            | Reply::EventBlank { .. } => StatusCode::BAD_REQUEST,
            Reply::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reply::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reply::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            Reply::Fault { status, .. } => *status,
        }
    }

    /// The HEC code, or `None` for answers real Splunk gives without one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Reply::Success | Reply::SuccessAck { .. } => Some(0),
            Reply::IncorrectIndex { .. } => Some(7),
            Reply::ChannelMissing => Some(10),
            Reply::ChannelInvalid => Some(11),
            Reply::AckDisabled => Some(14),
            Reply::TokenRequired => Some(2),
            Reply::InvalidAuthorization => Some(3),
            Reply::InvalidToken => Some(4),
            Reply::NoData => Some(5),
            Reply::InvalidDataFormat { .. } => Some(6),
            Reply::EventRequired { .. } => Some(12),
            Reply::EventBlank { .. } => Some(13),
            Reply::Healthy => Some(17),
            Reply::Unhealthy => Some(18),
            Reply::Fault { code, .. } => Some(*code),
            Reply::TooLarge | Reply::UnsupportedEncoding | Reply::ContentLengthTooLarge { .. } => {
                None
            }
        }
    }

    pub fn body(&self) -> Value {
        if let Reply::ContentLengthTooLarge { length, max } = self {
            return json!({
                "text": format!("Content-Length of {length} too large (maximum is {max})")
            });
        }
        let text = match (self, self.code()) {
            (Reply::TooLarge, _) => "Content length too large",
            (Reply::UnsupportedEncoding, _) => "Unsupported content encoding",
            (_, Some(code)) => code_text(code),
            (_, None) => "Unknown error",
        };
        let mut body = json!({ "text": text });
        if let Some(code) = self.code() {
            body["code"] = json!(code);
        }
        let index = match self {
            Reply::InvalidDataFormat { index } => *index,
            Reply::EventRequired { index }
            | Reply::EventBlank { index }
            | Reply::IncorrectIndex { index } => Some(*index),
            _ => None,
        };
        if let Some(index) = index {
            body["invalid-event-number"] = json!(index);
        }
        if let Reply::SuccessAck { ack_id } = self {
            body["ackId"] = json!(ack_id);
        }
        body
    }
}

/// The HEC code an injected HTTP status answers with, unless the fault names one.
pub fn fault_code(status: StatusCode) -> u16 {
    match status.as_u16() {
        200..=299 => 0,
        401 => 2,
        403 => 4,
        429 | 503 => 9,
        400..=499 => 6,
        _ => 8,
    }
}

/// Which `Authorization` schemes an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `Splunk <token>` only, as the HEC endpoints.
    Splunk,
    /// `Splunk <token>` or `Bearer <token>`, as generic HTTPS receivers.
    SplunkOrBearer,
}

/// Extract the token from an `Authorization` header value. `None` header is
/// [`Reply::TokenRequired`]; anything not `<scheme> <token>` is [`Reply::InvalidAuthorization`].
/// The scheme is matched case-insensitively, as Splunk does.
pub fn parse_authorization(header: Option<&[u8]>, schemes: Schemes) -> Result<&str, Reply> {
    let raw = header.ok_or(Reply::TokenRequired)?;
    let value = std::str::from_utf8(raw).map_err(|_| Reply::InvalidAuthorization)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(Reply::InvalidAuthorization)?;
    let accepted = scheme.eq_ignore_ascii_case("splunk")
        || (schemes == Schemes::SplunkOrBearer && scheme.eq_ignore_ascii_case("bearer"));
    let token = token.trim();
    if !accepted || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Reply::InvalidAuthorization);
    }
    Ok(token)
}

/// Undo `Content-Encoding` (`gzip` or identity), refusing output larger than `max_bytes`.
pub fn decode_body(
    encoding: Option<&[u8]>,
    body: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, Reply> {
    let encoding = encoding
        .map(|e| String::from_utf8_lossy(e).trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let limit = u64::try_from(max_bytes)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let mut out = Vec::new();
            MultiGzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| Reply::InvalidDataFormat { index: None })?;
            if out.len() > max_bytes {
                return Err(Reply::TooLarge);
            }
            Ok(out)
        }
        _ => Err(Reply::UnsupportedEncoding),
    }
}

/// Parse a HEC event body: one or more JSON envelopes, concatenated with optional whitespace.
///
/// Like Splunk, any bad envelope rejects the whole request, so the caller stores nothing
/// unless this returns `Ok`.
pub fn parse_envelopes(body: &[u8]) -> Result<Vec<Value>, Reply> {
    match parse_envelope_prefix(body) {
        (envelopes, None) => Ok(envelopes),
        (_, Some(reply)) => Err(reply),
    }
}

/// Like [`parse_envelopes`], but also hands back the good envelopes before the first bad one,
/// for a receiver that indexes them as Splunk does for code 6 ("Format events for HTTP Event
/// Collector": events before `invalid-event-number` are indexed).
pub fn parse_envelope_prefix(body: &[u8]) -> (Vec<Value>, Option<Reply>) {
    match parse_prefix(body) {
        Ok(envelopes) => (envelopes, None),
        Err(pair) => pair,
    }
}

fn parse_prefix(body: &[u8]) -> Result<Vec<Value>, (Vec<Value>, Option<Reply>)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err((Vec::new(), Some(Reply::NoData)));
    }
    let mut envelopes = Vec::new();
    for (index, item) in serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .enumerate()
    {
        let bad = Reply::InvalidDataFormat { index: Some(index) };
        let Ok(envelope) = item else {
            return Err((envelopes, Some(bad)));
        };
        let Value::Object(fields) = &envelope else {
            return Err((envelopes, Some(bad)));
        };
        match fields.get("event") {
            None => return Err((envelopes, Some(Reply::EventRequired { index }))),
            Some(event) if is_blank(event) => {
                return Err((envelopes, Some(Reply::EventBlank { index })))
            }
            Some(_) => envelopes.push(envelope),
        }
    }
    Ok(envelopes)
}

/// Parse a generic-endpoint body: exactly one JSON document of any kind.
pub fn parse_document(body: &[u8]) -> Result<Value, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::NoData);
    }
    serde_json::from_slice(body).map_err(|_| Reply::InvalidDataFormat { index: Some(0) })
}

/// Whether a data channel is a GUID (`8-4-4-4-12` hex digits), which is what Splunk requires
/// ("About HTTP Event Collector Indexer Acknowledgment": the channel is a client-chosen GUID;
/// anything else is code 11 "Invalid data channel").
pub fn is_valid_channel(channel: &str) -> bool {
    let groups: Vec<&str> = channel.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_blank(event: &Value) -> bool {
    match event {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{write::GzEncoder, Compression};

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn concatenated_envelopes_with_and_without_whitespace() {
        let body = br#"{"event":{"event_id":"a"}}{"event":"b"}
            {"event":1}

{"time":1.5,"event":[1]}  "#;
        let got = parse_envelopes(body).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0]["event"]["event_id"], "a");
        assert_eq!(got[3]["time"], 1.5);
    }

    #[test]
    fn empty_body_is_no_data() {
        assert_eq!(parse_envelopes(b""), Err(Reply::NoData));
        assert_eq!(parse_envelopes(b" \n\t"), Err(Reply::NoData));
        assert_eq!(parse_document(b""), Err(Reply::NoData));
    }

    #[test]
    fn invalid_json_names_the_envelope() {
        let body = br#"{"event":"a"} {"event":"b"} {"event": nope}"#;
        assert_eq!(
            parse_envelopes(body),
            Err(Reply::InvalidDataFormat { index: Some(2) })
        );
        assert_eq!(
            parse_envelopes(b"garbage"),
            Err(Reply::InvalidDataFormat { index: Some(0) })
        );
        // A truncated trailing envelope is invalid too.
        assert_eq!(
            parse_envelopes(br#"{"event":"a"}{"event":"#),
            Err(Reply::InvalidDataFormat { index: Some(1) })
        );
        // Non-object envelopes are not HEC.
        assert_eq!(
            parse_envelopes(br#"{"event":"a"} [1]"#),
            Err(Reply::InvalidDataFormat { index: Some(1) })
        );
    }

    #[test]
    fn missing_and_blank_event() {
        assert_eq!(
            parse_envelopes(br#"{"event":"a"}{"host":"h"}"#),
            Err(Reply::EventRequired { index: 1 })
        );
        for blank in [r#""""#, "null", r#""  ""#, "{}", "[]"] {
            let body = format!(r#"{{"event":"a"}}{{"event":{blank}}}"#);
            assert_eq!(
                parse_envelopes(body.as_bytes()),
                Err(Reply::EventBlank { index: 1 }),
                "{blank}"
            );
        }
    }

    #[test]
    fn reply_bodies_match_splunk() {
        assert_eq!(Reply::Success.body(), json!({"text":"Success","code":0}));
        assert_eq!(
            Reply::EventBlank { index: 3 }.body(),
            json!({"text":"Event field cannot be blank","code":13,"invalid-event-number":3})
        );
        assert_eq!(
            Reply::InvalidDataFormat { index: None }.body(),
            json!({"text":"Invalid data format","code":6})
        );
        assert_eq!(Reply::InvalidToken.status(), StatusCode::FORBIDDEN);
        assert_eq!(Reply::TokenRequired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            Reply::Unhealthy.body(),
            json!({"text":"HEC is unhealthy, queues are full","code":18})
        );
    }

    #[test]
    fn new_replies_and_channels() {
        assert_eq!(
            Reply::SuccessAck { ack_id: 3 }.body(),
            json!({"text":"Success","code":0,"ackId":3})
        );
        assert_eq!(
            Reply::IncorrectIndex { index: 2 }.body(),
            json!({"text":"Incorrect index","code":7,"invalid-event-number":2})
        );
        assert_eq!(
            Reply::ChannelMissing.body(),
            json!({"text":"Data channel is missing","code":10})
        );
        assert_eq!(Reply::AckDisabled.status(), StatusCode::BAD_REQUEST);
        let big = Reply::ContentLengthTooLarge {
            length: 12,
            max: 10,
        };
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            big.body()["text"],
            "Content-Length of 12 too large (maximum is 10)"
        );
        assert!(is_valid_channel("0AAD6E30-9C21-4E6C-A2F8-A1F3A1E6F0E1"));
        assert!(!is_valid_channel("not-a-uuid"));
        assert!(!is_valid_channel("0aad6e30-9c21-4e6c-a2f8-a1f3a1e6f0eZ"));
        let (good, bad) = parse_envelope_prefix(br#"{"event":"a"}{"event":"b"} nope"#);
        assert_eq!(good.len(), 2);
        assert_eq!(bad, Some(Reply::InvalidDataFormat { index: Some(2) }));
    }

    #[test]
    fn fault_codes() {
        assert_eq!(fault_code(StatusCode::SERVICE_UNAVAILABLE), 9);
        assert_eq!(fault_code(StatusCode::TOO_MANY_REQUESTS), 9);
        assert_eq!(fault_code(StatusCode::INTERNAL_SERVER_ERROR), 8);
        assert_eq!(fault_code(StatusCode::BAD_GATEWAY), 8);
        assert_eq!(fault_code(StatusCode::BAD_REQUEST), 6);
        assert_eq!(fault_code(StatusCode::FORBIDDEN), 4);
    }

    #[test]
    fn authorization_header() {
        let s = Schemes::Splunk;
        assert_eq!(parse_authorization(None, s), Err(Reply::TokenRequired));
        assert_eq!(parse_authorization(Some(b"Splunk abc"), s), Ok("abc"));
        assert_eq!(parse_authorization(Some(b"splunk  abc "), s), Ok("abc"));
        for bad in [
            &b"Splunk"[..],
            b"Splunk ",
            b"Bearer abc",
            b"abc",
            b"Splunk a b",
            b"\xff",
        ] {
            assert_eq!(
                parse_authorization(Some(bad), s),
                Err(Reply::InvalidAuthorization)
            );
        }
        assert_eq!(
            parse_authorization(Some(b"Bearer abc"), Schemes::SplunkOrBearer),
            Ok("abc")
        );
    }

    #[test]
    fn gzip_bodies() {
        let plain = br#"{"event":"a"}{"event":"b"}"#;
        let decoded = decode_body(Some(b"gzip"), &gzip(plain), 1024).unwrap();
        assert_eq!(parse_envelopes(&decoded).unwrap().len(), 2);
        assert_eq!(decode_body(None, plain, 1024).unwrap(), plain.to_vec());
        assert_eq!(
            decode_body(Some(b"gzip"), plain, 1024),
            Err(Reply::InvalidDataFormat { index: None })
        );
        // The cap applies to the decompressed size: a zip bomb is refused.
        let bomb = gzip(&vec![b' '; 10_000]);
        assert_eq!(
            decode_body(Some(b"gzip"), &bomb, 1000),
            Err(Reply::TooLarge)
        );
        assert_eq!(
            decode_body(Some(b"br"), plain, 1024),
            Err(Reply::UnsupportedEncoding)
        );
    }
}
