//! [`ApiError`]: every error answer of the admin API, as JSON ([`ErrorBody`])
//! `{"error": <reason phrase>, "field": <the input at fault or null>, "message": <why>}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use els_api::ErrorBody;
use els_model::ModelError;

use crate::error::ConsumerError;

/// An error answer: its status and what the client should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The input at fault (`org`, `auth_headers[0].value`, `Authorization`...), if one is.
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// 400 naming the input at fault.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), message)
    }

    /// 404 naming the input that matched nothing.
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(field), message)
    }

    /// 503: try again shortly.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.status.canonical_reason().map(str::to_string),
            field: self.field,
            message: self.message,
            errors: Vec::new(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read whole, so the connection cannot carry another request:
            // tell the client before it sends one.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// Invalid settings: 400 naming the field.
impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::InvalidField { field, message } => Self::bad_request(&field, message),
            other => Self::new(StatusCode::BAD_REQUEST, None, other.to_string()),
        }
    }
}

/// Read-only settings 409, invalid settings 400, the local store 500, Kafka 503.
impl From<ConsumerError> for ApiError {
    fn from(e: ConsumerError) -> Self {
        let status = match &e {
            ConsumerError::ReadOnlySettings | ConsumerError::ReadOnlyTokens => StatusCode::CONFLICT,
            ConsumerError::Settings(_) => StatusCode::BAD_REQUEST,
            ConsumerError::Store(_)
            | ConsumerError::Encoding(_)
            | ConsumerError::Io(_)
            | ConsumerError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ConsumerError::SettingsTopic(_)
            | ConsumerError::AccessTopic(_)
            | ConsumerError::Changelog(_)
            | ConsumerError::Kafka(_)
            | ConsumerError::KafkaFatal(_) => {
                tracing::error!(error = %e, "admin request failed: Kafka did not take the write");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        Self::new(status, None, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_carry_reason_field_and_message() {
        let response = ApiError::bad_request("org", "must not be empty").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "Bad Request", "field": "org", "message": "must not be empty"})
        );
        let read_only = ApiError::from(ConsumerError::ReadOnlySettings);
        assert_eq!(
            (read_only.status, read_only.field),
            (StatusCode::CONFLICT, None)
        );
        let topic = ApiError::from(ConsumerError::SettingsTopic("down".into()));
        assert_eq!(topic.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
