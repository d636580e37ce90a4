//! The model crate's single error type.

/// A validation or parsing failure. Every variant names the field (a JSON path such as
/// `events[3].flow_id`) so API callers and operators can fix their input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The body is not JSON at all (or not NDJSON); `line` is 1-based for NDJSON.
    #[error("malformed JSON{}: {message}", line.map(|l| format!(" on line {l}")).unwrap_or_default())]
    MalformedJson {
        line: Option<usize>,
        message: String,
    },
    /// A field is missing, has the wrong type, or has an invalid value.
    #[error("invalid field `{field}`: {message}")]
    InvalidField { field: String, message: String },
    /// An object names a key twice; `field` is the repeated key's path (`events[1].org_id`).
    /// Readers disagree about such an event (serde keeps the last value, others the first).
    #[error("duplicate key `{field}`: a JSON object may name each key once")]
    DuplicateKey { field: String },
    /// The request has more events than allowed.
    #[error("too many events in one request: {count} (limit {limit})")]
    TooManyEvents { count: usize, limit: usize },
    /// The request has no events.
    #[error("the request contains no events")]
    Empty,
}

impl ModelError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The JSON path of the offending field, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. } | Self::DuplicateKey { field } => Some(field),
            _ => None,
        }
    }

    /// Prefix the field path, e.g. with `events[3]`.
    pub fn within(self, prefix: &str) -> Self {
        let join = |field: String| {
            if field.is_empty() {
                prefix.to_string()
            } else if field.starts_with('[') {
                format!("{prefix}{field}")
            } else {
                format!("{prefix}.{field}")
            }
        };
        match self {
            Self::InvalidField { field, message } => Self::InvalidField {
                field: join(field),
                message,
            },
            Self::DuplicateKey { field } => Self::DuplicateKey { field: join(field) },
            other => other,
        }
    }
}
