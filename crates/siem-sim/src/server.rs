//! The axum routes: HEC ingest, the generic endpoint, health, and the `/sim/*` query and
//! fault API. Protocol decisions live in [`crate::hec`], bookkeeping in [`crate::state`].

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Tokens with indexer acknowledgement enabled (also in `tokens`).
    pub(crate) ack_tokens: HashSet<String>,
    pub(crate) ack_delay: Duration,
    /// Allowed indexes per token; tokens not here may name any index.
    pub(crate) token_indexes: HashMap<String, HashSet<String>>,
    pub(crate) max_content_length: Option<usize>,
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
        .route("/services/collector/ack", post(ack))
        .route("/services/collector/ack/1.0", post(ack))
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
        Ok((events, Some(ack_id))) => (Reply::SuccessAck { ack_id }, None, events),
        Ok((events, None)) => (Reply::Success, None, events),
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

/// Everything between arrival and answer; `Ok((n, ack))` means `n` events were stored (and
/// the 200 counted), with an ack id for ack-enabled tokens; `Err` is the answer to give,
/// already counted.
async fn handle(
    app: &App,
    kind: Kind,
    req: Request,
    injected: Option<Injected>,
) -> Result<(usize, Option<u64>), Refusal> {
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
    let raw = read_body(
        &parts.headers,
        body,
        app.max_body_bytes,
        app.max_content_length,
    )
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
    let channel = match kind {
        Kind::Hec if app.ack_tokens.contains(token) => {
            Some(require_channel(app, &parts).map_err(|r| refuse(r, None))?)
        }
        _ => None,
    };
    let faults = app.sim.faults();
    let encoding = parts
        .headers
        .get(CONTENT_ENCODING)
        .map(HeaderValue::as_bytes);
    let decoded =
        hec::decode_body(encoding, &raw, app.max_body_bytes).map_err(|r| refuse(r, None))?;
    let (mut bodies, mut bad) = match kind {
        Kind::Hec => hec::parse_envelope_prefix(&decoded),
        Kind::Generic => match hec::parse_document(&decoded) {
            Ok(doc) => (vec![doc], None),
            Err(reply) => (Vec::new(), Some(reply)),
        },
    };
    if let Some(marker) = faults
        .reject_containing
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        if let Some(index) = bodies.iter().position(|b| b.to_string().contains(marker)) {
            bodies.truncate(index);
            bad = Some(Reply::InvalidDataFormat { index: Some(index) });
        }
    }
    if let Some(reply) = bad {
        // "Format events for HTTP Event Collector": with code 6 the events before
        // `invalid-event-number` have been indexed (ELS finishes them as delivered).
        if matches!(reply, Reply::InvalidDataFormat { index: Some(_) }) && !bodies.is_empty() {
            app.sim
                .accept_partial(parts.uri.path(), &redacted_headers(&parts.headers), bodies);
        }
        return Err(refuse(reply, None));
    }
    if let Some(allowed) = app.token_indexes.get(token) {
        // "Troubleshoot HTTP Event Collector": code 7 "Incorrect index" refuses the request.
        let wrong = bodies.iter().position(|b| {
            b.get("index")
                .and_then(Value::as_str)
                .is_some_and(|index| !allowed.contains(index))
        });
        if let Some(index) = wrong {
            return Err(refuse(Reply::IncorrectIndex { index }, None));
        }
    }
    let count = bodies.len();
    app.sim
        .accept(parts.uri.path(), &redacted_headers(&parts.headers), bodies);
    let ack_id = channel.map(|channel| {
        app.sim
            .issue_ack(&channel, app.ack_delay, faults.never_ack_percent)
    });
    Ok((count, ack_id))
}

/// The data channel of a request for an ack-enabled token: the `X-Splunk-Request-Channel`
/// header or the `channel` query parameter ("About HTTP Event Collector Indexer
/// Acknowledgment"); missing is code 10, not a GUID code 11 ("Troubleshoot HTTP Event
/// Collector"). Counts channel errors.
fn require_channel(app: &App, parts: &axum::http::request::Parts) -> Result<String, Reply> {
    let result = match channel_of(parts) {
        None => Err(Reply::ChannelMissing),
        Some(channel) if !hec::is_valid_channel(&channel) => Err(Reply::ChannelInvalid),
        Some(channel) => Ok(channel),
    };
    if result.is_err() {
        app.sim.count_channel_error();
    }
    result
}

fn channel_of(parts: &axum::http::request::Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(CHANNEL_HEADER) {
        return Some(String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
    }
    let query = parts.uri.query()?;
    query_channel(query)
}

/// The `channel` parameter of a query string (percent-decoding is not needed for a GUID, so a
/// percent-encoded value is kept as is and fails the GUID check, as an odd channel should).
fn query_channel(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "channel")
        .map(|(_, value)| value.to_owned())
}

const CHANNEL_HEADER: &str = "x-splunk-request-channel";

#[derive(Debug, Deserialize)]
struct AckQuery {
    acks: Vec<u64>,
}

/// `POST /services/collector/ack` ("About HTTP Event Collector Indexer Acknowledgment"):
/// body `{"acks":[0,1]}`, answer `{"acks":{"0":true,"1":false}}`; a token without ack answers
/// 400 code 14 ("Troubleshoot HTTP Event Collector"). Not subject to injected faults.
async fn ack(State(app): Shared, req: Request) -> Response {
    app.sim.count_ack_query();
    let reply = |reply: Reply| (reply.status(), Json(reply.body())).into_response();
    let (parts, body) = req.into_parts();
    let header = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let token = match hec::parse_authorization(header, Schemes::Splunk) {
        Ok(token) => token,
        Err(r) => return reply(r),
    };
    if !app.tokens.contains(token) {
        return reply(Reply::InvalidToken);
    }
    if !app.ack_tokens.contains(token) {
        return reply(Reply::AckDisabled);
    }
    let channel = match require_channel(&app, &parts) {
        Ok(channel) => channel,
        Err(r) => return reply(r),
    };
    let raw = match read_body(&parts.headers, body, app.max_body_bytes, None).await {
        Ok(raw) => raw,
        Err(r) => return reply(r),
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return reply(Reply::NoData);
    }
    let Ok(query) = serde_json::from_slice::<AckQuery>(&raw) else {
        return reply(Reply::InvalidDataFormat { index: None });
    };
    let acks = app.sim.query_acks(&channel, &query.acks);
    debug!(channel, ids = query.acks.len(), "ack query");
    Json(json!({ "acks": acks })).into_response()
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
/// streams in), and more than `max_content_length` with Splunk's 413 text.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    max_content_length: Option<usize>,
) -> Result<Vec<u8>, Reply> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(length), Some(limit)) = (declared, max_content_length) {
        if length > limit as u64 {
            return Err(Reply::ContentLengthTooLarge { length, max: limit });
        }
    }
    if declared.is_some_and(|len| len > max as u64) {
        return Err(Reply::TooLarge);
    }
    let max = max.min(max_content_length.unwrap_or(usize::MAX));
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Reply::InvalidDataFormat { index: None })?;
        if out.len() + chunk.len() > max {
            return Err(match max_content_length {
                Some(limit) if out.len() + chunk.len() > limit => Reply::ContentLengthTooLarge {
                    length: (out.len() + chunk.len()) as u64,
                    max: limit,
                },
                _ => Reply::TooLarge,
            });
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
