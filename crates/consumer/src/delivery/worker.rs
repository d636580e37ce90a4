//! One delivery worker per active org: batches the org's events, applies its limit
//! ([`super::limits`]), sends with retries ([`super::retry`]) on the org's HEC data channel,
//! acts on permanent HEC answers as [`super::hec::decide`] says (one decision for
//! whole-request errors, code 6's named event, halving 400s and 413s), and dead-letters what
//! cannot be delivered.
//! Every job ends in exactly one [`Done`] (delivered, filtered or dead-lettered), except on a
//! hard stop, where unfinished jobs simply keep their offsets uncommitted.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use els_model::hec::AckMode;
use els_model::settings::{EndpointKind, HttpFormat};
use els_model::topic::TopicEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use uuid::Uuid;

use super::ack::{AckBudget, Acks, PollAnswer};
use super::hec::{self, Decision};
use super::limits::Limiter;
use super::queue;
use super::request;
use super::retry::{self, Attempt, Outcome};
use super::siem;
use crate::metrics::{Metrics, OrgOutcome};
use crate::services::{EngineKnobs, Services};
use crate::settings::OrgRuntime;
use crate::state::record::{truncate, MAX_ERROR_BYTES};
use crate::state::{DeadLetterV1, Reason};
use crate::streams::{self, StreamKey};
use els_api::status::{StatusReason, StreamState};

/// A consumed event on its way to one of its org's streams (an event several streams take
/// is one job per stream, all with the same origin).
#[derive(Debug)]
pub struct Job {
    /// Boxed: jobs move through per-stream queues, whose memory is a multiple of a job's size.
    pub event: Box<TopicEvent>,
    pub stream: StreamKey,
    pub origin: Origin,
}

/// Where a job came from, so its completion can be acknowledged there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Straight from Kafka: finishing it advances the partition's watermark.
    Kafka { partition: i32, offset: i64 },
    /// From the park store: finishing it removes the parked record (boxed: the rare case,
    /// and jobs sit in per-stream queues whose memory is a multiple of a job's size).
    Parked(Box<ParkedAt>),
}

/// A parked record: its key in the park store, and where it was consumed (-1, -1 for
/// records parked by older versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedAt {
    pub key: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
}

impl Origin {
    /// The partition the event was consumed from.
    pub fn partition(&self) -> i32 {
        match self {
            Origin::Kafka { partition, .. } => *partition,
            Origin::Parked(at) => at.partition,
        }
    }

    /// The offset the event was consumed at.
    pub fn offset(&self) -> i64 {
        match self {
            Origin::Kafka { offset, .. } => *offset,
            Origin::Parked(at) => at.offset,
        }
    }
}

/// A finished job, reported to the consume loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub origin: Origin,
}

/// What the workers of one consume loop share: the application's services and the loop's
/// own ends (built by [`super::consume::run`]).
pub struct Engine {
    pub services: Arc<Services>,
    /// Caps concurrent SIEM requests across all orgs.
    pub requests: tokio::sync::Semaphore,
    /// Finished jobs, a batch per send (one wake-up of the consume loop per batch).
    pub done: mpsc::UnboundedSender<Vec<Done>>,
    /// Jobs of a paused stream handed back to the consume loop, to be held in the park store.
    pub held: mpsc::UnboundedSender<Vec<Job>>,
    /// Fired when the shutdown grace period is over: stop retrying, leave work unfinished.
    pub hard_stop: CancellationToken,
    /// Events awaiting HEC indexer acks, across all workers.
    pub acks: AckBudget,
    /// Endpoints requests are backing off from, woken by a success on the same endpoint.
    pub recovery: retry::Recovery,
}

impl Engine {
    /// An engine reporting finished jobs to `done` and handing held ones to `held`.
    pub fn new(
        services: Arc<Services>,
        done: mpsc::UnboundedSender<Vec<Done>>,
        held: mpsc::UnboundedSender<Vec<Job>>,
    ) -> Self {
        Self {
            held,
            requests: tokio::sync::Semaphore::new(services.engine.max_concurrent_requests),
            acks: AckBudget::new(services.metrics.clone()),
            services,
            done,
            hard_stop: CancellationToken::new(),
            recovery: retry::Recovery::default(),
        }
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }
}

/// What a worker does next.
enum Step {
    Job(Job),
    /// The queue closed (idle, or shutdown) and everything in it was taken.
    Closed,
    Idle,
    PollAcks,
}

/// Run one org's worker until its queue closes (shutdown or idle) and no batch awaits an ack.
pub async fn run(key: StreamKey, mut rx: queue::Receiver<Job>, engine: Arc<Engine>) {
    let mut limiter = Limiter::default();
    // The org's HEC data channel, kept for the worker's life (see `hec::new_channel`).
    let channel = hec::new_channel();
    let mut acks = Acks::default();
    let knobs = &engine.services.engine;
    let mut linger = Linger::new(knobs);
    let mut open = true;
    loop {
        let room = acks.events() < knobs.ack.max_pending_per_org
            && engine.acks.events() < knobs.ack.max_pending;
        let poll_at = acks.next_poll();
        let step = tokio::select! {
            biased;
            _ = engine.hard_stop.cancelled(), if !acks.is_empty() => return,
            _ = sleep_until(poll_at), if poll_at.is_some() => Step::PollAcks,
            job = rx.recv(), if open && room => job.map_or(Step::Closed, Step::Job),
            _ = tokio::time::sleep(knobs.idle), if open && acks.is_empty() => Step::Idle,
            else => Step::Closed,
        };
        match step {
            Step::Job(first) => {
                let mut jobs = vec![first];
                let bytes = collect_batch(&mut rx, &mut jobs, knobs, linger.now()).await;
                linger.after(jobs.len(), bytes, knobs);
                // Boxed: the delivery future is large (request, retries, acks), and an idle
                // worker (10,000 orgs keep 10,000 of them) should not carry its space.
                Box::pin(process(
                    &key,
                    jobs,
                    &engine,
                    &mut limiter,
                    channel,
                    &mut acks,
                ))
                .await;
                if engine.services.streams.holds(key.as_str()) {
                    // Paused: what is still queued goes back to be held too.
                    let mut queued = Vec::new();
                    while let Ok(job) = rx.try_recv() {
                        queued.push(job);
                    }
                    hold(&engine, queued);
                }
            }
            // Idle: close the queue so the dispatcher starts a fresh worker next time, then
            // finish whatever raced in (the queue then reads as closed).
            Step::Idle => rx.close(),
            Step::Closed => {
                open = false;
                if acks.is_empty() {
                    return;
                }
                // Shutting down with batches awaiting acks: ask now rather than at the
                // interval, so the grace period can see them finished.
                acks.schedule(knobs.ack.poll_interval.min(SHUTDOWN_POLL));
            }
            Step::PollAcks => {
                Box::pin(poll_acks(&key, &mut acks, &engine, channel)).await;
                let next = if open {
                    knobs.ack.poll_interval
                } else {
                    knobs.ack.poll_interval.min(SHUTDOWN_POLL)
                };
                acks.schedule(next);
            }
        }
    }
}

/// How often a worker whose queue closed polls for its last acks.
const SHUTDOWN_POLL: Duration = Duration::from_millis(500);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One ack poll for every pending id of the worker's channel: acked batches are delivered,
/// a code 14 (ack disabled) delivers them all and turns ack off for the worker, batches past
/// the timeout are sent again.
async fn poll_acks(key: &StreamKey, acks: &mut Acks, engine: &Engine, channel: Uuid) {
    let metrics = engine.metrics();
    let Some(runtime) = engine.services.settings.stream(key) else {
        // The org's settings were removed after Splunk accepted these batches: there is no
        // token left to ask with, and the 200s stand.
        for batch in acks.take_all(&engine.acks) {
            delivered(engine, &batch.jobs);
        }
        return;
    };
    let body = serde_json::json!({ "acks": acks.ids() }).to_string();
    let answer = {
        let _permit = engine.requests.acquire().await;
        engine
            .services
            .deliver
            .query_acks(&runtime, bytes::Bytes::from(body), channel)
            .await
    };
    let answer = match answer {
        Ok(exchange) => PollAnswer::read(exchange.status, &exchange.body),
        Err(_) => PollAnswer::Failed,
    };
    match answer {
        PollAnswer::Acked(ids) => {
            metrics.ack_polls.with_label_values(&["ok"]).inc();
            for batch in acks.take_acked(&ids, &engine.acks) {
                metrics
                    .ack_latency
                    .observe(batch.accepted.elapsed().as_secs_f64());
                delivered(engine, &batch.jobs);
            }
        }
        PollAnswer::Disabled => {
            metrics.ack_polls.with_label_values(&["disabled"]).inc();
            acks.disabled = true;
            let batches = acks.take_all(&engine.acks);
            let events: usize = batches.iter().map(|b| b.jobs.len()).sum();
            tracing::warn!(
                org_id = key.org(),
                stream = key.stream(),
                events,
                "the HEC ack endpoint says indexer acknowledgement is disabled for this token \
                 (code 14); counting its 200s as delivered"
            );
            metrics.ack_unconfirmed.inc_by(events as u64);
            for batch in batches {
                delivered(engine, &batch.jobs);
            }
        }
        PollAnswer::Failed => {
            metrics.ack_polls.with_label_values(&["error"]).inc();
        }
    }
    for batch in acks.take_expired(engine.services.engine.ack.timeout, &engine.acks) {
        metrics.ack_timeouts.inc();
        tracing::warn!(
            org_id = key.org(),
            stream = key.stream(),
            events = batch.jobs.len(),
            "no HEC indexer ack within the timeout; sending the batch again"
        );
        Box::pin(deliver_hec(
            key, batch.jobs, &runtime, engine, channel, acks,
        ))
        .await;
    }
}

/// How long a worker's next batch waits for more events: the configured linger while its
/// batches carry a handful of events or more (a busy stream keeps its latency), doubling up
/// to `linger_max` while they close with fewer than [`QUIET_BATCH`] (a quiet stream: one
/// request about every `linger_max` instead of one per event or two), halving back once
/// they carry four times that; a full batch goes back to the configured linger at once.
/// Between the two thresholds the linger stays, so a stream settles instead of swinging.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linger {
    now: Duration,
}

/// A batch closing with fewer events than this (or a quarter of `batch_max_events`, if that
/// is less) makes the next one linger twice as long.
pub(crate) const QUIET_BATCH: usize = 8;

impl Linger {
    pub(crate) fn new(knobs: &EngineKnobs) -> Self {
        Self { now: knobs.linger }
    }

    pub(crate) fn now(&self) -> Duration {
        self.now
    }

    /// Adapt to a batch of `events` events and `bytes` bytes that just closed.
    pub(crate) fn after(&mut self, events: usize, bytes: usize, knobs: &EngineKnobs) {
        let (base, max) = (knobs.linger, knobs.linger_max);
        let quiet = QUIET_BATCH.min(knobs.batch_max_events / 4).max(2);
        if max <= base || events >= knobs.batch_max_events || bytes >= knobs.batch_max_bytes {
            self.now = base;
        } else if events < quiet {
            self.now = (self.now * 2).max(MIN_ADAPTED_LINGER).min(max);
        } else if events >= 4 * quiet {
            self.now = (self.now / 2).max(base);
        }
    }
}

/// The first step of a quiet stream's linger when the configured one is zero.
const MIN_ADAPTED_LINGER: Duration = Duration::from_millis(10);

/// Add to `jobs` what arrives within `linger`, up to the batch caps; the batch's bytes.
async fn collect_batch(
    rx: &mut queue::Receiver<Job>,
    jobs: &mut Vec<Job>,
    knobs: &EngineKnobs,
    linger: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + linger;
    let mut bytes: usize = jobs.iter().map(|j| j.event.len()).sum();
    while jobs.len() < knobs.batch_max_events && bytes < knobs.batch_max_bytes {
        let next = match rx.try_recv() {
            Ok(job) => Some(job),
            Err(queue::TryRecvError::Empty) => tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten(),
            Err(queue::TryRecvError::Disconnected) => None,
        };
        let Some(job) = next else { break };
        bytes += job.event.len();
        jobs.push(job);
    }
    bytes
}

async fn process(
    key: &StreamKey,
    jobs: Vec<Job>,
    engine: &Engine,
    limiter: &mut Limiter,
    channel: Uuid,
    acks: &mut Acks,
) {
    let runtime = engine.services.settings.stream(key);
    // Settings may have changed since the consume loop selected these events.
    let (selected, filtered): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|job| {
        runtime.as_ref().is_some_and(|rt| {
            rt.settings
                .selects(job.event.event_type, job.event.flow_id())
        })
    });
    if !filtered.is_empty() {
        let metrics = engine.metrics();
        metrics.filtered.inc_by(filtered.len() as u64);
        metrics.org_event(key, OrgOutcome::Filtered, filtered.len() as u64);
        finish(engine, &filtered);
    }
    let Some(runtime) = runtime else { return };
    if selected.is_empty() {
        return;
    }
    let streams = &engine.services.streams;
    let state = streams.state(key.as_str());
    if state.holds() && state != StreamState::Probing {
        // Paused (or paused by its user): held, not sent.
        return hold(engine, selected);
    }
    if let Some((paused_at, reason)) = streams.take_resumed(key.as_str()) {
        lifecycle_event(key, &runtime, engine, channel, paused_at, reason).await;
    }
    // Deliver in slices the org's limit admits, so the SIEM sees the limited rate rather
    // than a burst after the wait.
    let mut pending = selected;
    while !pending.is_empty() {
        if streams.holds(key.as_str()) && streams.state(key.as_str()) != StreamState::Probing {
            return hold(engine, pending);
        }
        let Some((admitted, rest)) = limiter
            .admit(runtime.settings.max_events, pending, engine)
            .await
        else {
            return;
        };
        pending = rest;
        if admitted.is_empty() {
            continue;
        }
        match runtime.settings.endpoint {
            EndpointKind::Hec => deliver_hec(key, admitted, &runtime, engine, channel, acks).await,
            EndpointKind::Http if runtime.settings.http.format == HttpFormat::Single => {
                let mut jobs = admitted.into_iter();
                while let Some(job) = jobs.next() {
                    deliver_single(key, job, &runtime, engine, channel).await;
                    if streams.holds(key.as_str()) {
                        return hold(engine, jobs.chain(pending).collect());
                    }
                }
            }
            _ => {
                super::batched::deliver(key, admitted, &runtime, engine, channel).await;
                if streams.holds(key.as_str()) {
                    return hold(engine, pending);
                }
            }
        }
    }
}

/// Deliver HEC batches. A permanent answer is acted on as [`hec::decide`] says: a
/// whole-request error is one dead-letter decision for the batch; code 6 finishes the events
/// before the named one, dead-letters it and re-sends the rest; other 400s and 413s are split
/// in halves (a lone event answered 413 is `too_large`). A `200` carrying an `ackId` (and
/// `hec.ack` not false) leaves the batch in `acks` until its ack comes.
async fn deliver_hec(
    key: &StreamKey,
    jobs: Vec<Job>,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
    channel: Uuid,
    acks: &mut Acks,
) {
    let mut stack = vec![jobs];
    while let Some(mut batch) = stack.pop() {
        if engine.hard_stop.is_cancelled() {
            return;
        }
        let body = || request::hec_body(batch.iter().map(|j| &*j.event), runtime);
        engine.metrics().batch_size.observe(batch.len() as f64);
        let (attempts, last) =
            match send_with_retry(key, runtime, body, batch.len(), engine, channel).await {
                Outcome::Rejected { attempts, last } => (attempts, last),
                Outcome::Cancelled { .. } => return,
                Outcome::Delivered { reply, .. } => {
                    accepted(key, batch, &reply, runtime, engine, acks);
                    continue;
                }
                Outcome::Exhausted { attempts, last } => {
                    if exhausted(key, batch, attempts, &last, runtime, engine).await {
                        hold_all(engine, stack);
                        return;
                    }
                    continue;
                }
            };
        let reply = hec::parse_reply(&last.detail);
        let code = reply.as_ref().map(|r| r.code);
        if about_the_stream(engine, key, last.status, code) {
            if pause_or_expire(key, batch, attempts, &last, runtime, engine).await {
                hold_all(engine, stack);
                return;
            }
            continue;
        }
        let decision = hec::decide(last.status, reply.as_ref(), batch.len());
        let dead = |jobs: Vec<Job>, reason: Reason| {
            Box::pin(dead_letter(engine, jobs, reason, attempts, &last))
        };
        match decision {
            Decision::Split | Decision::SplitTooLarge => {
                tracing::info!(
                    org_id = key.org(), stream = key.stream(),
                    events = batch.len(),
                    status = ?last.status,
                    code,
                    "HEC refused a batch; splitting it"
                );
                let right = batch.split_off(batch.len() / 2);
                stack.push(right);
                stack.push(batch);
            }
            Decision::InvalidEvent(n) => {
                // Splunk indexed the events before `n`; `n` is bad; the rest were not read.
                let mut after = batch.split_off(n);
                let bad = after.remove(0);
                delivered(engine, &batch);
                dead(vec![bad], Reason::Rejected).await;
                if !after.is_empty() {
                    stack.push(after);
                }
            }
            // Whole-request errors are configuration errors: paused above.
            Decision::WholeRequest | Decision::DeadLetter => dead(batch, Reason::Rejected).await,
            Decision::TooLarge => dead(batch, Reason::TooLarge).await,
        }
    }
}

/// Whether a permanent answer (`status`, HEC `code`) is about the stream rather than its
/// events: its configuration (token, index, channel, URL) is wrong, or a probe failed.
pub(super) fn about_the_stream(
    engine: &Engine,
    key: &StreamKey,
    status: Option<u16>,
    code: Option<i64>,
) -> bool {
    probing(engine, key) || streams::is_configuration_error(status, code)
}

/// A batch refused as [`about_the_stream`]: the stream pauses and holds it, never
/// dead-lettering event by event, unless it has been failing for the whole retry window
/// (then the events end as dead letters `retries_exhausted`). Returns whether it paused (the
/// caller holds the rest of its work).
pub(super) async fn pause_or_expire(
    key: &StreamKey,
    batch: Vec<Job>,
    attempts: u32,
    last: &Attempt,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
) -> bool {
    if engine.services.streams.window_expired(key.as_str()) {
        let reason = Reason::RetriesExhausted;
        Box::pin(dead_letter(engine, batch, reason, attempts, last)).await;
        return false;
    }
    pause(key, batch, last, runtime, engine);
    true
}

/// Whether `org`'s stream is probing (its batch is a probe: one attempt, no dead letters).
fn probing(engine: &Engine, key: &StreamKey) -> bool {
    engine.services.streams.state(key.as_str()) == StreamState::Probing
}

/// Retries of `batch` ran out: within the retry window the stream pauses and holds it
/// (true: the caller holds the rest); past it, or when the retry window is no longer than
/// the pause threshold, the batch is dead-lettered `retries_exhausted` (false).
pub(super) async fn exhausted(
    key: &StreamKey,
    batch: Vec<Job>,
    attempts: u32,
    last: &Attempt,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
) -> bool {
    let window_is_retry_time =
        engine.services.engine.retry.max_elapsed <= engine.services.streams.knobs.pause_after;
    if window_is_retry_time {
        let reason = Reason::RetriesExhausted;
        Box::pin(dead_letter(engine, batch, reason, attempts, last)).await;
        return false;
    }
    pause_or_expire(key, batch, attempts, last, runtime, engine).await
}

/// Pause `org`'s stream because of `last` and hold `batch`.
fn pause(
    key: &StreamKey,
    batch: Vec<Job>,
    last: &Attempt,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
) {
    engine.services.streams.pause(
        key.as_str(),
        batch.len() as u64,
        reason_of(last),
        Arc::as_ptr(runtime) as usize,
    );
    hold(engine, batch);
}

/// The SIEM's answer as a stream-health reason.
pub fn reason_of(last: &Attempt) -> StatusReason {
    let reply = hec::parse_reply(&last.detail);
    StatusReason {
        status: last.status,
        hec_code: reply.as_ref().map(|r| r.code),
        text: match reply {
            Some(r) => r.text,
            None => truncate(&last.detail, 200),
        },
    }
}

/// Hand `jobs` back to the consume loop to be held in the park store.
fn hold(engine: &Engine, jobs: Vec<Job>) {
    if !jobs.is_empty() {
        let _ = engine.held.send(jobs);
    }
}

pub(super) fn hold_all(engine: &Engine, batches: Vec<Vec<Job>>) {
    hold(engine, batches.into_iter().flatten().collect());
}

/// Tell the org's SIEM, once, that its stream resumed: when it paused and why (as Okta's
/// `system.log_stream.lifecycle` events do). One attempt; a failure is only logged.
async fn lifecycle_event(
    key: &StreamKey,
    runtime: &OrgRuntime,
    engine: &Engine,
    channel: Uuid,
    paused_at: chrono::DateTime<Utc>,
    reason: Option<StatusReason>,
) {
    let now = Utc::now();
    let event = serde_json::json!({
        "type": "els.stream.lifecycle",
        "action": "resumed",
        "paused_at": paused_at,
        "resumed_at": now,
        "paused_for_seconds": (now - paused_at).num_seconds().max(0),
        "reason": reason,
    });
    let body = match runtime.settings.endpoint {
        EndpointKind::Hec => {
            let hec = &runtime.settings.hec;
            let mut envelope = serde_json::json!({
                "time": now.timestamp_millis() as f64 / 1000.0,
                "host": "els",
                "source": hec.source,
                "sourcetype": "els:lifecycle",
                "event": event,
            });
            if let Some(index) = &hec.index {
                envelope["index"] = serde_json::json!(index);
            }
            envelope.to_string()
        }
        _ => String::from_utf8_lossy(&super::batched::single_item_body(
            runtime,
            &event.to_string(),
        ))
        .into_owned(),
    };
    let _permit = engine.requests.acquire().await;
    let attempt = siem::send(
        &*engine.services.deliver,
        engine.metrics(),
        runtime,
        bytes::Bytes::from(body),
        channel,
    )
    .await;
    if attempt.verdict != super::retry::Verdict::Success {
        tracing::warn!(org_id = key.org(), stream = key.stream(), status = ?attempt.status, "the stream-resumed lifecycle event was not accepted");
    } else {
        tracing::info!(
            org_id = key.org(),
            stream = key.stream(),
            "sent the stream-resumed lifecycle event"
        );
    }
}

/// A `200` for `batch`: delivered, or (with an `ackId` to wait for) pending in `acks`.
fn accepted(
    key: &StreamKey,
    batch: Vec<Job>,
    reply: &str,
    runtime: &OrgRuntime,
    engine: &Engine,
    acks: &mut Acks,
) {
    let mode = runtime.settings.hec.ack;
    let ack_id = hec::parse_reply(reply).and_then(|r| r.ack_id);
    if !acks.disabled && mode.waits_for(ack_id) {
        if let Some(id) = ack_id {
            acks.add(
                id,
                batch,
                engine.services.engine.ack.poll_interval,
                &engine.acks,
            );
            return;
        }
    }
    if mode == AckMode::On && ack_id.is_none() {
        engine.metrics().ack_unconfirmed.inc_by(batch.len() as u64);
        if !acks.warned_no_ack_id {
            acks.warned_no_ack_id = true;
            tracing::warn!(
                org_id = key.org(),
                stream = key.stream(),
                "hec.ack is true but HEC answered without an ackId (is indexer \
                 acknowledgement on for this token?); counting its 200s as delivered"
            );
        }
    }
    delivered(engine, &batch);
}

async fn deliver_single(
    key: &StreamKey,
    job: Job,
    runtime: &Arc<OrgRuntime>,
    engine: &Engine,
    channel: Uuid,
) {
    let body = || request::event_body(&job.event, runtime);
    engine.metrics().batch_size.observe(1.0);
    let outcome = send_with_retry(key, runtime, body, 1, engine, channel).await;
    match outcome {
        Outcome::Delivered { .. } => delivered(engine, &[job]),
        Outcome::Cancelled { .. } => {}
        Outcome::Exhausted { attempts, last } => {
            exhausted(key, vec![job], attempts, &last, runtime, engine).await;
        }
        Outcome::Rejected { attempts, last } => {
            if about_the_stream(engine, key, last.status, None) {
                pause_or_expire(key, vec![job], attempts, &last, runtime, engine).await;
            } else {
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
}

/// Send the body `render` builds, with retries. The body is built once the request permit is
/// granted, so thousands of orgs waiting for a permit hold their events but no bodies; it is
/// kept for the retries that follow.
pub(super) async fn send_with_retry(
    key: &StreamKey,
    runtime: &OrgRuntime,
    render: impl Fn() -> Vec<u8>,
    events: usize,
    engine: &Engine,
    channel: Uuid,
) -> Outcome {
    let body: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let streams = &engine.services.streams;
    // Retries stop at the pause threshold (then the stream pauses, its events held) or the
    // retry window, whichever is shorter; a probe gets one attempt.
    let mut policy = engine.services.engine.retry;
    policy.max_elapsed = if probing(engine, key) {
        Duration::ZERO
    } else {
        policy.max_elapsed.min(streams.knobs.pause_after)
    };
    retry::run(
        &policy,
        &engine.hard_stop,
        Some((&engine.recovery, &runtime.settings.url)),
        || async {
            // The semaphore is never closed, so acquire only fails if it were.
            let _permit = engine.requests.acquire().await;
            let body = body.get_or_init(|| bytes::Bytes::from(render())).clone();
            // The request future is boxed by `Deliver`, once the permit is held.
            siem::send(&*engine.services.deliver, engine.metrics(), runtime, body, channel).await
        },
        |attempt, wait| {
            engine.metrics().retries.inc_by(events as u64);
            streams.failed(key.as_str(), events as u64, reason_of(attempt));
            tracing::debug!(org_id = key.org(), stream = key.stream(), status = ?attempt.status, wait_ms = wait.as_millis() as u64, "delivery will be retried");
        },
    )
    .await
}

/// Report `jobs` finished to the consume loop, in one message.
fn finish<'a>(engine: &Engine, jobs: impl IntoIterator<Item = &'a Job>) {
    let done: Vec<Done> = jobs
        .into_iter()
        .map(|job| Done {
            origin: job.origin.clone(),
        })
        .collect();
    if !done.is_empty() {
        let _ = engine.done.send(done);
    }
}

/// `jobs` (all of one org) reached the SIEM.
pub(super) fn delivered(engine: &Engine, jobs: &[Job]) {
    let Some(first) = jobs.first() else { return };
    let metrics = engine.metrics();
    let now = Utc::now().timestamp_millis();
    for job in jobs {
        let latency = (now - job.event.timestamp_ms).max(0) as f64 / 1000.0;
        metrics.delivery_latency.observe(latency);
    }
    let n = jobs.len() as u64;
    metrics.delivered.inc_by(n);
    metrics.org_event(&first.stream, OrgOutcome::Delivered, n);
    engine.services.streams.delivered(first.stream.as_str(), n);
    finish(engine, jobs);
}

/// Durably dead-letter `jobs`, then finish them (callers box this rare, large future so idle
/// org workers stay small). A failing store is retried (offsets stay
/// uncommitted meanwhile) until it works or the hard stop comes.
pub async fn dead_letter(
    engine: &Engine,
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
            org_id: job.stream.org().to_string(),
            stream: job.stream.stream().to_string(),
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
        tracing::warn!(org_id = first.stream.org(), stream = first.stream.stream(), reason = reason.as_str(), status = ?last.status, attempts, events = jobs.len(), "dead-lettering events");
    }
    if !store_durably(engine, records).await {
        return;
    }
    let metrics = engine.metrics();
    metrics
        .dead_lettered
        .with_label_values(&[reason.as_str()])
        .inc_by(jobs.len() as u64);
    for job in &jobs {
        metrics.org_event(&job.stream, OrgOutcome::DeadLettered, 1);
    }
    finish(engine, &jobs);
}

/// Write records to the store (and the state changelog), retrying until it succeeds; false
/// on hard stop.
pub async fn store_durably(engine: &Engine, records: Vec<DeadLetterV1>) -> bool {
    let services = &engine.services;
    loop {
        match services.dead_letters().put(records.clone()).await {
            Ok(_) => {
                services.store_ok();
                let count = services.dead_letters().count();
                services.metrics.dead_letters.set(count as i64);
                return true;
            }
            Err(e) => {
                if services.store_failed() {
                    tracing::error!(error = %e, "dead-letter store write failed; holding offsets back and retrying");
                }
                tokio::select! {
                    _ = engine.hard_stop.cancelled() => return false,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
