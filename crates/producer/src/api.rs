//! The ingest API: `POST /v1/events`, `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use els_model::ingest::{parse_body, BodyFormat};
use els_model::ModelError;
use serde_json::json;

use crate::config::Config;
use crate::kafka::EventProducer;
use crate::metrics::Metrics;

/// Shared state of the API handlers.
pub struct AppState {
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub max_events: usize,
}

impl AppState {
    pub fn new(config: &Config, producer: EventProducer, metrics: Metrics) -> Self {
        Self {
            producer,
            metrics,
            max_body_bytes: config.max_body_bytes,
            max_events: config.max_events_per_request,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", post(ingest))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// A JSON error body: `{"error": kind, "field": ..., "message": ...}`.
fn error(status: StatusCode, kind: &str, field: Option<&str>, message: String) -> Response {
    (
        status,
        Json(json!({ "error": kind, "field": field, "message": message })),
    )
        .into_response()
}

async fn ingest(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let response = handle_ingest(&state, request).await;
    state
        .metrics
        .requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn handle_ingest(state: &AppState, request: Request) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            Some("Content-Type"),
            format!(
                "Content-Type `{content_type}` is not supported; use application/json or application/x-ndjson"
            ),
        );
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("body"),
            format!("the body exceeds {} bytes", state.max_body_bytes),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large();
    }
    let body: Body = request.into_body();
    let Ok(bytes) = to_bytes(body, state.max_body_bytes).await else {
        return too_large();
    };
    let events = match parse_body(&bytes, format, state.max_events) {
        Ok(events) => events,
        Err(e) => return invalid(e),
    };
    state.metrics.events_received.inc_by(events.len() as u64);
    match state.producer.send_all(&events).await {
        Ok(()) => {
            state.metrics.events_produced.inc_by(events.len() as u64);
            let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
            (
                StatusCode::ACCEPTED,
                Json(json!({ "accepted": ids.len(), "event_ids": ids })),
            )
                .into_response()
        }
        Err(e) => {
            state.metrics.produce_errors.inc_by(events.len() as u64);
            tracing::warn!(events = events.len(), error = %e, "kafka did not acknowledge; answering 503");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                format!("{e}; retry the request (events with the same event_id are de-duplicated downstream)"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

fn invalid(e: ModelError) -> Response {
    let kind = match &e {
        ModelError::MalformedJson { .. } => "malformed_json",
        ModelError::InvalidField { .. } => "invalid_field",
        ModelError::TooManyEvents { .. } => "too_many_events",
        ModelError::Empty => "empty",
    };
    error(StatusCode::BAD_REQUEST, kind, e.field_name(), e.to_string())
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.producer.ready().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "kafka unreachable or topic missing",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
