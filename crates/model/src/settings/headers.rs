//! Header rules of org settings: which names carry credentials, what a value may contain,
//! and the destination (scheme, host, port) a kept secret is bound to.

use std::fmt;

use super::RESERVED_HEADERS;
use crate::error::ModelError;

/// Request headers that carry credentials (RFC 9110 `Authorization`, `Proxy-Authorization`;
/// RFC 6265 `Cookie`; Datadog's `DD-API-KEY`): they belong in `auth_headers`, never in the
/// custom headers, which are stored in clear and shown by the API.
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "dd-api-key",
];

/// Whether a header of this name (any case) carries a credential.
pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name.trim()))
}

/// Where a URL sends requests: scheme, host and port (the scheme's default when absent).
/// Secrets are kept across a settings change only while this stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Destination {
    scheme: String,
    host: url::Host<String>,
    port: Option<u16>,
}

impl Destination {
    pub(super) fn of(url: &str) -> Option<Self> {
        let url = url::Url::parse(url).ok()?;
        Some(Self {
            scheme: url.scheme().to_string(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default(),
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

pub(super) fn check_header(name: &str, value: &str, field: &str) -> Result<(), ModelError> {
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name {
        return Err(ModelError::field(
            format!("{field}.name"),
            "not a valid HTTP header name",
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ModelError::field(
            format!("{field}.name"),
            format!("`{name}` is set by ELS and cannot be overridden"),
        ));
    }
    // What HTTP refuses in a field value (CR, LF, NUL, other C0 controls, DEL), and C1
    // controls; a tab is legal. The message never quotes the value: it may be a secret.
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ModelError::field(
            format!("{field}.value"),
            "must not contain control characters (line breaks, NUL, DEL, ...; a tab is allowed)",
        ));
    }
    Ok(())
}
