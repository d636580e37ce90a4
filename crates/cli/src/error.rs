//! The crate's one error type, what each error means for the exit code, and the admin API's
//! JSON error answer ([`ErrorBody`]: `{"error", "field", "message"}`) rendered the way an
//! operator reads it.

use std::fmt;
use std::io;

use els_api::ErrorBody;
pub use els_api::FieldError;

use crate::output;

/// Process exit codes. Usage errors (2) also come from clap itself.
pub mod exit {
    /// The command did what was asked.
    pub const SUCCESS: u8 = 0;
    /// The admin API (or the SIEM, for `test-event`) answered with an error, or some dead
    /// letters failed to replay.
    pub const FAILURE: u8 = 1;
    /// Bad arguments or input file; nothing was sent.
    pub const USAGE: u8 = 2;
    /// The admin API could not be reached at all.
    pub const CONNECT: u8 = 3;
}

/// Everything that can go wrong in `elsctl`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments that clap cannot check alone (e.g. `--since` after `--until`, a replay of
    /// everything without `--yes`).
    #[error("{0}")]
    Usage(String),
    /// No TCP/TLS connection to the admin API.
    #[error("cannot connect to the admin API at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// Connected, but no complete answer in time.
    #[error("no answer from {url} within {secs} s")]
    Timeout { url: String, secs: u64 },
    /// Any other transport failure (connection reset mid-answer, bad TLS, ...).
    #[error("request to {url} failed: {detail}")]
    Transport { url: String, detail: String },
    /// The admin API answered with a non-success status.
    #[error("{0}")]
    Api(ApiError),
    /// A success status with a body we cannot read (wrong service on that port, version skew).
    #[error("unexpected answer from {url}: {detail}")]
    Unexpected { url: String, detail: String },
    /// A settings file (or stdin) could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    /// A settings file is not JSON; serde_json's message names line and column only,
    /// never the content (which may hold secrets).
    #[error("{path} is not valid JSON: {source}")]
    InvalidJson {
        path: String,
        source: serde_json::Error,
    },
    /// Writing to stdout/stderr failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Read { .. } | Error::InvalidJson { .. } => exit::USAGE,
            Error::Connect { .. } => exit::CONNECT,
            Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Api(_)
            | Error::Unexpected { .. }
            | Error::Output(_) => exit::FAILURE,
        }
    }

    /// A next step for the operator, printed after the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Connect { url, .. } => Some(format!(
                "check that els-consumer is running and its admin server listens at {url} \
                 (set --admin-url or ELS_ADMIN_URL)"
            )),
            Error::Timeout { .. } => Some(
                "the consumer may be overloaded; for large replays narrow the filters or use --limit"
                    .to_string(),
            ),
            Error::Api(api) => api.hint(),
            _ => None,
        }
    }

    /// True when stdout went away (`elsctl dlq list | head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// A non-success answer from the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The reason phrase (`Bad Request`).
    pub reason: String,
    /// The field the API blames, if any (`reason`, `url`, `Authorization`).
    pub field: Option<String>,
    /// The API's message, or an excerpt of a non-JSON body.
    pub message: String,
    /// Further field errors when the API lists several (`"errors": [{field, message}]`).
    pub errors: Vec<FieldError>,
    /// Whether the body was the admin API's JSON error shape: a bare 404 without it means the
    /// route does not exist on that server (an older consumer).
    pub structured: bool,
}

/// Longest excerpt of a non-JSON error body that is shown.
const MAX_EXCERPT_CHARS: usize = 300;

impl ApiError {
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        let canonical = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .to_string();
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if !parsed.message.is_empty() || !parsed.errors.is_empty() => ApiError {
                status,
                reason: if canonical.is_empty() {
                    parsed.error.unwrap_or_default()
                } else {
                    canonical
                },
                field: parsed.field.filter(|f| !f.is_empty()),
                message: parsed.message,
                errors: parsed.errors,
                structured: true,
            },
            _ => ApiError {
                status,
                reason: canonical,
                field: None,
                message: output::truncate(
                    &output::one_line(&String::from_utf8_lossy(body)),
                    MAX_EXCERPT_CHARS,
                ),
                errors: Vec::new(),
                structured: false,
            },
        }
    }

    fn hint(&self) -> Option<String> {
        match self.status {
            401 => {
                Some("pass the consumer's admin token with --token or ELS_ADMIN_TOKEN".to_string())
            }
            404 if !self.structured => Some(
                "this admin API has no such endpoint; is the consumer older than elsctl, \
                 or is --admin-url pointing at another service?"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if !self.reason.is_empty() {
            write!(f, " {}", self.reason)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{}`", output::one_line(field))?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", output::one_line(&self.message))?;
        }
        for e in &self.errors {
            match &e.field {
                Some(field) => write!(
                    f,
                    "\n  field `{}`: {}",
                    output::one_line(field),
                    output::one_line(&e.message)
                )?,
                None => write!(f, "\n  {}", output::one_line(&e.message))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_names_status_field_and_message() {
        let body = br#"{"error":"Bad Request","field":"reason","message":"unknown reason `x`; one of rejected"}"#;
        let e = ApiError::from_answer(400, body);
        assert_eq!(
            e.to_string(),
            "400 Bad Request: field `reason`: unknown reason `x`; one of rejected"
        );
        assert!(e.structured);
        assert_eq!(Error::Api(e).exit_code(), exit::FAILURE);
    }

    #[test]
    fn api_error_without_field() {
        let body = br#"{"error":"Internal Server Error","field":null,"message":"sled: io"}"#;
        assert_eq!(
            ApiError::from_answer(500, body).to_string(),
            "500 Internal Server Error: sled: io"
        );
    }

    #[test]
    fn api_error_lists_several_field_errors() {
        let body = br#"{"error":"Bad Request","field":"url","message":"2 invalid fields","errors":[{"field":"url","message":"https required"},{"field":"events","message":"unknown event"}]}"#;
        assert_eq!(
            ApiError::from_answer(400, body).to_string(),
            "400 Bad Request: field `url`: 2 invalid fields\n  field `url`: https required\n  field `events`: unknown event"
        );
    }

    #[test]
    fn non_json_error_bodies_are_excerpted_on_one_line() {
        let e = ApiError::from_answer(502, b"<html>\n<b>bad gateway</b>\n</html>");
        assert_eq!(
            e.to_string(),
            "502 Bad Gateway: <html> <b>bad gateway</b> </html>"
        );
        assert!(!e.structured);
        let long = "x".repeat(5000);
        let e = ApiError::from_answer(500, long.as_bytes());
        assert!(e.message.chars().count() <= MAX_EXCERPT_CHARS);
    }

    #[test]
    fn empty_404_suggests_version_skew() {
        let e = Error::Api(ApiError::from_answer(404, b""));
        assert_eq!(e.to_string(), "404 Not Found");
        assert!(e.hint().unwrap_or_default().contains("older"));
        let e = Error::Api(ApiError::from_answer(
            404,
            br#"{"error":"Not Found","field":"id","message":"no dead letter 7"}"#,
        ));
        assert_eq!(e.to_string(), "404 Not Found: field `id`: no dead letter 7");
        assert_eq!(e.hint(), None);
    }

    #[test]
    fn unauthorized_hints_at_the_token() {
        let e = Error::Api(ApiError::from_answer(
            401,
            br#"{"error":"Unauthorized","field":"Authorization","message":"missing or wrong bearer token"}"#,
        ));
        assert!(e.hint().unwrap_or_default().contains("ELS_ADMIN_TOKEN"));
    }

    #[test]
    fn hostile_messages_cannot_inject_terminal_escapes() {
        let e = ApiError::from_answer(400, b"{\"message\":\"a\\u001b[2Jb\"}");
        assert_eq!(e.to_string(), "400 Bad Request: a\\u{1b}[2Jb");
    }

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(Error::Usage("x".into()).exit_code(), exit::USAGE);
        let connect = Error::Connect {
            url: "http://127.0.0.1:9090/".into(),
            detail: "refused".into(),
        };
        assert_eq!(connect.exit_code(), exit::CONNECT);
        assert!(connect
            .hint()
            .unwrap_or_default()
            .contains("http://127.0.0.1:9090/"));
        let timeout = Error::Timeout {
            url: "u".into(),
            secs: 60,
        };
        assert_eq!(timeout.exit_code(), exit::FAILURE);
        let pipe = Error::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
    }
}
