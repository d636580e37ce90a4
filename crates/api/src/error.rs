//! [`ErrorBody`]: the JSON of every error answer of the admin API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": <reason phrase>, "field": <the input at fault or null>, "message": <why>}`.
///
/// Reading is lenient (every field may be missing), so a client can tell this shape from
/// another service's error page by a non-empty `message` or `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The status's reason phrase (`Bad Request`).
    #[serde(default)]
    pub error: Option<String>,
    /// The input at fault (`org`, `auth_headers[0].value`, `Authorization`...), if one is.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub message: String,
    /// Further field errors, for answers that report several at once (left out when none;
    /// today's consumer reports one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One entry of [`ErrorBody::errors`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub message: String,
}
