//! The ingest API: `POST /v1/events`, `/healthz`, `/readyz`, `/metrics`.
//!
//! Answers: 202 once Kafka acknowledged every event; 400 for bad input (malformed JSON,
//! a repeated key, an invalid field, a body that was cut off or badly chunked); 408 when the
//! body does not arrive within `body_read_timeout_ms`; 413 for a body over `max_body_bytes`
//! or an event whose topic record would exceed `message.max.bytes`; 415 for other content
//! types; 503 (with `Retry-After`) when Kafka did not acknowledge. Every error body is an
//! [`ErrorBody`] naming the field.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use els_model::ingest::{parse_batch, BodyFormat};
use els_model::ModelError;
use futures::StreamExt;
use serde::Serialize;

use crate::config::Config;
use crate::error::ProducerError;
use crate::kafka::EventProducer;
use crate::metrics::Metrics;

/// Shared state of the API handlers.
pub struct AppState {
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub max_events: usize,
    /// How long a request's body may take to arrive, once its headers have.
    pub body_read_timeout: Duration,
}

impl AppState {
    pub fn new(config: &Config, producer: EventProducer, metrics: Metrics) -> Self {
        Self {
            producer,
            metrics,
            max_body_bytes: config.max_body_bytes,
            max_events: config.max_events_per_request,
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
        }
    }
}

/// Every route: method, path, handler (the OpenAPI document, [`crate::openapi`], is built
/// from this list).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (Method::POST, "/v1/events", post(ingest)),
        (Method::GET, "/healthz", get(|| async { "ok" })),
        (Method::GET, "/readyz", get(ready)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/openapi.json", get(crate::openapi::serve)),
    ]
}

pub fn router(state: Arc<AppState>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, endpoint)| {
            router.route(path, endpoint)
        })
        .with_state(state)
}

/// `202` answer: how many events Kafka acknowledged and their ids, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub accepted: usize,
    pub event_ids: Vec<String>,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = IngestError)]
pub struct ErrorBody<'a> {
    /// What went wrong, one word: `malformed_json`, `duplicate_key`, `event_too_large`, ...
    pub error: &'a str,
    /// The field, as a JSON path (`events[3].org_id`), or `body`, or a header name.
    pub field: Option<&'a str>,
    pub message: String,
    /// For `event_too_large`: the largest event JSON accepted, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<usize>,
    /// For `event_too_large`: the refused event's size as JSON, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<usize>,
}

fn error(status: StatusCode, kind: &str, field: Option<&str>, message: String) -> Response {
    let body = ErrorBody {
        error: kind,
        field,
        message,
        limit_bytes: None,
        size_bytes: None,
    };
    (status, Json(body)).into_response()
}

/// After a body that was not read whole the connection cannot carry another request (hyper
/// closes it); say so to the client, so that it does not send its next request on a
/// connection about to close.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
    // Every answer given before the body is read whole closes the connection: the unread rest
    // of the body would otherwise be taken for the next request on a kept-alive connection.
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return closing(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            Some("Content-Type"),
            format!(
                "Content-Type `{content_type}` is not supported; use application/json or application/x-ndjson"
            ),
        ));
    };
    let too_large = || {
        closing(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("body"),
            format!("the body exceeds {} bytes", state.max_body_bytes),
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large();
    }
    let bytes = match read_body(
        request.into_body(),
        state.max_body_bytes,
        state.body_read_timeout,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::TimedOut) => {
            return closing(error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                Some("body"),
                format!(
                    "the body did not arrive within {} ms",
                    state.body_read_timeout.as_millis()
                ),
            ))
        }
        Err(BodyError::Unreadable(e)) => {
            return closing(error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                Some("body"),
                format!("the body could not be read (cut off, or badly chunked): {e}"),
            ))
        }
    };
    let batch = match parse_batch(&bytes, format, state.max_events) {
        Ok(batch) => batch,
        Err(e) => return invalid(e),
    };
    let records = match state.producer.encode(&batch.events) {
        Ok(records) => records,
        Err(ProducerError::EventTooLarge { index, size, limit }) => {
            let field = batch.event_field(index);
            let body = ErrorBody {
                error: "event_too_large",
                field: Some(&field),
                message: format!(
                    "the event is {size} bytes as JSON; an event may be at most {limit} bytes \
                     (the producer's message.max.bytes minus the Kafka record overhead and key)"
                ),
                limit_bytes: Some(limit),
                size_bytes: Some(size),
            };
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "could not encode validated events");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                None,
                e.to_string(),
            );
        }
    };
    let events = &batch.events;
    state.metrics.events_received.inc_by(events.len() as u64);
    let unknown = events.iter().filter(|e| !e.event_type.is_known()).count();
    state.metrics.unknown_event_types.inc_by(unknown as u64);
    match state.producer.send(&records).await {
        Ok(()) => {
            state.metrics.events_produced.inc_by(events.len() as u64);
            let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
            (
                StatusCode::ACCEPTED,
                Json(Accepted {
                    accepted: ids.len(),
                    event_ids: ids,
                }),
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
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Why a body was not read.
#[derive(Debug)]
enum BodyError {
    /// Over the size limit.
    TooLarge,
    /// Not whole within the deadline.
    TimedOut,
    /// The connection broke mid-body, or the chunked framing is invalid.
    Unreadable(axum::Error),
}

/// Read a whole body of at most `limit` bytes within `deadline`.
async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut chunks = body.into_data_stream();
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(BodyError::Unreadable)?;
            if out.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

fn invalid(e: ModelError) -> Response {
    let kind = match &e {
        ModelError::MalformedJson { .. } => "malformed_json",
        ModelError::InvalidField { .. } => "invalid_field",
        ModelError::DuplicateKey { .. } => "duplicate_key",
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn state(message_max_bytes: usize) -> AppState {
        // No broker: every request here is answered before Kafka is asked.
        let producer = EventProducer::new(
            "127.0.0.1:9",
            "t",
            Duration::from_millis(100),
            message_max_bytes,
        )
        .unwrap();
        AppState::new(&Config::default(), producer, Metrics::new())
    }

    fn post(body: impl Into<Body>) -> Request {
        Request::builder()
            .method("POST")
            .uri("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap()
    }

    async fn answer(state: &AppState, request: Request) -> (StatusCode, serde_json::Value) {
        let response = handle_ingest(state, request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn event(pad: usize) -> serde_json::Value {
        let mut e = crate::generate::demo_events(1, 1, 5).remove(0);
        e["pad"] = "x".repeat(pad).into();
        e
    }

    #[tokio::test]
    async fn broken_bodies_are_400_and_slow_ones_408() {
        let state = state(1_000_000);
        let broken = futures::stream::iter([
            Ok(Bytes::from_static(b"{\"a\":")),
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cut off",
            )),
        ]);
        let (status, body) = answer(&state, post(Body::from_stream(broken))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "unreadable_body");
        assert_eq!(body["field"], "body");

        let state = AppState {
            body_read_timeout: Duration::from_millis(100),
            ..state
        };
        let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let response = handle_ingest(&state, post(Body::from_stream(stalled))).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn answers_before_the_whole_body_close_the_connection() {
        let state = AppState {
            max_body_bytes: 100,
            ..state(1_000_000)
        };
        let declared = Request::builder()
            .method("POST")
            .uri("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "5000")
            .body(Body::from(vec![b' '; 5000]))
            .unwrap();
        let streamed = post(Body::from_stream(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            Bytes::from(vec![b' '; 5000]),
        )])));
        let mut plain = post("hello");
        plain
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        for (request, status) in [
            (declared, StatusCode::PAYLOAD_TOO_LARGE),
            (streamed, StatusCode::PAYLOAD_TOO_LARGE),
            (plain, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ] {
            let response = handle_ingest(&state, request).await;
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()[header::CONNECTION], "close", "{status}");
        }
        // A body read whole keeps the connection, even when its content is refused.
        let response = handle_ingest(&state, post("{")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn an_event_too_large_for_a_record_is_413_naming_it() {
        let state = state(20_000);
        let limit = state.producer.max_event_bytes();
        let big = event(limit);
        let (status, body) = answer(&state, post(serde_json::to_vec(&big).unwrap())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["error"], "event_too_large");
        assert_eq!(body["field"], "body");
        assert_eq!(body["limit_bytes"], limit);
        assert!(body["size_bytes"].as_u64().unwrap() > limit as u64);
        let batch = serde_json::json!([event(0), event(0), big]);
        let (status, body) = answer(&state, post(serde_json::to_vec(&batch).unwrap())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["field"], "events[2]");
    }

    #[tokio::test]
    async fn unknown_types_are_counted_and_malformed_ones_are_400_naming_the_field() {
        let state = state(1_000_000);
        let with_type = |t: &str| {
            let mut e = event(0);
            e["event_type"] = t.into();
            e
        };
        let mut paused = with_type("FLOW_PAUSED");
        paused["pause"] = serde_json::json!({"pause_type": "wait_for"});
        // No broker: a valid batch is counted when validated, then answered 503.
        let batch = serde_json::json!([
            paused,
            with_type("FLOW_RESUMED"),
            with_type("FLOW_RETRIED"),
            with_type("FLOW_THIRD_PARTY_RATE_LIMITED"),
        ]);
        let (status, body) = answer(&state, post(serde_json::to_vec(&batch).unwrap())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(state.metrics.events_received.get(), 4);
        assert_eq!(state.metrics.unknown_event_types.get(), 2);
        let text = state.metrics.render();
        assert!(
            text.contains("els_producer_unknown_event_types_total 2"),
            "{text}"
        );
        assert!(!text.contains("FLOW_RESUMED"), "no label per type name");

        let too_long = "F".repeat(els_model::event::MAX_EVENT_TYPE_BYTES + 1);
        for bad in ["flow_paused", "FLOW PAUSED", "", too_long.as_str()] {
            let batch = serde_json::json!([event(0), with_type(bad)]);
            let (status, body) = answer(&state, post(serde_json::to_vec(&batch).unwrap())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
            assert_eq!(body["error"], "invalid_field");
            assert_eq!(body["field"], "events[1].event_type", "{bad:?}: {body}");
        }
        assert_eq!(state.metrics.unknown_event_types.get(), 2);
    }

    #[tokio::test]
    async fn duplicate_keys_are_400_naming_the_key() {
        let state = state(1_000_000);
        let text = serde_json::to_string(&event(0)).unwrap();
        let doubled = text.replacen('{', "{\"org_id\":\"other-org\",", 1);
        let (status, body) = answer(&state, post(doubled)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "duplicate_key");
        assert_eq!(body["field"], "org_id");
    }
}
