//! The axum routes: HEC ingest, the generic endpoint, health, and the `/sim/*` query and
//! fault API. Protocol decisions live in [`crate::hec`], bookkeeping in [`crate::state`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use std::time::Instant;

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

use crate::elastic::{self, ItemFaults};
use crate::faults::{Faults, Injected, HANG_LIMIT};
use crate::hec::{self, Reply, Schemes};
use crate::http_formats::{self, BatchError};
use crate::oauth::{self, TokenCheck};
use crate::state::{self, OAuthCount, Receiver, Sim, DEFAULT_EVENTS_LIMIT};
use crate::{datadog, logs_ingestion};

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
    pub(crate) batch_max_events: usize,
    pub(crate) batch_max_bytes: usize,
    pub(crate) es_max_content_length: usize,
    pub(crate) oauth_clients: Vec<oauth::Client>,
    pub(crate) oauth_ttl: Duration,
    /// Access tokens issued by the token endpoint; kept across `/sim/reset`, as an identity
    /// provider does not forget tokens when a SIEM's data is cleared.
    pub(crate) oauth_tokens: Mutex<oauth::TokenStore>,
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

impl Kind {
    fn receiver(self) -> Receiver {
        match self {
            Kind::Hec => Receiver::Hec,
            Kind::Generic => Receiver::Generic,
        }
    }
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
        .route("/http/ndjson", post(http_ndjson))
        .route("/http/array", post(http_array))
        // Elasticsearch takes `_bulk` by POST or PUT (the Python client sends PUT).
        .route("/_bulk", post(es_bulk).put(es_bulk))
        .route("/{name}/_bulk", post(es_bulk_index).put(es_bulk_index))
        .route("/api/v2/logs", post(datadog_logs))
        .route("/{name}/oauth2/v2.0/token", post(token_v2))
        .route("/{name}/oauth2/token", post(token_v1))
        .route("/oauth2/v2.0/token", post(token_v2))
        .route("/oauth2/token", post(token_v1))
        .route(
            "/dataCollectionRules/{dcr}/streams/{stream}",
            post(logs_ingestion_handler),
        )
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
    let injected = app.sim.begin_request(kind.receiver());
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
        app.sim
            .count_status(kind.receiver(), reply.status().as_u16());
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
            app.sim.accept_partial(
                kind.receiver(),
                parts.uri.path(),
                &redacted_headers(&parts.headers),
                bodies,
            );
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
    app.sim.accept(
        kind.receiver(),
        parts.uri.path(),
        &redacted_headers(&parts.headers),
        bodies,
    );
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

// ---------------------------------------------------------------------------------------
// Receivers beyond HEC: batched generic HTTP, Elasticsearch `_bulk`, Datadog logs, the OAuth2
// token endpoint and the Logs Ingestion API. Protocol decisions live in their modules; here
// is the glue: faults, body reading, auth, storing and counting.

/// A receiver's answer before it becomes a response.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// JSON body; `None` answers an empty body.
    body: Option<Value>,
    headers: Vec<(&'static str, HeaderValue)>,
    /// The status was already counted together with the stored events.
    counted: bool,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Some(body),
            headers: Vec::new(),
            counted: false,
        }
    }

    fn empty(status: u16) -> Self {
        Answer {
            body: None,
            ..Answer::json(status, Value::Null)
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    fn counted(mut self) -> Self {
        self.counted = true;
        self
    }
}

/// Run one ingest request of `receiver`: count it, apply the global request faults (with
/// `fault_body` shaping a fault answer as that destination would), else `work`; count the
/// answer unless `work` did, and build the response (trickled if asked).
async fn receive<Fut>(
    app: &App,
    receiver: Receiver,
    fault_body: fn(u16) -> Value,
    work: impl FnOnce() -> Fut,
) -> Response
where
    Fut: std::future::Future<Output = Answer>,
{
    let injected = app.sim.begin_request(receiver);
    let trickle = injected.as_ref().is_some_and(|i| i.trickle);
    let fault = |status: u16, retry_after: Option<HeaderValue>| {
        let mut answer = Answer::json(status, fault_body(status));
        if let Some(value) = retry_after {
            answer.headers.push(("retry-after", value));
        }
        answer
    };
    let answer = match injected {
        Some(injected) if injected.hang => {
            pause(app, HANG_LIMIT).await;
            fault(503, injected.retry_after)
        }
        Some(injected) => {
            pause(app, injected.delay).await;
            match injected.reply {
                Some(reply) => fault(reply.status().as_u16(), injected.retry_after),
                None => work().await,
            }
        }
        None => work().await,
    };
    if !answer.counted {
        app.sim.count_status(receiver, answer.status.as_u16());
    }
    debug!(
        receiver = receiver.name(),
        status = answer.status.as_u16(),
        "ingest request"
    );
    respond(app, answer, trickle)
}

fn respond(app: &App, answer: Answer, trickle: bool) -> Response {
    let mut response = match answer.body {
        Some(body) if trickle => trickled(app, answer.status, body.to_string().into_bytes()),
        Some(body) => (answer.status, Json(body)).into_response(),
        None => answer.status.into_response(),
    };
    for (name, value) in answer.headers {
        response.headers_mut().append(name, value);
    }
    if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
        // A 413 may be given before the whole body was read: close the connection, so the
        // client does not send its next request on a connection about to close.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// Read and decode (gzip) a body of at most `max` bytes, compressed and decompressed alike.
/// `Err` is the HTTP status: 413 too large, 415 unknown encoding, 400 broken body or gzip.
async fn read_decoded(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, u16> {
    let status = |reply: Reply| match reply {
        Reply::TooLarge | Reply::ContentLengthTooLarge { .. } => 413,
        Reply::UnsupportedEncoding => 415,
        _ => 400,
    };
    let raw = read_body(headers, body, max, None).await.map_err(status)?;
    let encoding = headers.get(CONTENT_ENCODING).map(HeaderValue::as_bytes);
    hec::decode_body(encoding, &raw, max).map_err(status)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// Check an OAuth2 access token issued by the token endpoint, counting expired and
    /// unknown ones.
    fn check_oauth(&self, token: &str, count_unknown: bool) -> TokenCheck {
        let check = lock(&self.oauth_tokens).check(token, Instant::now());
        match check {
            TokenCheck::Expired => self.sim.count_oauth(OAuthCount::Expired),
            TokenCheck::Unknown if count_unknown => self.sim.count_oauth(OAuthCount::Unknown),
            _ => {}
        }
        check
    }
}

/// The 401 for an expired or unknown OAuth2 bearer token (RFC 6750 §3).
fn invalid_token(check: TokenCheck, body: Value) -> Answer {
    Answer::json(401, body).header("www-authenticate", oauth::invalid_token_challenge(check))
}

#[derive(Debug, Clone, Copy)]
enum BatchFormat {
    Ndjson,
    Array,
}

async fn http_ndjson(State(app): Shared, req: Request) -> Response {
    receive(&app, Receiver::HttpNdjson, hec_fault_body, || {
        http_batch(&app, req, BatchFormat::Ndjson)
    })
    .await
}

async fn http_array(State(app): Shared, req: Request) -> Response {
    receive(&app, Receiver::HttpArray, hec_fault_body, || {
        http_batch(&app, req, BatchFormat::Array)
    })
    .await
}

/// Fault bodies of the generic endpoints are HEC's, as `/generic` answers them.
fn hec_fault_body(status: u16) -> Value {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Reply::Fault {
        status,
        code: hec::fault_code(status),
    }
    .body()
}

/// `POST /http/ndjson` and `/http/array`: auth as `/generic` (`Bearer` or `Splunk` with a
/// configured token) or an OAuth2 access token from the token endpoint; caps on events and
/// bytes (413 naming the cap); a bad line or element is 400 naming it; all or nothing.
async fn http_batch(app: &App, req: Request, format: BatchFormat) -> Answer {
    let receiver = match format {
        BatchFormat::Ndjson => Receiver::HttpNdjson,
        BatchFormat::Array => Receiver::HttpArray,
    };
    let (parts, body) = req.into_parts();
    let max_bytes = app.batch_max_bytes;
    let batch_error = |e: BatchError| Answer::json(e.status(), e.body());
    let raw = match read_body(&parts.headers, body, max_bytes, None).await {
        Ok(raw) => raw,
        Err(Reply::TooLarge) => return batch_error(BatchError::TooLarge { max: max_bytes }),
        Err(reply) => return Answer::json(reply.status().as_u16(), reply.body()),
    };
    let header = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let token = match hec::parse_authorization(header, Schemes::SplunkOrBearer) {
        Ok(token) => token,
        Err(reply) => return Answer::json(reply.status().as_u16(), reply.body()),
    };
    if !app.tokens.contains(token) {
        match app.check_oauth(token, false) {
            TokenCheck::Valid => {}
            TokenCheck::Expired => {
                return invalid_token(
                    TokenCheck::Expired,
                    json!({"error": "invalid_token", "error_description": "The access token expired"}),
                )
            }
            TokenCheck::Unknown => {
                let reply = Reply::InvalidToken;
                return Answer::json(reply.status().as_u16(), reply.body());
            }
        }
    }
    let encoding = parts
        .headers
        .get(CONTENT_ENCODING)
        .map(HeaderValue::as_bytes);
    let decoded = match hec::decode_body(encoding, &raw, max_bytes) {
        Ok(decoded) => decoded,
        Err(Reply::TooLarge) => return batch_error(BatchError::TooLarge { max: max_bytes }),
        Err(reply) => return Answer::json(reply.status().as_u16(), reply.body()),
    };
    let parsed = match format {
        BatchFormat::Ndjson => http_formats::parse_ndjson(&decoded, app.batch_max_events),
        BatchFormat::Array => http_formats::parse_array(&decoded, app.batch_max_events),
    };
    let events = match parsed {
        Ok(events) => events,
        Err(e) => return batch_error(e),
    };
    let faults = app.sim.faults();
    if let Some(marker) = faults
        .reject_containing
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        if let Some(index) = http_formats::first_containing(&events, marker) {
            return Answer::json(
                400,
                json!({
                    "error": format!("event {index} cannot be indexed"),
                    "index": index,
                }),
            );
        }
    }
    let count = events.len();
    app.sim.accept_items(
        receiver,
        parts.uri.path(),
        &redacted_headers(&parts.headers),
        events.into_iter().map(|e| (e, None)).collect(),
        state::Answer {
            status: 200,
            ..state::Answer::default()
        },
    );
    Answer::json(200, json!({ "accepted": count })).counted()
}

async fn es_bulk(State(app): Shared, req: Request) -> Response {
    es_receive(&app, req, None).await
}

async fn es_bulk_index(
    State(app): Shared,
    axum::extract::Path(index): axum::extract::Path<String>,
    req: Request,
) -> Response {
    es_receive(&app, req, Some(index)).await
}

async fn es_receive(app: &App, req: Request, index: Option<String>) -> Response {
    let mut response = receive(app, Receiver::ElasticBulk, elastic::fault_body, || {
        bulk(app, req, index)
    })
    .await;
    let (name, value) = elastic::PRODUCT_HEADER;
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

/// `POST /_bulk`, `POST /{index}/_bulk`: see [`crate::elastic`].
async fn bulk(app: &App, req: Request, default_index: Option<String>) -> Answer {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let max = app.es_max_content_length;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Elasticsearch refuses an oversized body before anything else, with an empty 413.
    if declared.is_some_and(|len| len > max as u64) {
        return Answer::empty(413);
    }
    let auth = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = elastic::authenticate(auth, |t| app.tokens.contains(t)) {
        let mut answer = Answer::json(401, e.body(&path));
        for challenge in elastic::AUTH_CHALLENGES {
            answer = answer.header("www-authenticate", challenge);
        }
        return answer;
    }
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(body) = elastic::check_content_type(content_type) {
        return Answer::json(406, body);
    }
    let decoded = match read_decoded(&parts.headers, body, max).await {
        Ok(decoded) => decoded,
        Err(413) => return Answer::empty(413),
        Err(status) => {
            let reason = if status == 415 {
                "unsupported Content-Encoding"
            } else {
                "the request body could not be read"
            };
            return Answer::json(400, elastic::error_body(400, "parse_exception", reason));
        }
    };
    let ops = match elastic::parse_bulk(&decoded, default_index.as_deref()) {
        Ok(ops) => ops,
        Err(e) => return Answer::json(e.status, e.body()),
    };
    let rejected = app.sim.take_bulk_rejections(ops.len());
    let faults = app.sim.faults();
    let item_faults = ItemFaults {
        mapping_error_ids: &faults.mapping_error_ids,
        long_fields: &faults.mapping_long_fields,
    };
    let mut outcome = {
        let mut docs = app.sim.es_docs();
        elastic::apply(ops, &mut docs, item_faults, &rejected)
    };
    outcome.body["took"] = json!(started.elapsed().as_millis() as u64);
    app.sim.accept_items(
        Receiver::ElasticBulk,
        &path,
        &redacted_headers(&parts.headers),
        outcome.stored,
        state::Answer {
            status: 200,
            item_statuses: outcome.item_statuses,
            truncated: 0,
        },
    );
    Answer::json(200, outcome.body).counted()
}

fn datadog_fault_body(status: u16) -> Value {
    datadog::error_body(datadog::status_text(status))
}

async fn datadog_logs(State(app): Shared, req: Request) -> Response {
    receive(&app, Receiver::DatadogLogs, datadog_fault_body, || {
        datadog_intake(&app, req)
    })
    .await
}

/// `POST /api/v2/logs`: see [`crate::datadog`].
async fn datadog_intake(app: &App, req: Request) -> Answer {
    let (parts, body) = req.into_parts();
    let key = parts
        .headers
        .get("dd-api-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .or_else(|| {
            parts.uri.query().and_then(|q| {
                oauth::parse_form(q.as_bytes())?
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("dd-api-key"))
                    .map(|(_, v)| v)
            })
        });
    match key {
        None => return Answer::json(401, datadog_fault_body(401)),
        Some(key) if !app.tokens.contains(&key) => {
            return Answer::json(403, datadog_fault_body(403))
        }
        Some(_) => {}
    }
    let decoded = match read_decoded(&parts.headers, body, datadog::MAX_PAYLOAD_BYTES).await {
        Ok(decoded) => decoded,
        Err(413) => {
            return Answer::json(
                413,
                datadog::LogsError::TooLarge(format!(
                    "payload is more than {} bytes uncompressed",
                    datadog::MAX_PAYLOAD_BYTES
                ))
                .body(),
            )
        }
        Err(status) => return Answer::json(400, datadog_fault_body(status.min(400))),
    };
    let logs = match datadog::parse_logs(&decoded) {
        Ok(logs) => logs,
        Err(e) => return Answer::json(e.status(), e.body()),
    };
    let items = logs
        .entries
        .into_iter()
        .map(|entry| {
            let id = datadog::event_id(&entry);
            (entry, id)
        })
        .collect();
    app.sim.accept_items(
        Receiver::DatadogLogs,
        parts.uri.path(),
        &redacted_headers(&parts.headers),
        items,
        state::Answer {
            status: 202,
            item_statuses: BTreeMap::new(),
            truncated: logs.truncated,
        },
    );
    Answer::json(202, json!({})).counted()
}

async fn token_v2(State(app): Shared, req: Request) -> Response {
    token(&app, req, oauth::Endpoint::V2).await
}

async fn token_v1(State(app): Shared, req: Request) -> Response {
    token(&app, req, oauth::Endpoint::V1).await
}

/// The OAuth2 token endpoint (client credentials); not subject to injected faults. Never
/// logs secrets or tokens.
async fn token(app: &App, req: Request, endpoint: oauth::Endpoint) -> Response {
    let (parts, body) = req.into_parts();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let basic = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_form = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    let result = if is_form {
        match read_body(&parts.headers, body, 64 * 1024, None).await {
            Ok(raw) => oauth::authenticate(&raw, basic.as_deref(), endpoint, &app.oauth_clients),
            Err(_) => Err(oauth::TokenError::InvalidRequest(
                "The request body is too large.",
            )),
        }
    } else {
        Err(oauth::TokenError::InvalidRequest(
            "The request body must be application/x-www-form-urlencoded.",
        ))
    };
    let answer = match result {
        Ok(client_id) => {
            let access_token = lock(&app.oauth_tokens).issue(Instant::now(), app.oauth_ttl);
            app.sim.count_oauth(OAuthCount::Issued);
            debug!(
                client_id,
                ttl_secs = app.oauth_ttl.as_secs(),
                "token issued"
            );
            Answer::json(200, oauth::token_body(&access_token, app.oauth_ttl))
        }
        Err(e) => {
            app.sim.count_oauth(OAuthCount::TokenError);
            debug!(error = e.code(), "token refused");
            let mut answer = Answer::json(e.status(), e.body(&timestamp));
            if e == oauth::TokenError::InvalidClient && basic.is_some() {
                // RFC 6749 §5.2: a client that tried the Authorization header gets the scheme.
                answer = answer.header("www-authenticate", "Basic realm=\"siem-sim\"");
            }
            answer
        }
    };
    app.sim
        .count_side_request(Receiver::OAuthToken, answer.status.as_u16());
    respond(
        app,
        answer
            .header("cache-control", "no-store")
            .header("pragma", "no-cache"),
        false,
    )
}

async fn logs_ingestion_handler(State(app): Shared, req: Request) -> Response {
    receive(
        &app,
        Receiver::LogsIngestion,
        logs_ingestion::fault_body,
        || logs_ingestion_upload(&app, req),
    )
    .await
}

/// `POST /dataCollectionRules/{dcr}/streams/{stream}`: see [`crate::logs_ingestion`]. Only
/// OAuth2 access tokens from the token endpoint are accepted.
async fn logs_ingestion_upload(app: &App, req: Request) -> Answer {
    let (parts, body) = req.into_parts();
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = bearer else {
        return Answer::json(
            401,
            logs_ingestion::error_body(
                "InvalidAuthenticationToken",
                "An Authorization header with a Bearer access token is required.",
            ),
        )
        .header("www-authenticate", "Bearer");
    };
    match app.check_oauth(&token, true) {
        TokenCheck::Valid => {}
        check => {
            let message = if check == TokenCheck::Expired {
                "The access token expired."
            } else {
                "The access token is invalid."
            };
            return invalid_token(
                check,
                logs_ingestion::error_body("InvalidAuthenticationToken", message),
            );
        }
    }
    if let Err(body) = logs_ingestion::check_api_version(parts.uri.query()) {
        return Answer::json(400, body);
    }
    let decoded = match read_decoded(&parts.headers, body, logs_ingestion::MAX_BODY_BYTES).await {
        Ok(decoded) => decoded,
        Err(413) => {
            return Answer::json(
                413,
                logs_ingestion::error_body(
                    "ContentLengthLimitExceeded",
                    "The request body is larger than 1 MB.",
                ),
            )
        }
        Err(_) => {
            return Answer::json(
                400,
                logs_ingestion::error_body("InvalidRequestBody", "The body could not be read."),
            )
        }
    };
    let records = match logs_ingestion::parse_records(&decoded) {
        Ok(records) => records,
        Err(body) => return Answer::json(400, body),
    };
    app.sim.accept_items(
        Receiver::LogsIngestion,
        parts.uri.path(),
        &redacted_headers(&parts.headers),
        records.into_iter().map(|r| (r, None)).collect(),
        state::Answer {
            status: 204,
            ..state::Answer::default()
        },
    );
    Answer::empty(204).counted()
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
