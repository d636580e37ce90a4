//! Per-org stream settings: the vendor's "Execution log streaming" page as data.
//!
//! Validation returns the first problem with the field's name, so the admin API can answer
//! `400 {"field": "url", ...}` and the CLI can print a precise message.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::event::EventType;
use crate::hec::HecOptions;
use crate::template::BodyTemplate;

mod destination;
mod headers;
#[cfg(test)]
mod tests;

pub use destination::{
    check_stream_id, stream_slot, DatadogOptions, ElasticOpType, ElasticOptions, HttpFormat,
    HttpOptions, OAuth2, DATADOG_MAX_BYTES, DATADOG_MAX_EVENTS, DEFAULT_STREAM,
};

use headers::{check_header, Destination};
pub use headers::{is_credential_header, CREDENTIAL_HEADERS};

/// How the stream's endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Splunk HEC: batched envelopes, HEC reply codes.
    #[default]
    Hec,
    /// Any HTTPS endpoint: one event per request rendered through the body template, or
    /// batches as NDJSON or a JSON array ([`HttpOptions`]).
    Http,
    /// Elasticsearch `_bulk` ([`ElasticOptions`]): per-item answers, only failed items re-sent.
    Elasticsearch,
    /// Datadog logs intake ([`DatadogOptions`]): JSON arrays, `DD-API-KEY`.
    Datadog,
}

/// Which event types to stream: `"all"` or a list such as `["FLOW_FAILED","FLOW_CANCELED"]`.
/// `"all"` includes types this version does not know; a list may name any well-formed type
/// (see [`EventType`]), so an org can subscribe to a new type by name before ELS knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventSelection {
    #[default]
    #[serde(serialize_with = "all_literal")]
    All,
    Only(BTreeSet<EventType>),
}

fn all_literal<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("all")
}

/// By hand rather than `untagged`, whose one message ("did not match any variant") would
/// not say which type is wrong: `"all"` (any case) or a list whose bad entry is named.
impl<'de> Deserialize<'de> for EventSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EventSelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of event types")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EventSelection, E> {
                if text.eq_ignore_ascii_case("all") {
                    Ok(EventSelection::All)
                } else {
                    Err(E::custom("expected \"all\" or a list of event types"))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<EventSelection, A::Error> {
                let mut set = BTreeSet::new();
                let mut i = 0;
                while let Some(name) = seq.next_element::<String>()? {
                    let t = EventType::parse(&name)
                        .map_err(|e| serde::de::Error::custom(format!("events[{i}]: {e}")))?;
                    set.insert(t);
                    i += 1;
                }
                Ok(EventSelection::Only(set))
            }
        }
        d.deserialize_any(V)
    }
}

impl EventSelection {
    pub fn includes(&self, event_type: EventType) -> bool {
        match self {
            EventSelection::All => true,
            EventSelection::Only(set) => set.contains(&event_type),
        }
    }
}

/// Per-flow streaming: all flows, only the listed ones, or all but the listed ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowMode {
    #[default]
    All,
    Include,
    Exclude,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSelection {
    #[serde(default)]
    pub mode: FlowMode,
    #[serde(default)]
    pub flow_ids: BTreeSet<String>,
}

impl FlowSelection {
    pub fn includes(&self, flow_id: &str) -> bool {
        match self.mode {
            FlowMode::All => true,
            FlowMode::Include => self.flow_ids.contains(flow_id),
            FlowMode::Exclude => !self.flow_ids.contains(flow_id),
        }
    }
}

/// What the API shows instead of an auth header value. Sent back unchanged in a settings
/// document it means "keep the value stored for this header name" (see
/// [`OrgSettings::keep_stored_secrets`]), so `get` -> edit -> `set` round-trips.
pub const REDACTED: &str = "********";

/// A header value that must never be shown: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value, for building the outgoing request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this is the API's redaction placeholder rather than a real value.
    pub fn is_placeholder(&self) -> bool {
        self.0 == REDACTED
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A header pair; for auth headers the value is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header<V> {
    pub name: String,
    pub value: V,
}

/// What to do with events over the org's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPolicy {
    /// Wait for a token; events queue (and park when the queue is full).
    #[default]
    Delay,
    /// Dead-letter the excess with reason `rate_limited` (replayable).
    DeadLetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Second,
    Minute,
}

/// The org's `max_events` limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub rate: u32,
    pub per: Per,
    /// Events allowed at once; defaults to `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default)]
    pub policy: LimitPolicy,
}

/// A key/value pair added to every outbound event. The values `${org_id}` and `${user_id}`
/// are replaced by the event's ids: the only way those ids leave ELS. The key may not be one
/// of [`crate::privacy::RESERVED_FIELD_KEYS`] (`event_id`, `user_email`, `org_id`,
/// `user_id`): a custom field must not replace the de-duplication id or the hashed address,
/// nor pass off a value as the event's own org or user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub key: String,
    pub value: String,
}

fn yes() -> bool {
    true
}

/// One stream's settings (an org has up to a configured number of streams, each its own
/// destination; settings written before streams existed are the org's stream `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    /// What people call the stream (the console shows it); the stream id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Absolute http(s) URL of the SIEM endpoint; https unless `allow_http`.
    pub url: String,
    #[serde(default)]
    pub endpoint: EndpointKind,
    #[serde(default)]
    pub events: EventSelection,
    #[serde(default)]
    pub flows: FlowSelection,
    /// Authorization headers: write-only, encrypted at rest, never logged.
    #[serde(default)]
    pub auth_headers: Vec<Header<Secret>>,
    #[serde(default)]
    pub custom_headers: Vec<Header<String>>,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
    /// JSON with `"${event}"` where the event goes; `None` = the event itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<RateLimit>,
    #[serde(default)]
    pub hec: HecOptions,
    /// Body layout and caps of an `http` stream.
    #[serde(default, skip_serializing_if = "HttpOptions::is_default")]
    pub http: HttpOptions,
    /// Index and op type of an `elasticsearch` stream (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<ElasticOptions>,
    /// Reserved attributes of a `datadog` stream's log entries.
    #[serde(default, skip_serializing_if = "DatadogOptions::is_default")]
    pub datadog: DatadogOptions,
    /// OAuth2 client credentials for any stream but `hec`: a bearer token is fetched and
    /// sent as `Authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// Permit plain http (local demos and tests only).
    #[serde(default)]
    pub allow_http: bool,
}

const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
];

impl OrgSettings {
    /// A minimal enabled HEC stream to `url` with one auth header.
    pub fn hec(url: impl Into<String>, token: &str) -> Self {
        Self {
            name: None,
            enabled: true,
            url: url.into(),
            endpoint: EndpointKind::Hec,
            events: EventSelection::All,
            flows: FlowSelection::default(),
            auth_headers: vec![Header {
                name: "Authorization".into(),
                value: Secret::new(format!("Splunk {token}")),
            }],
            custom_headers: Vec::new(),
            custom_fields: Vec::new(),
            body_template: None,
            max_events: None,
            hec: HecOptions::default(),
            http: HttpOptions::default(),
            elasticsearch: None,
            datadog: DatadogOptions::default(),
            oauth2: None,
            allow_http: false,
        }
    }

    /// Parse a settings document (the admin API's PUT body). Errors name the field as a JSON
    /// path (`flows.mode`, `auth_headers[0].value`); serde's messages, which may quote the
    /// input, are replaced for auth header fields so a secret is never echoed. Does not
    /// validate: call [`Self::keep_stored_secrets`] and then [`Self::validate`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(&mut de);
        let settings = parsed.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            if matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            ) {
                return ModelError::MalformedJson {
                    line: None,
                    message,
                };
            }
            let parent = if path == "." { "" } else { path.as_str() };
            // serde reports a missing field at its parent's path (an unknown one at its own).
            let named = quoted_after(&message, "missing field `");
            let field = match named {
                Some(name) if parent.is_empty() => name.to_string(),
                Some(name) => format!("{parent}.{name}"),
                None => parent.to_string(),
            };
            if field.is_empty() {
                return ModelError::MalformedJson {
                    line: None,
                    message,
                };
            }
            let echoes_input =
                !message.starts_with("missing field") && !message.starts_with("unknown field");
            let message = if field.starts_with("auth_headers") && echoes_input {
                "invalid value (not shown: auth headers are secret)".to_string()
            } else {
                message
            };
            ModelError::field(field, message)
        })?;
        de.end().map_err(|e| ModelError::MalformedJson {
            line: None,
            message: e.to_string(),
        })?;
        Ok(settings)
    }

    /// Replace auth header values that are the [`REDACTED`] placeholder by the value stored
    /// for the same header name (case-insensitive) in `stored`, the org's current settings.
    /// A placeholder with nothing stored under that name is an error naming the field, and
    /// so is a placeholder while the destination's scheme, host or port changes: a secret was
    /// entered for one server, and keeping it must not send it to another (an endpoint that
    /// echoes request headers would read it back), so a new destination needs the secrets
    /// entered again.
    pub fn keep_stored_secrets(&mut self, stored: Option<&OrgSettings>) -> Result<(), ModelError> {
        // (from, to) when the destination changes; a new URL that does not parse is left to
        // `validate`, which refuses it.
        let moved = stored.and_then(|s| {
            let to = Destination::of(&self.url)?;
            let from = Destination::of(&s.url);
            (from.as_ref() != Some(&to)).then(|| {
                let from = from.map_or_else(|| "an invalid URL".to_string(), |d| d.to_string());
                (from, to.to_string())
            })
        });
        for (i, header) in self.auth_headers.iter_mut().enumerate() {
            if !header.value.is_placeholder() {
                continue;
            }
            let field = format!("auth_headers[{i}].value");
            let kept = stored
                .into_iter()
                .flat_map(|s| s.auth_headers.iter())
                .find(|h| h.name.eq_ignore_ascii_case(&header.name) && !h.value.is_placeholder());
            let Some(kept) = kept else {
                return Err(ModelError::field(
                    field,
                    format!(
                        "is the redaction placeholder \"{REDACTED}\" but no value is stored for \
                         header `{}`; send the real value",
                        header.name
                    ),
                ));
            };
            if let Some((from, to)) = &moved {
                return Err(ModelError::field(
                    field,
                    format!(
                        "is the redaction placeholder \"{REDACTED}\", which keeps the stored value \
                         only while the destination stays the same; the URL's scheme, host or \
                         port changes (from {from} to {to}): send the real value of header `{}` \
                         for the new destination",
                        header.name
                    ),
                ));
            }
            header.value = kept.value.clone();
        }
        if let Some(oauth) = self.oauth2.as_mut() {
            if oauth.client_secret.is_placeholder() {
                let field = "oauth2.client_secret";
                let kept = stored.and_then(|s| s.oauth2.as_ref()).filter(|k| {
                    !k.client_secret.is_placeholder()
                        && Destination::of(&k.token_url).is_some()
                        && Destination::of(&k.token_url) == Destination::of(&oauth.token_url)
                        && k.client_id == oauth.client_id
                });
                let Some(kept) = kept else {
                    return Err(ModelError::field(
                        field,
                        format!(
                            "is the redaction placeholder \"{REDACTED}\", which keeps the stored \
                             secret only while token_url's scheme, host and port and the \
                             client_id stay the same: send the real client secret"
                        ),
                    ));
                };
                oauth.client_secret = kept.client_secret.clone();
            }
        }
        Ok(())
    }

    /// Move custom headers that carry a credential ([`is_credential_header`]) to the auth
    /// headers, returning their names. For settings stored before such custom headers were
    /// refused: they keep working, now redacted when shown and sealed when next written.
    pub fn move_credential_headers_to_auth(&mut self) -> Vec<String> {
        let (credentials, custom): (Vec<_>, Vec<_>) = std::mem::take(&mut self.custom_headers)
            .into_iter()
            .partition(|h| is_credential_header(&h.name));
        self.custom_headers = custom;
        credentials
            .into_iter()
            .map(|h| {
                let name = h.name.clone();
                self.auth_headers.push(Header {
                    name: h.name,
                    value: Secret::new(h.value),
                });
                name
            })
            .collect()
    }

    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(ModelError::field(
                    "name",
                    "must be 1-64 bytes without control characters",
                ));
            }
        }
        self.validate_endpoint()?;
        let url = url::Url::parse(&self.url)
            .map_err(|e| ModelError::field("url", format!("not an absolute URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(ModelError::field(
                    "url",
                    "must use https (set allow_http for local endpoints)",
                ))
            }
            other => {
                return Err(ModelError::field(
                    "url",
                    format!("scheme `{other}` is not http(s)"),
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ModelError::field("url", "has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ModelError::field(
                "url",
                "must not carry credentials; use auth_headers",
            ));
        }
        if let EventSelection::Only(set) = &self.events {
            if set.is_empty() {
                return Err(ModelError::field(
                    "events",
                    "select at least one event type, or \"all\"",
                ));
            }
        }
        if self.flows.mode != FlowMode::All && self.flows.flow_ids.is_empty() {
            return Err(ModelError::field(
                "flows.flow_ids",
                "list at least one flow",
            ));
        }
        for (i, h) in self.auth_headers.iter().enumerate() {
            check_header(&h.name, h.value.expose(), &format!("auth_headers[{i}]"))?;
        }
        for (i, h) in self.custom_headers.iter().enumerate() {
            let field = format!("custom_headers[{i}]");
            check_header(&h.name, &h.value, &field)?;
            if is_credential_header(&h.name) {
                return Err(ModelError::field(
                    format!("{field}.name"),
                    format!(
                        "`{}` carries a credential: put it in auth_headers, whose values are \
                         encrypted at rest and never shown",
                        h.name
                    ),
                ));
            }
        }
        for (i, f) in self.custom_fields.iter().enumerate() {
            if f.key.trim().is_empty() {
                return Err(ModelError::field(
                    format!("custom_fields[{i}].key"),
                    "must not be empty",
                ));
            }
            if crate::privacy::is_reserved_field_key(&f.key) {
                return Err(ModelError::field(
                    format!("custom_fields[{i}].key"),
                    format!(
                        "`{}` is reserved: event_id, user_email, org_id and user_id are written \
                         by ELS (to send an id, use another key with the value ${{org_id}} or \
                         ${{user_id}})",
                        f.key
                    ),
                ));
            }
        }
        if let Some(t) = &self.body_template {
            BodyTemplate::parse(t, "body_template")?;
        }
        if let Some(limit) = &self.max_events {
            if limit.rate == 0 {
                return Err(ModelError::field("max_events.rate", "must be at least 1"));
            }
            if limit.burst == Some(0) {
                return Err(ModelError::field("max_events.burst", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The endpoint type's own options, present where required and absent where meaningless.
    fn validate_endpoint(&self) -> Result<(), ModelError> {
        self.http.validate("http")?;
        match self.endpoint {
            EndpointKind::Elasticsearch => match &self.elasticsearch {
                Some(options) => options.validate("elasticsearch")?,
                None => {
                    return Err(ModelError::field(
                        "elasticsearch",
                        "an elasticsearch stream needs {\"index\": ...}",
                    ))
                }
            },
            _ if self.elasticsearch.is_some() => {
                return Err(ModelError::field(
                    "elasticsearch",
                    "only for endpoint \"elasticsearch\"",
                ))
            }
            _ => {}
        }
        if self.endpoint == EndpointKind::Datadog
            && !self
                .auth_headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("dd-api-key"))
        {
            return Err(ModelError::field(
                "auth_headers",
                "a datadog stream needs the auth header DD-API-KEY",
            ));
        }
        if self.endpoint != EndpointKind::Http && !self.http.is_default() {
            return Err(ModelError::field("http", "only for endpoint \"http\""));
        }
        if let Some(oauth) = &self.oauth2 {
            if self.endpoint == EndpointKind::Hec {
                return Err(ModelError::field(
                    "oauth2",
                    "Splunk HEC authenticates with its token: use auth_headers",
                ));
            }
            if self
                .auth_headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("authorization"))
            {
                return Err(ModelError::field(
                    "oauth2",
                    "sends the Authorization header itself: remove it from auth_headers",
                ));
            }
            oauth.validate(self.allow_http)?;
        }
        Ok(())
    }

    /// Whether this org wants an event of this type and flow at all (enabled, event type and
    /// flow selected).
    pub fn selects(&self, event_type: EventType, flow_id: &str) -> bool {
        self.enabled && self.events.includes(event_type) && self.flows.includes(flow_id)
    }

    /// The parsed body template, if any (validated settings always parse).
    pub fn template(&self) -> Option<BodyTemplate> {
        self.body_template
            .as_deref()
            .and_then(|t| BodyTemplate::parse(t, "body_template").ok())
    }

    /// Settings as shown by the API: auth header values are replaced by `********`.
    pub fn redacted(&self) -> Self {
        let mut out = self.clone();
        for h in &mut out.auth_headers {
            h.value = Secret::new(REDACTED);
        }
        if let Some(oauth) = out.oauth2.as_mut() {
            oauth.client_secret = Secret::new(REDACTED);
        }
        out
    }
}

/// The name quoted in a serde message such as ``unknown field `x`, expected ...``.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}
