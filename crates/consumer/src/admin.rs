//! The consumer's admin server: `/metrics`, `/healthz`, `/readyz` for everyone, and the
//! dead-letter API behind a bearer token (`elsctl` is its client; sled is single-process).
//! With the state topic on, the dead-letter routes see and act on every instance's dead
//! letters: replaying or purging one here tombstones it for all.

// Handlers return `Result<_, Response>` so an error is the HTTP answer itself; the size of
// `Response` on that rare path does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::json;

use crate::dlq::{Filter, Reason};
use crate::pipeline::Status;

pub struct Admin {
    pub status: Arc<Status>,
    pub token: String,
    pub producer: FutureProducer,
    pub topic: String,
}

impl Admin {
    pub fn new(
        status: Arc<Status>,
        token: String,
        brokers: &str,
        topic: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "15000")
            .set("client.id", "els-consumer-replay")
            .create()?;
        Ok(Self {
            status,
            token,
            producer,
            topic: topic.to_string(),
        })
    }
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/v1/dead-letters", get(list).delete(purge))
        .route("/v1/dead-letters/replay", post(replay))
        .route("/v1/dead-letters/{id}", get(show))
        .merge(crate::settings_api::routes())
        .merge(crate::console::routes())
        .with_state(admin)
}

pub(crate) fn error(
    status: StatusCode,
    field: Option<&str>,
    message: impl Into<String>,
) -> Response {
    (
        status,
        Json(
            json!({"error": status.canonical_reason(), "field": field, "message": message.into()}),
        ),
    )
        .into_response()
}

/// Constant-time comparison of the bearer token.
pub(crate) fn authorized(admin: &Admin, headers: &HeaderMap) -> Result<(), Response> {
    if admin.token.is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            None,
            "the admin API is disabled: set ELS_ADMIN_TOKEN",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let a = given.as_bytes();
    let b = admin.token.as_bytes();
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            Some("Authorization"),
            "missing or wrong bearer token",
        ))
    }
}

/// How long the dead-letter routes wait for this instance's view of every instance's dead
/// letters to be complete (read from the state topic at start).
const VIEW_WAIT: Duration = Duration::from_secs(20);

/// Wait until the dead-letter view is complete, so no route answers from a partial list.
pub(crate) async fn view_complete(admin: &Admin) -> Result<(), Response> {
    if admin.status.shared.store.wait_synced(VIEW_WAIT).await {
        return Ok(());
    }
    Err(error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        format!(
            "dead letters of every instance are still being read from the state topic (waited \
             {} s); retry shortly",
            VIEW_WAIT.as_secs()
        ),
    ))
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let shared = &admin.status.shared;
    shared.metrics.dead_letters.set(shared.store.count() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

/// Liveness: fails once the store has refused writes for [`STORE_FAILURE_FATAL`]; sled keeps
/// I/O errors sticky, so a restart (which re-reads the unfinished events) is the way back.
async fn health(State(admin): State<Arc<Admin>>) -> Response {
    match admin.status.shared.store_failing_for() {
        Some(d) if d >= STORE_FAILURE_FATAL => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"live": false, "reason": format!("dead-letter store failing for {} s; restart after fixing the disk", d.as_secs())})),
        )
            .into_response(),
        _ => "ok".into_response(),
    }
}

/// How long a failing store is tolerated before liveness fails.
pub const STORE_FAILURE_FATAL: Duration = Duration::from_secs(30);

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    let partitions = admin.status.ownership.assigned();
    let store_ok = !admin
        .status
        .shared
        .store_failing
        .load(std::sync::atomic::Ordering::Relaxed);
    let body = Json(
        json!({"ready": admin.status.ready(), "partitions": partitions, "store_ok": store_ok}),
    );
    if admin.status.ready() {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Filters as query parameters or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    org: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    /// Replay only: events per second (default 500).
    rate: Option<u32>,
}

impl FilterParams {
    fn to_filter(&self) -> Result<Filter, Response> {
        let time = |field: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, Response> {
            v.as_deref()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            error(
                                StatusCode::BAD_REQUEST,
                                Some(field),
                                format!("not an RFC 3339 time: {e}"),
                            )
                        })
                })
                .transpose()
        };
        let reason = match self.reason.as_deref() {
            None => None,
            Some(r) => Some(Reason::parse(r).ok_or_else(|| {
                let all: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                error(
                    StatusCode::BAD_REQUEST,
                    Some("reason"),
                    format!("unknown reason `{r}`; one of {}", all.join(", ")),
                )
            })?),
        };
        Ok(Filter {
            org: self.org.clone(),
            reason,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit,
        })
    }
}

type FilterQuery = Result<Query<FilterParams>, axum::extract::rejection::QueryRejection>;

/// Check the bearer token, then turn the query string into a dead-letter filter.
fn authorized_filter(
    admin: &Admin,
    headers: &HeaderMap,
    raw: FilterQuery,
) -> Result<Filter, Response> {
    authorized(admin, headers)?;
    raw.map(|Query(q)| q)
        .map_err(|e| error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()))?
        .to_filter()
}

async fn list(State(admin): State<Arc<Admin>>, headers: HeaderMap, query: FilterQuery) -> Response {
    let filter = match authorized_filter(&admin, &headers, query) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = view_complete(&admin).await {
        return r;
    }
    let store = &admin.status.shared.store;
    match store.list(&filter) {
        Ok(items) => {
            let mut by_reason: HashMap<&str, usize> = HashMap::new();
            for r in &items {
                *by_reason.entry(r.reason.as_str()).or_default() += 1;
            }
            Json(json!({"total": store.count(), "matched": items.len(), "by_reason": by_reason, "items": items})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
    }
}

async fn show(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&admin, &headers) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("id"),
            "must be a dead-letter id (a number)",
        );
    };
    if let Err(r) = view_complete(&admin).await {
        return r;
    }
    match admin.status.shared.store.get(id) {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no dead letter {id}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
    }
}

async fn purge(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    query: FilterQuery,
) -> Response {
    let filter = match authorized_filter(&admin, &headers, query) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = view_complete(&admin).await {
        return r;
    }
    let store = &admin.status.shared.store;
    let items = match store.list(&filter) {
        Ok(items) => items,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
    };
    let ids: Vec<u64> = items.iter().map(|r| r.id).collect();
    let (purged, failed) = store.remove_many(&ids).await;
    if let Some(e) = &failed {
        tracing::warn!(error = %e, purged, matched = ids.len(), "some dead letters could not be purged");
    }
    admin
        .status
        .shared
        .metrics
        .dead_letters
        .set(store.count() as i64);
    tracing::info!(purged, "dead letters purged");
    Json(json!({"purged": purged, "remaining": store.count()})).into_response()
}

/// Re-publish matching dead letters to the events topic with their original `event_id`;
/// each record is removed only after Kafka acknowledged it. Rate-limited.
async fn replay(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    body: Option<Json<FilterParams>>,
) -> Response {
    if let Err(r) = authorized(&admin, &headers) {
        return r;
    }
    let params = body.map(|Json(b)| b).unwrap_or_default();
    let filter = match params.to_filter() {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = view_complete(&admin).await {
        return r;
    }
    let rate = NonZeroU32::new(params.rate.unwrap_or(500)).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(rate));
    let shared = &admin.status.shared;
    let items = match shared.store.list(&filter) {
        Ok(items) => items,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
    };
    let (mut replayed, mut failed) = (0usize, 0usize);
    let mut last_error = None;
    for (i, record) in items.iter().enumerate() {
        limiter.until_ready().await;
        let payload = serde_json::to_vec(&record.event).unwrap_or_default();
        let send = admin.producer.send(
            FutureRecord::to(&admin.topic)
                .key(record.org_id.as_bytes())
                .payload(&payload),
            Timeout::After(Duration::from_secs(15)),
        );
        match send.await {
            Ok(_) => match shared.store.remove(record.id).await {
                Ok(_) => {
                    replayed += 1;
                    shared.metrics.replayed.inc();
                }
                Err(e) => {
                    failed += 1;
                    last_error = Some(e.to_string());
                }
            },
            Err((e, _)) => {
                failed += 1;
                last_error = Some(e.to_string());
            }
        }
        if (i + 1) % 1000 == 0 {
            tracing::info!(replayed, failed, total = items.len(), "replay progress");
        }
    }
    shared.metrics.dead_letters.set(shared.store.count() as i64);
    tracing::info!(replayed, failed, "replay finished");
    let status = if failed == 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    (status, Json(json!({"matched": items.len(), "replayed": replayed, "failed": failed, "last_error": last_error, "remaining": shared.store.count()}))).into_response()
}
