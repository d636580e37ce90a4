//! Delivery to batched destinations other than HEC: `http` streams of format `ndjson` or
//! `json_array`, `datadog` and `elasticsearch`. Requests respect the stream's caps
//! ([`request::batch_caps`]); a request refused as a whole with 400, 413 or 422 is split in
//! halves until the bad or oversized event stands alone (dead-lettered `rejected` or
//! `too_large`), so one bad event never costs its batch. Configuration answers (401, 403,
//! 404, 410) pause the stream as for every endpoint type.
//!
//! Elasticsearch answers `_bulk` with `200` and one result per item: stored items (and a
//! `create` answered 409, already stored by an earlier send) are delivered, items answered
//! 429 or 5xx are sent again after a backoff, alone, and an item refused for good (a mapping
//! error) is dead-lettered alone.

use std::time::Duration;

use uuid::Uuid;

use super::elastic::{self, BulkReply, ItemOutcome};
use super::request;
use super::retry::{Attempt, Outcome, Verdict};
use super::worker::{
    about_the_stream, dead_letter, delivered, exhausted, hold_all, pause_or_expire,
    send_with_retry, Engine, Job,
};
use crate::settings::OrgRuntime;
use crate::state::Reason;
use crate::streams::StreamKey;
use els_model::settings::EndpointKind;
use std::sync::Arc;

/// Deliver `jobs` (admitted by the stream's limit) in requests within the stream's caps.
pub async fn deliver(
    key: &StreamKey,
    jobs: Vec<Job>,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
    channel: Uuid,
) {
    let (max_events, max_bytes) = request::batch_caps(runtime);
    let mut stack = request::chunks(jobs, |j| j.event.len(), max_events, max_bytes);
    stack.reverse();
    // Elasticsearch items answered 429/5xx: sent again after a backoff, counting from the
    // first such answer; past the pause threshold they are retries exhausted.
    let mut item_retry = ItemRetry::default();
    while let Some(mut batch) = stack.pop() {
        if engine.hard_stop.is_cancelled() {
            return;
        }
        let body = || request::batch_body(batch.iter().map(|j| &*j.event), runtime);
        engine.metrics().batch_size.observe(batch.len() as f64);
        let (attempts, last) =
            match send_with_retry(key, runtime, body, batch.len(), engine, channel).await {
                Outcome::Cancelled { .. } => return,
                Outcome::Delivered { reply, attempts } => {
                    if runtime.settings.endpoint != EndpointKind::Elasticsearch {
                        delivered(engine, &batch);
                        continue;
                    }
                    match bulk_items(key, batch, &reply, attempts, engine).await {
                        None => item_retry = ItemRetry::default(),
                        Some((retry, last)) => {
                            let pause_after = engine.services.streams.knobs.pause_after;
                            let Some(wait) = item_retry.next(engine, pause_after) else {
                                item_retry = ItemRetry::default();
                                if exhausted(key, retry, attempts, &last, runtime, engine).await {
                                    hold_all(engine, stack);
                                    return;
                                }
                                continue;
                            };
                            tokio::select! {
                                _ = engine.hard_stop.cancelled() => return,
                                _ = tokio::time::sleep(wait) => {}
                            }
                            stack.push(retry);
                        }
                    }
                    continue;
                }
                Outcome::Exhausted { attempts, last } => {
                    if exhausted(key, batch, attempts, &last, runtime, engine).await {
                        hold_all(engine, stack);
                        return;
                    }
                    continue;
                }
                Outcome::Rejected { attempts, last } => (attempts, last),
            };
        if about_the_stream(engine, key, last.status, None) {
            if pause_or_expire(key, batch, attempts, &last, runtime, engine).await {
                hold_all(engine, stack);
                return;
            }
            continue;
        }
        let splittable = matches!(last.status, Some(400 | 413 | 422));
        if splittable && batch.len() > 1 {
            tracing::info!(
                org_id = key.org(),
                stream = key.stream(),
                events = batch.len(),
                status = ?last.status,
                "the SIEM refused a batch; splitting it"
            );
            let right = batch.split_off(batch.len() / 2);
            stack.push(right);
            stack.push(batch);
            continue;
        }
        let reason = if last.status == Some(413) {
            Reason::TooLarge
        } else {
            Reason::Rejected
        };
        Box::pin(dead_letter(engine, batch, reason, attempts, &last)).await;
    }
}

/// Act on a `_bulk` answer for `batch`: delivered items finish, items refused for good are
/// dead-lettered one by one; returns the items to send again (429, 5xx, or all of them when
/// the answer does not read as a bulk answer) with the attempt to report if they run out.
async fn bulk_items(
    key: &StreamKey,
    batch: Vec<Job>,
    reply: &str,
    attempts: u32,
    engine: &Engine,
) -> Option<(Vec<Job>, Attempt)> {
    let outcomes = match elastic::parse_bulk_reply(200, reply.as_bytes(), batch.len()) {
        BulkReply::Items(outcomes) => outcomes,
        BulkReply::Request { status } => {
            let last = Attempt {
                verdict: Verdict::Retry,
                status: Some(status),
                detail: crate::state::record::truncate(reply, 500),
            };
            return Some((batch, last));
        }
        BulkReply::Malformed(why) => {
            tracing::warn!(org_id = key.org(), stream = key.stream(), %why, "Elasticsearch's _bulk answer does not read; sending the batch again");
            let last = Attempt {
                verdict: Verdict::Retry,
                status: Some(200),
                detail: format!("unreadable _bulk answer: {why}"),
            };
            return Some((batch, last));
        }
    };
    let (mut stored, mut retry, mut last_retry) = (Vec::new(), Vec::new(), None);
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            ItemOutcome::Stored | ItemOutcome::Duplicate => stored.push(job),
            ItemOutcome::Retry { status, reason } => {
                last_retry = Some(Attempt {
                    verdict: Verdict::Retry,
                    status: Some(status),
                    detail: reason,
                });
                retry.push(job);
            }
            ItemOutcome::Rejected {
                status,
                error_type,
                reason,
            } => {
                let last = Attempt {
                    verdict: Verdict::Permanent,
                    status: Some(status),
                    detail: format!("{error_type}: {reason}"),
                };
                tracing::info!(org_id = key.org(), stream = key.stream(), status, %error_type, "Elasticsearch refused a document; dead-lettering it alone");
                Box::pin(dead_letter(
                    engine,
                    vec![job],
                    Reason::Rejected,
                    attempts,
                    &last,
                ))
                .await;
            }
        }
    }
    delivered(engine, &stored);
    if retry.is_empty() {
        return None;
    }
    engine.metrics().retries.inc_by(retry.len() as u64);
    tracing::debug!(
        org_id = key.org(),
        stream = key.stream(),
        items = retry.len(),
        "Elasticsearch asked to send items again"
    );
    last_retry.map(|last| (retry, last))
}

/// Backoff of items sent again within one worker batch.
#[derive(Default)]
struct ItemRetry {
    since: Option<tokio::time::Instant>,
    tries: u32,
}

impl ItemRetry {
    /// The wait before the next send, or `None` when retrying has gone on longer than
    /// `limit` (the pause threshold, or the retry window when shorter).
    fn next(&mut self, engine: &Engine, limit: Duration) -> Option<Duration> {
        let policy = &engine.services.engine.retry;
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= limit.min(policy.max_elapsed) {
            return None;
        }
        let factor = policy.multiplier.max(1.0).powi(self.tries.min(30) as i32);
        self.tries += 1;
        Some(policy.initial.mul_f64(factor).min(policy.max_interval))
    }
}

/// The body of a batch of one for the stream's format, around an event's JSON `event`
/// (the stream-resumed lifecycle event).
pub fn single_item_body(runtime: &OrgRuntime, event: &str) -> Vec<u8> {
    let settings = &runtime.settings;
    match settings.endpoint {
        EndpointKind::Elasticsearch => {
            let mut out = Vec::new();
            if let Some(options) = &settings.elasticsearch {
                let id = Uuid::new_v4().to_string();
                elastic::write_item(&mut out, options, &id, |o| {
                    o.extend_from_slice(event.as_bytes())
                });
            }
            out
        }
        EndpointKind::Http if settings.http.format == els_model::settings::HttpFormat::Ndjson => {
            format!("{event}\n").into_bytes()
        }
        EndpointKind::Http if settings.http.format == els_model::settings::HttpFormat::Single => {
            event.as_bytes().to_vec()
        }
        EndpointKind::Datadog => {
            let dd = &settings.datadog;
            let entry = serde_json::json!({
                "ddsource": dd.ddsource, "service": dd.service, "ddtags": dd.ddtags,
                "message": serde_json::from_str::<serde_json::Value>(event).unwrap_or_default(),
            });
            format!("[{entry}]").into_bytes()
        }
        _ => format!("[{event}]").into_bytes(),
    }
}
