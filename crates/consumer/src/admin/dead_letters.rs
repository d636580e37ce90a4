//! The dead-letter API (`elsctl dlq` is its client): list, show, purge and replay, with
//! `els_api`'s filters ([`DeadLetterQuery`]) and answers. With the state topic on, these routes
//! see and act on every instance's dead letters: replaying or purging one here tombstones it
//! for all.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use els_api::{DeadLetterList, DeadLetterQuery, DeadLetterV1, PurgeResult, Reason, ReplayResult};
use governor::{Quota, RateLimiter};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use super::{Admin, ApiError};
use crate::state::{DeadLetters, Filter};

/// The request's filters, checked, naming the one at fault.
fn to_filter(params: &DeadLetterQuery) -> Result<Filter, ApiError> {
    let time = |field: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        v.as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| ApiError::bad_request(field, format!("not an RFC 3339 time: {e}")))
            })
            .transpose()
    };
    let reason = match params.reason.as_deref() {
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
        org: params.org.clone(),
        reason,
        since: time("since", &params.since)?,
        until: time("until", &params.until)?,
        limit: params.limit,
    })
}

type FilterQuery = Result<Query<DeadLetterQuery>, QueryRejection>;

/// The query string as a dead-letter filter.
fn filter(query: FilterQuery) -> Result<Filter, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    to_filter(&params)
}

/// The complete dead-letter view and its records matching `filter`.
async fn matching<'a>(
    admin: &'a Admin,
    filter: &Filter,
) -> Result<(&'a DeadLetters, Vec<DeadLetterV1>), ApiError> {
    let dead_letters = admin.dead_letters().await?;
    let records = dead_letters.list(filter)?;
    Ok((dead_letters, records))
}

/// `records` counted by reason.
pub(crate) fn count_by_reason(records: &[DeadLetterV1]) -> BTreeMap<Reason, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.reason).or_default() += 1;
    }
    counts
}

pub async fn list(
    State(admin): State<Arc<Admin>>,
    query: FilterQuery,
) -> Result<Json<DeadLetterList>, ApiError> {
    let (dead_letters, items) = matching(&admin, &filter(query)?).await?;
    Ok(Json(DeadLetterList {
        total: dead_letters.count(),
        matched: items.len(),
        by_reason: count_by_reason(&items),
        items,
    }))
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

/// `DELETE /v1/dead-letters/{id}`: purge one record by id without reading it, so even a
/// record that cannot be read (and so matches no filter) can be removed.
pub async fn purge_one(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
) -> Result<Json<PurgeResult>, ApiError> {
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(
            "id",
            "must be a dead-letter id (a number)",
        ));
    };
    let dead_letters = admin.dead_letters().await?;
    if !dead_letters.remove(id).await? {
        return Err(ApiError::not_found("id", format!("no dead letter {id}")));
    }
    admin.count_dead_letters();
    tracing::info!(id, "dead letter purged");
    Ok(Json(PurgeResult {
        purged: 1,
        remaining: dead_letters.count(),
    }))
}

pub async fn purge(
    State(admin): State<Arc<Admin>>,
    query: FilterQuery,
) -> Result<Json<PurgeResult>, ApiError> {
    let (dead_letters, items) = matching(&admin, &filter(query)?).await?;
    let ids: Vec<u64> = items.iter().map(|r| r.id).collect();
    let (purged, failed) = dead_letters.remove_many(&ids).await;
    if let Some(e) = &failed {
        tracing::warn!(error = %e, purged, matched = ids.len(), "some dead letters could not be purged");
    }
    admin.count_dead_letters();
    tracing::info!(purged, "dead letters purged");
    Ok(Json(PurgeResult {
        purged,
        remaining: dead_letters.count(),
    }))
}

/// Re-publish matching dead letters to the events topic with their original `event_id`;
/// each record is removed only after Kafka acknowledged it. Rate-limited.
pub async fn replay(
    State(admin): State<Arc<Admin>>,
    body: Option<Json<DeadLetterQuery>>,
) -> Result<(StatusCode, Json<ReplayResult>), ApiError> {
    let params = body.map(|Json(b)| b).unwrap_or_default();
    let (dead_letters, items) = matching(&admin, &to_filter(&params)?).await?;
    let rate = NonZeroU32::new(params.rate.unwrap_or(500)).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(rate));
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
        Json(ReplayResult {
            matched: items.len(),
            replayed,
            failed,
            last_error,
            remaining: dead_letters.count(),
        }),
    ))
}
