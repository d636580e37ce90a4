//! One delivery worker per active org: batches the org's events, applies its limit, sends
//! with retries, splits poisoned HEC batches, and dead-letters what cannot be delivered.
//! Every job ends in exactly one [`Done`] (delivered, filtered or dead-lettered), except on a
//! hard stop, where unfinished jobs simply keep their offsets uncommitted.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use els_model::settings::{EndpointKind, LimitPolicy, Per, RateLimit};
use els_model::topic::TopicEvent;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dlq::{truncate, DeadLetterV1, Reason, Store, MAX_ERROR_BYTES};
use crate::metrics::{Metrics, OrgOutcome};
use crate::retry::{self, Attempt, Outcome, RetryPolicy};
use crate::settings::{OrgRuntime, SettingsStore};
use crate::sink::{self, Sink};

/// A consumed event on its way to the org's SIEM.
#[derive(Debug)]
pub struct Job {
    /// Boxed: jobs move through per-org queues, whose memory is a multiple of a job's size.
    pub event: Box<TopicEvent>,
    pub origin: Origin,
}

/// Where a job came from, so its completion can be acknowledged there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Straight from Kafka: finishing it advances the partition's watermark.
    Kafka { partition: i32, offset: i64 },
    /// From the park store: finishing it removes the parked record. It was consumed at
    /// (`partition`, `offset`) (-1 for records parked by older versions).
    Parked {
        key: Vec<u8>,
        partition: i32,
        offset: i64,
    },
}

impl Origin {
    /// The partition the event was consumed from.
    pub fn partition(&self) -> i32 {
        match self {
            Origin::Kafka { partition, .. } | Origin::Parked { partition, .. } => *partition,
        }
    }

    /// The offset the event was consumed at.
    pub fn offset(&self) -> i64 {
        match self {
            Origin::Kafka { offset, .. } | Origin::Parked { offset, .. } => *offset,
        }
    }
}

/// A finished job, reported to the consume loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub origin: Origin,
}

/// What every worker shares.
pub struct Shared {
    /// Caps concurrent SIEM requests across all orgs.
    pub requests: tokio::sync::Semaphore,
    pub settings: SettingsStore,
    pub sink: Sink,
    pub store: Store,
    pub metrics: Metrics,
    pub policy: RetryPolicy,
    pub batch_max_bytes: usize,
    pub batch_max_events: usize,
    pub linger: Duration,
    pub idle: Duration,
    /// Finished jobs, a batch per send (one wake-up of the consume loop per batch).
    pub done: mpsc::UnboundedSender<Vec<Done>>,
    /// Fired when the shutdown grace period is over: stop retrying, leave work unfinished.
    pub hard_stop: CancellationToken,
    /// Set while the dead-letter store refuses writes (readiness reports it).
    pub store_failing: AtomicBool,
    /// When the store started failing (ms since the epoch; 0 = healthy). Liveness fails when
    /// this is old: sled keeps an I/O error sticky, so only a restart recovers.
    pub store_failing_since: AtomicU64,
}

impl Shared {
    /// Record a failed store write; true when it is the first of a run of failures.
    pub fn store_failed(&self) -> bool {
        self.metrics.store_errors.inc();
        let now = chrono::Utc::now().timestamp_millis().max(1) as u64;
        let _ =
            self.store_failing_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        !self.store_failing.swap(true, Ordering::Relaxed)
    }

    pub fn store_ok(&self) {
        self.store_failing.store(false, Ordering::Relaxed);
        self.store_failing_since.store(0, Ordering::Relaxed);
    }

    /// How long the store has been failing.
    pub fn store_failing_for(&self) -> Option<Duration> {
        let since = self.store_failing_since.load(Ordering::Relaxed);
        (since > 0).then(|| {
            let now = chrono::Utc::now().timestamp_millis().max(1) as u64;
            Duration::from_millis(now.saturating_sub(since))
        })
    }
}

/// Run one org's worker until its queue closes (shutdown or idle).
pub async fn run(org: String, mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut limiter = Limiter::default();
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = tokio::time::sleep(shared.idle) => {
                // Idle: close the queue so the dispatcher starts a fresh worker next time,
                // then finish whatever raced in.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut jobs = vec![first];
        collect_batch(&mut rx, &mut jobs, &shared).await;
        process(&org, jobs, &shared, &mut limiter).await;
    }
}

async fn collect_batch(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, shared: &Shared) {
    let deadline = tokio::time::Instant::now() + shared.linger;
    let mut bytes: usize = jobs.iter().map(|j| j.event.len()).sum();
    while jobs.len() < shared.batch_max_events && bytes < shared.batch_max_bytes {
        let next = match rx.try_recv() {
            Ok(job) => Some(job),
            Err(mpsc::error::TryRecvError::Empty) => tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten(),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
        };
        let Some(job) = next else { break };
        bytes += job.event.len();
        jobs.push(job);
    }
}

async fn process(org: &str, jobs: Vec<Job>, shared: &Shared, limiter: &mut Limiter) {
    let runtime = shared.settings.get(org);
    // Settings may have changed since the consume loop selected these events.
    let (selected, filtered): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|job| {
        runtime.as_ref().is_some_and(|rt| {
            rt.settings
                .selects(job.event.event_type, job.event.flow_id())
        })
    });
    if !filtered.is_empty() {
        shared.metrics.filtered.inc_by(filtered.len() as u64);
        shared
            .metrics
            .org_event(org, OrgOutcome::Filtered, filtered.len() as u64);
        finish(shared, &filtered);
    }
    let Some(runtime) = runtime else { return };
    if selected.is_empty() {
        return;
    }
    // Deliver in slices the org's limit admits, so the SIEM sees the limited rate rather
    // than a burst after the wait.
    let mut pending = selected;
    while !pending.is_empty() {
        let Some((admitted, rest)) = limiter
            .admit(runtime.settings.max_events, pending, shared)
            .await
        else {
            return;
        };
        pending = rest;
        if admitted.is_empty() {
            continue;
        }
        match runtime.settings.endpoint {
            EndpointKind::Hec => deliver_hec(org, admitted, &runtime, shared).await,
            EndpointKind::Http => {
                for job in admitted {
                    deliver_single(org, job, &runtime, shared).await;
                }
            }
        }
    }
}

/// Deliver HEC batches; a batch answered 400 is split in halves until the bad events are
/// isolated, so only they are dead-lettered.
async fn deliver_hec(org: &str, jobs: Vec<Job>, runtime: &OrgRuntime, shared: &Shared) {
    let mut stack = vec![jobs];
    while let Some(batch) = stack.pop() {
        if shared.hard_stop.is_cancelled() {
            return;
        }
        let body = || sink::hec_body(batch.iter().map(|j| &*j.event), runtime);
        shared.metrics.batch_size.observe(batch.len() as f64);
        match send_with_retry(org, runtime, body, batch.len(), shared).await {
            Outcome::Delivered { .. } => delivered(shared, &batch),
            Outcome::Rejected { last, .. } if last.status == Some(400) && batch.len() > 1 => {
                tracing::info!(
                    org_id = org,
                    events = batch.len(),
                    "HEC rejected a batch; splitting to isolate bad events"
                );
                let mut left = batch;
                let right = left.split_off(left.len() / 2);
                stack.push(right);
                stack.push(left);
            }
            Outcome::Rejected { attempts, last } => {
                Box::pin(dead_letter(
                    shared,
                    batch,
                    Reason::Rejected,
                    attempts,
                    &last,
                ))
                .await
            }
            Outcome::Exhausted { attempts, last } => {
                Box::pin(dead_letter(
                    shared,
                    batch,
                    Reason::RetriesExhausted,
                    attempts,
                    &last,
                ))
                .await
            }
            Outcome::Cancelled { .. } => return,
        }
    }
}

async fn deliver_single(org: &str, job: Job, runtime: &OrgRuntime, shared: &Shared) {
    let body = || sink::event_body(&job.event, runtime);
    shared.metrics.batch_size.observe(1.0);
    match send_with_retry(org, runtime, body, 1, shared).await {
        Outcome::Delivered { .. } => delivered(shared, std::slice::from_ref(&job)),
        Outcome::Rejected { attempts, last } => {
            Box::pin(dead_letter(
                shared,
                vec![job],
                Reason::Rejected,
                attempts,
                &last,
            ))
            .await
        }
        Outcome::Exhausted { attempts, last } => {
            Box::pin(dead_letter(
                shared,
                vec![job],
                Reason::RetriesExhausted,
                attempts,
                &last,
            ))
            .await
        }
        Outcome::Cancelled { .. } => {}
    }
}

/// Send the body `render` builds, with retries. The body is built once the request permit is
/// granted, so thousands of orgs waiting for a permit hold their events but no bodies; it is
/// kept for the retries that follow.
async fn send_with_retry(
    org: &str,
    runtime: &OrgRuntime,
    render: impl Fn() -> Vec<u8>,
    events: usize,
    shared: &Shared,
) -> Outcome {
    let body: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    retry::run(
        &shared.policy,
        &shared.hard_stop,
        || async {
            // The semaphore is never closed, so acquire only fails if it were.
            let _permit = shared.requests.acquire().await;
            let body = body.get_or_init(|| bytes::Bytes::from(render())).clone();
            // Boxed: the request future is large, and only orgs holding a permit need one
            // (thousands of orgs waiting for a permit stay small).
            Box::pin(shared.sink.send(runtime, body)).await
        },
        |attempt, wait| {
            shared.metrics.retries.inc_by(events as u64);
            tracing::debug!(org_id = org, status = ?attempt.status, wait_ms = wait.as_millis() as u64, "delivery will be retried");
        },
    )
    .await
}

/// Report `jobs` finished to the consume loop, in one message.
fn finish<'a>(shared: &Shared, jobs: impl IntoIterator<Item = &'a Job>) {
    let done: Vec<Done> = jobs
        .into_iter()
        .map(|job| Done {
            origin: job.origin.clone(),
        })
        .collect();
    if !done.is_empty() {
        let _ = shared.done.send(done);
    }
}

/// `jobs` (all of one org) reached the SIEM.
fn delivered(shared: &Shared, jobs: &[Job]) {
    let Some(first) = jobs.first() else { return };
    let now = Utc::now().timestamp_millis();
    for job in jobs {
        let latency = (now - job.event.timestamp_ms).max(0) as f64 / 1000.0;
        shared.metrics.delivery_latency.observe(latency);
    }
    let n = jobs.len() as u64;
    shared.metrics.delivered.inc_by(n);
    shared
        .metrics
        .org_event(first.event.org_id(), OrgOutcome::Delivered, n);
    finish(shared, jobs);
}

/// Durably dead-letter `jobs`, then finish them (callers box this rare, large future so idle
/// org workers stay small). A failing store is retried (offsets stay
/// uncommitted meanwhile) until it works or the hard stop comes.
pub async fn dead_letter(
    shared: &Shared,
    jobs: Vec<Job>,
    reason: Reason,
    attempts: u32,
    last: &Attempt,
) {
    let now = Utc::now();
    let records: Vec<DeadLetterV1> = jobs
        .iter()
        .map(|job| DeadLetterV1 {
            id: 0,
            org_id: job.event.org_id().to_string(),
            event: serde_json::from_str(job.event.json()).unwrap_or_default(),
            reason,
            attempts,
            last_status: last.status,
            last_error: truncate(&last.detail, MAX_ERROR_BYTES),
            first_failed_at: now,
            last_failed_at: now,
            partition: job.origin.partition(),
            offset: job.origin.offset(),
        })
        .collect();
    if let Some(first) = jobs.first() {
        tracing::warn!(org_id = %first.event.org_id(), reason = reason.as_str(), status = ?last.status, attempts, events = jobs.len(), "dead-lettering events");
    }
    if !store_durably(shared, records).await {
        return;
    }
    shared
        .metrics
        .dead_lettered
        .with_label_values(&[reason.as_str()])
        .inc_by(jobs.len() as u64);
    for job in &jobs {
        shared
            .metrics
            .org_event(job.event.org_id(), OrgOutcome::DeadLettered, 1);
    }
    finish(shared, &jobs);
}

/// Write records to the store (and the state changelog), retrying until it succeeds; false
/// on hard stop.
pub async fn store_durably(shared: &Shared, records: Vec<DeadLetterV1>) -> bool {
    loop {
        match shared.store.put(records.clone()).await {
            Ok(_) => {
                shared.store_ok();
                shared.metrics.dead_letters.set(shared.store.count() as i64);
                return true;
            }
            Err(e) => {
                if shared.store_failed() {
                    tracing::error!(error = %e, "dead-letter store write failed; holding offsets back and retrying");
                }
                tokio::select! {
                    _ = shared.hard_stop.cancelled() => return false,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// The org's governor limiter, rebuilt when its settings change.
#[derive(Default)]
struct Limiter {
    current: Option<(RateLimit, DefaultDirectRateLimiter)>,
}

impl Limiter {
    /// Apply the org's limit to the front of `jobs`: returns the jobs admitted now and the
    /// rest. With `delay` it waits for at least one token (so progress is steady); with
    /// `dead_letter` the excess is dead-lettered at once. `None` on hard stop.
    async fn admit(
        &mut self,
        limit: Option<RateLimit>,
        jobs: Vec<Job>,
        shared: &Shared,
    ) -> Option<(Vec<Job>, Vec<Job>)> {
        let Some(limit) = limit else {
            self.current = None;
            return Some((jobs, Vec::new()));
        };
        if self.current.as_ref().is_none_or(|(l, _)| *l != limit) {
            self.current = Some((limit, RateLimiter::direct(quota(limit))));
        }
        let limiter = &self.current.as_ref()?.1;
        let mut admitted = Vec::with_capacity(jobs.len());
        let mut excess = Vec::new();
        let mut iter = jobs.into_iter();
        while let Some(job) = iter.next() {
            if limiter.check().is_ok() {
                admitted.push(job);
                continue;
            }
            shared.metrics.rate_limited.inc();
            shared
                .metrics
                .org_event(job.event.org_id(), OrgOutcome::RateLimited, 1);
            match limit.policy {
                LimitPolicy::DeadLetter => excess.push(job),
                LimitPolicy::Delay if admitted.is_empty() => {
                    tokio::select! {
                        _ = shared.hard_stop.cancelled() => return None,
                        _ = limiter.until_ready() => admitted.push(job),
                    }
                }
                LimitPolicy::Delay => {
                    // Send what we have; this job waits for the next token.
                    let mut rest = vec![job];
                    rest.extend(iter);
                    return Some((admitted, rest));
                }
            }
        }
        if !excess.is_empty() {
            let attempt = Attempt {
                verdict: retry::Verdict::Permanent,
                status: None,
                detail: format!(
                    "over the org's max_events limit of {} per {:?}",
                    limit.rate, limit.per
                ),
            };
            Box::pin(dead_letter(
                shared,
                excess,
                Reason::RateLimited,
                0,
                &attempt,
            ))
            .await;
        }
        Some((admitted, Vec::new()))
    }
}

fn quota(limit: RateLimit) -> Quota {
    let rate = NonZeroU32::new(limit.rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rate)).unwrap_or(NonZeroU32::MIN);
    match limit.per {
        Per::Second => Quota::per_second(rate),
        Per::Minute => Quota::per_minute(rate),
    }
    .allow_burst(burst)
}
