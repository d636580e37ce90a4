//! What a stream's endpoint type needs beyond a URL: the body layout of generic HTTP
//! streams, Elasticsearch `_bulk` and Datadog options, OAuth2 client credentials, and the
//! stream's id within its org.

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::error::ModelError;

/// The id of an org's stream: `[a-z0-9][a-z0-9_-]{0,31}`. Settings written before streams
/// existed are the stream [`DEFAULT_STREAM`].
pub const DEFAULT_STREAM: &str = "default";

/// Check a stream id (from a path or a record key); the error names `field`.
pub fn check_stream_id(id: &str, field: &str) -> Result<(), ModelError> {
    let mut bytes = id.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok && id.len() <= 32 {
        Ok(())
    } else {
        Err(ModelError::field(
            field,
            "a stream id is 1-32 characters: lowercase letters, digits, '_' or '-', starting \
             with a letter or digit",
        ))
    }
}

/// The stream's number in dead-letter ids (bits 56-63 of `id`): 0 for [`DEFAULT_STREAM`],
/// else 1-255 from the id's FNV-1a hash. Two streams of one org may not share a slot (the
/// API refuses the second with a clear message), so each copy of an event that several
/// streams dead-letter keeps its own record.
pub fn stream_slot(id: &str) -> u8 {
    if id == DEFAULT_STREAM {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % 255) as u8 + 1
}

/// How a generic `http` stream lays events out in a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    /// One event per request, rendered through the body template.
    #[default]
    Single,
    /// Newline-delimited JSON (`application/x-ndjson`): one rendered event per line.
    Ndjson,
    /// A JSON array of rendered events.
    JsonArray,
}

/// Options of an `http` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    #[serde(default)]
    pub format: HttpFormat,
    /// Most events per request of a batched format.
    #[serde(default = "default_http_events")]
    pub max_events: u32,
    /// Largest request body of a batched format, uncompressed (bytes).
    #[serde(default = "default_http_bytes")]
    pub max_bytes: u32,
}

fn default_http_events() -> u32 {
    500
}

fn default_http_bytes() -> u32 {
    1024 * 1024
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            format: HttpFormat::Single,
            max_events: default_http_events(),
            max_bytes: default_http_bytes(),
        }
    }
}

impl HttpOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub(super) fn validate(&self, field: &str) -> Result<(), ModelError> {
        if !(1..=10_000).contains(&self.max_events) {
            return Err(ModelError::field(
                format!("{field}.max_events"),
                "must be 1-10000",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_bytes) {
            return Err(ModelError::field(
                format!("{field}.max_bytes"),
                "must be 1024 to 67108864 bytes",
            ));
        }
        Ok(())
    }
}

/// The `_bulk` action for each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElasticOpType {
    /// `create` with `_id` = `event_id`: a re-sent event answers 409 and is not indexed
    /// twice (at-least-once delivery without duplicates in the index). Required for data
    /// streams.
    #[default]
    Create,
    /// `index` with `_id` = `event_id`: a re-sent event overwrites itself.
    Index,
}

/// Options of an `elasticsearch` stream (`url` is the `_bulk` endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticOptions {
    /// Index or data stream every event goes to.
    pub index: String,
    #[serde(default)]
    pub op_type: ElasticOpType,
    /// Most events per `_bulk` request.
    #[serde(default = "default_http_events")]
    pub max_events: u32,
    /// Largest `_bulk` body, uncompressed (bytes); Elasticsearch's default
    /// `http.max_content_length` is 100 MB.
    #[serde(default = "default_http_bytes")]
    pub max_bytes: u32,
}

impl ElasticOptions {
    pub(super) fn validate(&self, field: &str) -> Result<(), ModelError> {
        // Elasticsearch's index name rules.
        let i = &self.index;
        let bad = i.is_empty()
            || i.len() > 255
            || i == "."
            || i == ".."
            || i.starts_with(['-', '_', '+'])
            || i.chars().any(|c| {
                c.is_ascii_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c)
            });
        if bad {
            return Err(ModelError::field(
                format!("{field}.index"),
                "not a valid Elasticsearch index name (lowercase, no spaces or \\/*?\"<>|,#:, \
                 not starting with -, _ or +)",
            ));
        }
        HttpOptions {
            format: HttpFormat::Ndjson,
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
        .validate(field)
    }
}

/// Options of a `datadog` stream (`url` is the logs intake, e.g.
/// `https://http-intake.logs.datadoghq.com/api/v2/logs`; the key goes in an auth header
/// `DD-API-KEY`). Each event becomes one log entry: the event's fields as attributes, plus
/// these reserved attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogOptions {
    #[serde(default = "default_ddsource")]
    pub ddsource: String,
    #[serde(default = "default_service")]
    pub service: String,
    /// Comma-separated `key:value` tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddtags: Option<String>,
}

fn default_ddsource() -> String {
    "els".into()
}

fn default_service() -> String {
    "workflows".into()
}

impl Default for DatadogOptions {
    fn default() -> Self {
        Self {
            ddsource: default_ddsource(),
            service: default_service(),
            ddtags: None,
        }
    }
}

impl DatadogOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Datadog's intake limits: 1,000 entries and 5 MB per request.
pub const DATADOG_MAX_EVENTS: usize = 1000;
pub const DATADOG_MAX_BYTES: usize = 5_000_000;

/// OAuth2 client credentials (RFC 6749 §4.4), e.g. Microsoft Entra ID for Microsoft
/// Sentinel's Logs Ingestion API: ELS fetches a bearer token from `token_url`, caches it,
/// renews it before it expires and once when the endpoint answers 401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    /// Write-only, encrypted at rest, never shown (the API shows `********`).
    pub client_secret: Secret,
    /// e.g. `https://monitor.azure.com//.default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl OAuth2 {
    pub(super) fn validate(&self, allow_http: bool) -> Result<(), ModelError> {
        let url = url::Url::parse(&self.token_url).map_err(|e| {
            ModelError::field("oauth2.token_url", format!("not an absolute URL: {e}"))
        })?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => {
                return Err(ModelError::field(
                    "oauth2.token_url",
                    "must use https (set allow_http for local endpoints)",
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ModelError::field("oauth2.token_url", "has no host"));
        }
        if self.client_id.trim().is_empty() || self.client_id.chars().any(char::is_control) {
            return Err(ModelError::field(
                "oauth2.client_id",
                "must be non-empty, without control characters",
            ));
        }
        if self.client_secret.expose().is_empty() {
            return Err(ModelError::field(
                "oauth2.client_secret",
                "must not be empty",
            ));
        }
        if let Some(scope) = &self.scope {
            if scope.chars().any(char::is_control) {
                return Err(ModelError::field(
                    "oauth2.scope",
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_and_slots() {
        for ok in ["default", "lake", "a", "siem-2", "x_y", &"a".repeat(32)] {
            assert!(check_stream_id(ok, "stream").is_ok(), "{ok}");
        }
        for bad in ["", "Lake", "-a", "_a", "a b", "a/b", "é", &"a".repeat(33)] {
            let e = check_stream_id(bad, "stream").unwrap_err();
            assert_eq!(e.field_name(), Some("stream"), "{bad}");
        }
        assert_eq!(stream_slot(DEFAULT_STREAM), 0);
        let slots: Vec<u8> = ["lake", "splunk", "ndjson", "b"]
            .iter()
            .map(|s| stream_slot(s))
            .collect();
        assert!(slots.iter().all(|s| *s >= 1), "{slots:?}");
        assert_eq!(stream_slot("lake"), stream_slot("lake"));
    }
}
