//! The dead-letter API (`elsctl dlq` is its client): list, show, purge and replay, with
//! `els_api`'s filters ([`DeadLetterQuery`]) and answers. With the state topic on, these routes
//! see and act on every instance's dead letters: replaying or purging one here tombstones it
//! for all.
//!
//! Scope: a token limited to some orgs sees and acts on only their dead letters. The auth
//! layer refuses an `org=` filter outside them; here lists, purges and replays keep only
//! covered records (and `total` counts only those), and an id of another org's dead letter
//! answers 404 as if it did not exist.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use els_api::{DeadLetterList, DeadLetterQuery, DeadLetterV1, PurgeResult, Reason, ReplayResult};
use governor::{Quota, RateLimiter};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use super::auth::AuditNote;
use super::{Admin, ApiError};
use crate::access::Principal;
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
        stream: params.stream.clone(),
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

/// The complete dead-letter view, its records matching `filter` that `who` may see, and
/// how many records `who` may see in all.
async fn matching<'a>(
    admin: &'a Admin,
    who: &Principal,
    filter: &Filter,
) -> Result<(&'a DeadLetters, Vec<DeadLetterV1>, usize), ApiError> {
    let dead_letters = admin.dead_letters().await?;
    let Some(orgs) = who.scope() else {
        let records = dead_letters.list(filter)?;
        return Ok((dead_letters, records, dead_letters.count()));
    };
    // One org named (the layer checked it is covered): the store filters.
    if filter.org.is_some() {
        let records = dead_letters.list(filter)?;
        return Ok((dead_letters, records, visible(dead_letters, who)?));
    }
    let mut unlimited = filter.clone();
    unlimited.limit = None;
    let mut records = dead_letters.list(&unlimited)?;
    records.retain(|r| orgs.contains(&r.org_id));
    records.truncate(filter.limit.unwrap_or(usize::MAX));
    Ok((dead_letters, records, visible(dead_letters, who)?))
}

/// How many dead letters `who` may see.
pub(crate) fn visible(dead_letters: &DeadLetters, who: &Principal) -> Result<usize, ApiError> {
    let Some(orgs) = who.scope() else {
        return Ok(dead_letters.count());
    };
    let all = dead_letters.list(&Filter::default())?;
    Ok(all.iter().filter(|r| orgs.contains(&r.org_id)).count())
}

/// 404 for an id `who` may not see, as for one that does not exist.
fn hidden(id: u64) -> ApiError {
    ApiError::not_found("id", format!("no dead letter {id}"))
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
    who: Principal,
    query: FilterQuery,
) -> Result<Json<DeadLetterList>, ApiError> {
    let (_, items, total) = matching(&admin, &who, &filter(query)?).await?;
    Ok(Json(DeadLetterList {
        total,
        matched: items.len(),
        by_reason: count_by_reason(&items),
        items,
    }))
}

pub async fn show(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterV1>, ApiError> {
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(
            "id",
            "must be a dead-letter id (a number)",
        ));
    };
    match admin.dead_letters().await?.get(id)? {
        Some(r) if who.covers(&r.org_id) => Ok(Json(r)),
        _ => Err(hidden(id)),
    }
}

/// `DELETE /v1/dead-letters/{id}`: purge one record by id without reading it, so even a
/// record that cannot be read (and so matches no filter) can be removed (by a super admin:
/// a token limited to some orgs may only purge records it can read as one of its orgs').
pub async fn purge_one(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(Extension<AuditNote>, Json<PurgeResult>), ApiError> {
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(
            "id",
            "must be a dead-letter id (a number)",
        ));
    };
    let dead_letters = admin.dead_letters().await?;
    let mut note = AuditNote::default();
    if who.scope().is_some() {
        match dead_letters.get(id) {
            Ok(Some(r)) if who.covers(&r.org_id) => note.org = Some(r.org_id),
            _ => return Err(hidden(id)),
        }
    }
    if !dead_letters.remove(id).await? {
        return Err(hidden(id));
    }
    admin.count_dead_letters();
    tracing::info!(id, "dead letter purged");
    Ok((
        Extension(note),
        Json(PurgeResult {
            purged: 1,
            remaining: visible(dead_letters, &who)?,
        }),
    ))
}

pub async fn purge(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    query: FilterQuery,
) -> Result<Json<PurgeResult>, ApiError> {
    let (dead_letters, items, _) = matching(&admin, &who, &filter(query)?).await?;
    let ids: Vec<u64> = items.iter().map(|r| r.id).collect();
    let (purged, failed) = dead_letters.remove_many(&ids).await;
    if let Some(e) = &failed {
        tracing::warn!(error = %e, purged, matched = ids.len(), "some dead letters could not be purged");
    }
    admin.count_dead_letters();
    tracing::info!(purged, "dead letters purged");
    Ok(Json(PurgeResult {
        purged,
        remaining: visible(dead_letters, &who)?,
    }))
}

/// Re-publish matching dead letters to the events topic with their original `event_id`,
/// each marked for the stream it was dead-lettered for (only that stream of the org gets it
/// again); each record is removed only after Kafka acknowledged it. Rate-limited.
pub async fn replay(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    body: Result<Option<Json<DeadLetterQuery>>, JsonRejection>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<ReplayResult>), ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), Some("body"), e.body_text()))?;
    let params = body.map(|Json(b)| b).unwrap_or_default();
    if let Some(org) = params.org.as_deref() {
        super::auth::authorize(super::router::Access::Write, &who, Some(org))?;
    }
    let note = AuditNote {
        org: params.org.clone(),
        target: None,
    };
    let (dead_letters, items, _) = matching(&admin, &who, &to_filter(&params)?).await?;
    let rate = NonZeroU32::new(params.rate.unwrap_or(500)).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(rate));
    let (producer, topic) = admin.replay_producer();
    let (mut replayed, mut failed) = (0usize, 0usize);
    let mut last_error = None;
    for (i, record) in items.iter().enumerate() {
        limiter.until_ready().await;
        let payload = serde_json::to_vec(&record.event).unwrap_or_default();
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: crate::delivery::consume::REPLAY_STREAM_HEADER,
            value: Some(record.stream.as_bytes()),
        });
        let send = producer.send(
            FutureRecord::to(topic)
                .key(record.org_id.as_bytes())
                .payload(&payload)
                .headers(headers),
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
        Extension(note),
        Json(ReplayResult {
            matched: items.len(),
            replayed,
            failed,
            last_error,
            remaining: visible(dead_letters, &who)?,
        }),
    ))
}
