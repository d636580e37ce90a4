//! The dead-letter API (`elsctl dlq` is its client): list, show, purge and replay. With the
//! state topic on, these routes see and act on every instance's dead letters: replaying or
//! purging one here tombstones it for all.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, ApiError};
use crate::state::{DeadLetterV1, Filter, Reason};

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
    fn to_filter(&self) -> Result<Filter, ApiError> {
        let time = |field: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
            v.as_deref()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            ApiError::bad_request(field, format!("not an RFC 3339 time: {e}"))
                        })
                })
                .transpose()
        };
        let reason = match self.reason.as_deref() {
            None => None,
            Some(r) => Some(Reason::parse(r).ok_or_else(|| {
                let all: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                ApiError::bad_request(
                    "reason",
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

type FilterQuery = Result<Query<FilterParams>, QueryRejection>;

/// The query string as a dead-letter filter.
fn filter(query: FilterQuery) -> Result<Filter, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("query", e.body_text()))?
        .to_filter()
}

pub async fn list(
    State(admin): State<Arc<Admin>>,
    query: FilterQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = filter(query)?;
    let dead_letters = admin.dead_letters().await?;
    let items = dead_letters.list(&filter)?;
    let mut by_reason: HashMap<&str, usize> = HashMap::new();
    for r in &items {
        *by_reason.entry(r.reason.as_str()).or_default() += 1;
    }
    Ok(Json(
        json!({"total": dead_letters.count(), "matched": items.len(), "by_reason": by_reason, "items": items}),
    ))
}

pub async fn show(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterV1>, ApiError> {
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(
            "id",
            "must be a dead-letter id (a number)",
        ));
    };
    match admin.dead_letters().await?.get(id)? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::not_found("id", format!("no dead letter {id}"))),
    }
}

pub async fn purge(
    State(admin): State<Arc<Admin>>,
    query: FilterQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = filter(query)?;
    let dead_letters = admin.dead_letters().await?;
    let items = dead_letters.list(&filter)?;
    let ids: Vec<u64> = items.iter().map(|r| r.id).collect();
    let (purged, failed) = dead_letters.remove_many(&ids).await;
    if let Some(e) = &failed {
        tracing::warn!(error = %e, purged, matched = ids.len(), "some dead letters could not be purged");
    }
    admin.count_dead_letters();
    tracing::info!(purged, "dead letters purged");
    Ok(Json(
        json!({"purged": purged, "remaining": dead_letters.count()}),
    ))
}

/// Re-publish matching dead letters to the events topic with their original `event_id`;
/// each record is removed only after Kafka acknowledged it. Rate-limited.
pub async fn replay(
    State(admin): State<Arc<Admin>>,
    body: Option<Json<FilterParams>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let params = body.map(|Json(b)| b).unwrap_or_default();
    let filter = params.to_filter()?;
    let dead_letters = admin.dead_letters().await?;
    let rate = NonZeroU32::new(params.rate.unwrap_or(500)).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(rate));
    let items = dead_letters.list(&filter)?;
    let (producer, topic) = admin.replay_producer();
    let (mut replayed, mut failed) = (0usize, 0usize);
    let mut last_error = None;
    for (i, record) in items.iter().enumerate() {
        limiter.until_ready().await;
        let payload = serde_json::to_vec(&record.event).unwrap_or_default();
        let send = producer.send(
            FutureRecord::to(topic)
                .key(record.org_id.as_bytes())
                .payload(&payload),
            Timeout::After(Duration::from_secs(15)),
        );
        match send.await {
            Ok(_) => match dead_letters.remove(record.id).await {
                Ok(_) => {
                    replayed += 1;
                    admin.metrics().replayed.inc();
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
    admin.count_dead_letters();
    tracing::info!(replayed, failed, "replay finished");
    let status = if failed == 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((
        status,
        Json(
            json!({"matched": items.len(), "replayed": replayed, "failed": failed, "last_error": last_error, "remaining": dead_letters.count()}),
        ),
    ))
}
