//! The axum routes: HEC ingest, the generic endpoint, health, and the `/sim/*` query and
//! fault API. Protocol decisions live in [`crate::hec`], bookkeeping in [`crate::state`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::faults::{Faults, Injected, HANG_LIMIT};
use crate::hec::{self, Reply, Schemes};
use crate::state::{Sim, DEFAULT_EVENTS_LIMIT};

/// What every handler needs; built once per server.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) sim: Sim,
    pub(crate) tokens: HashSet<String>,
    pub(crate) max_body_bytes: usize,
    /// Cancelled when shutdown starts, so delayed and hung requests end instead of holding
    /// graceful shutdown open.
    pub(crate) shutdown: CancellationToken,
}

type Shared = State<Arc<App>>;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// HEC event endpoint: concatenated envelopes, `Splunk` auth only.
    Hec,
    /// Generic HTTPS receiver: one JSON document, `Splunk` or `Bearer` auth.
    Generic,
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/services/collector", post(hec_event))
        .route("/services/collector/event", post(hec_event))
        .route("/services/collector/event/1.0", post(hec_event))
        .route("/services/collector/health", get(health))
        .route("/services/collector/health/1.0", get(health))
        .route("/generic", post(generic))
        .route("/generic/{*rest}", post(generic))
        .route("/sim/stats", get(stats))
        .route("/sim/events", get(events))
        .route("/sim/event-ids", get(event_ids))
        .route("/sim/reset", post(reset))
        .route("/sim/faults", get(get_faults).put(put_faults))
        .fallback(not_found)
        .with_state(app)
}

async fn hec_event(State(app): Shared, req: Request) -> Response {
    ingest(&app, Kind::Hec, req).await
}

async fn generic(State(app): Shared, req: Request) -> Response {
    ingest(&app, Kind::Generic, req).await
}

async fn ingest(app: &App, kind: Kind, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let injected = app.sim.begin_request();
    let trickle = injected.as_ref().is_some_and(|i| i.trickle);
    let (reply, retry_after, events) = match handle(app, kind, req, injected).await {
        Ok(events) => (Reply::Success, None, events),
        Err((reply, retry_after)) => (reply, retry_after, 0),
    };
    let status = reply.status();
    debug!(path, status = status.as_u16(), events, "ingest request");
    let mut response = if trickle {
        trickled(app, status, reply.body().to_string().into_bytes())
    } else {
        (status, Json(reply.body())).into_response()
    };
    if let Some(value) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// An answer whose body goes out one byte per second (stops at shutdown).
fn trickled(app: &App, status: StatusCode, body: Vec<u8>) -> Response {
    let shutdown = app.shutdown.clone();
    let stream = futures::stream::unfold((body, 0usize), move |(body, i)| {
        let shutdown = shutdown.clone();
        async move {
            if i >= body.len() || shutdown.is_cancelled() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let byte = Bytes::copy_from_slice(&body[i..=i]);
            Some((Ok::<_, std::io::Error>(byte), (body, i + 1)))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

type Refusal = (Reply, Option<HeaderValue>);

/// Everything between arrival and answer; `Ok(n)` means `n` events were stored (and the 200
/// counted), `Err` is the answer to give, already counted.
async fn handle(
    app: &App,
    kind: Kind,
    req: Request,
    injected: Option<Injected>,
) -> Result<usize, Refusal> {
    let refuse = |reply: Reply, retry_after: Option<HeaderValue>| {
        app.sim.count_status(reply.status().as_u16());
        (reply, retry_after)
    };
    if let Some(injected) = injected {
        if injected.hang {
            pause(app, HANG_LIMIT).await;
            let busy = Reply::Fault {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: 9,
            };
            return Err(refuse(busy, injected.retry_after));
        }
        pause(app, injected.delay).await;
        if let Some(reply) = injected.reply {
            return Err(refuse(reply, injected.retry_after));
        }
    }
    let (parts, body) = req.into_parts();
    let raw = read_body(&parts.headers, body, app.max_body_bytes)
        .await
        .map_err(|r| refuse(r, None))?;
    let schemes = match kind {
        Kind::Hec => Schemes::Splunk,
        Kind::Generic => Schemes::SplunkOrBearer,
    };
    let header = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let token = hec::parse_authorization(header, schemes).map_err(|r| refuse(r, None))?;
    if !app.tokens.contains(token) {
        return Err(refuse(Reply::InvalidToken, None));
    }
    let encoding = parts
        .headers
        .get(CONTENT_ENCODING)
        .map(HeaderValue::as_bytes);
    let decoded =
        hec::decode_body(encoding, &raw, app.max_body_bytes).map_err(|r| refuse(r, None))?;
    let bodies = match kind {
        Kind::Hec => hec::parse_envelopes(&decoded),
        Kind::Generic => hec::parse_document(&decoded).map(|doc| vec![doc]),
    }
    .map_err(|r| refuse(r, None))?;
    if let Some(marker) = app.sim.faults().reject_containing.filter(|m| !m.is_empty()) {
        if let Some(index) = bodies.iter().position(|b| b.to_string().contains(&marker)) {
            return Err(refuse(
                Reply::InvalidDataFormat { index: Some(index) },
                None,
            ));
        }
    }
    let count = bodies.len();
    app.sim
        .accept(parts.uri.path(), &redacted_headers(&parts.headers), bodies);
    Ok(count)
}

/// Sleep, but stop early when the server shuts down (hyper may also drop the request
/// future earlier when it notices the client hung up).
async fn pause(app: &App, duration: Duration) {
    if duration.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = app.shutdown.cancelled() => {}
    }
}

/// Read the body, refusing more than `max` bytes (by `Content-Length` up front, then as it
/// streams in).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, Reply> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(Reply::TooLarge);
    }
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Reply::InvalidDataFormat { index: None })?;
        if out.len() + chunk.len() > max {
            return Err(Reply::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Request headers as stored in records, with the credential replaced.
fn redacted_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = if name == AUTHORIZATION {
            "<redacted>".into()
        } else {
            String::from_utf8_lossy(value.as_bytes())
        };
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

async fn health(State(app): Shared) -> Response {
    let reply = if app.sim.is_unhealthy() {
        Reply::Unhealthy
    } else {
        Reply::Healthy
    };
    (reply.status(), Json(reply.body())).into_response()
}

async fn stats(State(app): Shared) -> Response {
    Json(app.sim.stats()).into_response()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    after: Option<u64>,
}

async fn events(State(app): Shared, Query(q): Query<EventsQuery>) -> Response {
    let records = app.sim.events(
        q.after.unwrap_or(0),
        q.limit.unwrap_or(DEFAULT_EVENTS_LIMIT),
    );
    Json(records).into_response()
}

async fn event_ids(State(app): Shared) -> Response {
    Json(app.sim.event_ids()).into_response()
}

async fn reset(State(app): Shared) -> Response {
    app.sim.reset();
    debug!("state reset");
    Json(json!({"text": "Reset"})).into_response()
}

async fn get_faults(State(app): Shared) -> Response {
    Json(app.sim.faults()).into_response()
}

async fn put_faults(State(app): Shared, body: Bytes) -> Response {
    let bad_request =
        |error: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(e) => return bad_request(format!("invalid faults: {e}")),
    };
    if let Err(e) = app.sim.set_faults(faults.clone()) {
        return bad_request(e.to_string());
    }
    debug!(?faults, "faults set");
    Json(faults).into_response()
}

async fn not_found() -> Response {
    let body: Value =
        json!({"text": "The requested URL was not found on this server.", "code": 404});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_redacted_and_repeated_headers_joined() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Splunk secret"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let got = redacted_headers(&h);
        assert_eq!(got["authorization"], "<redacted>");
        assert_eq!(got["x-a"], "1, 2");
        assert!(!format!("{got:?}").contains("secret"));
    }
}
