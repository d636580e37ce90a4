//! The consume loop: Kafka -> parse -> filter -> per-org queue or park ([`super::route`]) ->
//! workers, and back: completions advance per-partition watermarks, and only watermarks are
//! stored as offsets (`enable.auto.offset.store=false`; librdkafka's auto-commit commits what
//! we stored).
//!
//! The loop uses a `biased` select so completions are handled before new messages, and stops
//! reading while `max_in_flight` events are unfinished (events awaiting HEC indexer acks
//! have their own cap, `hec_ack_max_pending`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use els_model::topic::TopicEvent;
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatcher;
use super::park::{Flushed, Park};
use super::rebalance::{Changes, Ownership, RebalanceContext};
use super::route::{self, ParkFailed};
use super::watermark::Watermarks;
use super::worker::{self, Done, Engine, Job, Origin};
use crate::config::Config;
use crate::error::ConsumerError;
use crate::metrics::ChangelogKind;
use crate::services::Services;
use crate::settings::OrgRuntime;
use crate::state::changelog::restore;
use crate::state::{DeadLetterV1, Reason};
use crate::streams::StreamKey;

struct Loop {
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    topic: String,
    services: Arc<Services>,
    engine: Arc<Engine>,
    dispatcher: Dispatcher,
    park: Park,
    watermarks: Watermarks,
    ownership: Arc<Ownership>,
    /// Partitions whose watermark advanced since offsets were last stored.
    dirty: HashSet<i32>,
    /// How long a full org queue may hold up reading before its events are parked.
    park_after: Duration,
    cancel: CancellationToken,
    /// Set when shutdown interrupted a restore: no further message may be handled.
    stopping: bool,
    /// The consumer's fatal error, if it had one: `run` ends with it.
    fatal: Option<String>,
}

/// How long one attempt at restoring assigned partitions' parked events may take (then it is
/// retried: no message of those partitions is handled before their parked events are back).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown: how long to wait for changelog acknowledgements of parked events.
const PARK_DRAIN: Duration = Duration::from_secs(5);

/// Run until `cancel`, then drain within the grace period, store offsets and commit.
pub async fn run(
    config: Config,
    services: Arc<Services>,
    cancel: CancellationToken,
) -> Result<(), ConsumerError> {
    let consumer: StreamConsumer<RebalanceContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("client.id", "els-consumer")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 3).clamp(100, 1000).to_string(),
        )
        // Brokers may hold a fetch this long when there is no data; keep latency low.
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        // Bounded read-ahead: in a backlog the client holds this much, not its 64 MiB default;
        // a full queue postpones the next fetch by `fetch.queue.backoff.ms` (default 1 s,
        // which starves a small queue), so fetch again soon after the consumer makes room.
        .set(
            "queued.max.messages.kbytes",
            config.fetch_queue_max_kbytes.to_string(),
        )
        .set("fetch.queue.backoff.ms", "10")
        .set_if(
            !config.instance_id.is_empty(),
            "group.instance.id",
            &config.instance_id,
        )
        .create_with_context(RebalanceContext {
            ownership: services.ownership.clone(),
        })?;
    // Workers report finished jobs here; the loop turns them into stored offsets.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    // Jobs of paused streams come back here to be held in the park store.
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let engine = Arc::new(Engine::new(services.clone(), done_tx, held_tx));
    // Before anything is assigned: with the changelog on, the tree starts empty.
    let mut park = Park::open(&services.store)?;
    park.count_into(services.streams.held.clone())?;
    consumer.subscribe(&[&config.topic])?;
    let consumer = Arc::new(consumer);
    let mut lp = Loop {
        consumer: consumer.clone(),
        topic: config.topic.clone(),
        dispatcher: Dispatcher::new(engine.clone(), config.org_queue_capacity),
        services: services.clone(),
        engine: engine.clone(),
        park,
        watermarks: Watermarks::default(),
        ownership: services.ownership.clone(),
        dirty: HashSet::new(),
        park_after: Duration::from_millis(config.park_after_ms),
        cancel: cancel.clone(),
        stopping: false,
        fatal: None,
    };
    let lag_task = tokio::spawn(super::lag::report_lag(
        consumer.clone(),
        config.topic.clone(),
        services.ownership.clone(),
        services.metrics.clone(),
        cancel.clone(),
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(topic = %config.topic, group = %config.group_id, "consuming");
    loop {
        if !lp.apply_rebalance().await {
            break;
        }
        let can_read = lp.room_to_read(&config);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(done) = done_rx.recv() => lp.on_done_all(done),
            Some(jobs) = held_rx.recv() => lp.on_held(jobs),
            _ = tick.tick() => lp.housekeeping().await,
            msg = consumer.recv(), if can_read => {
                lp.on_received(msg).await;
                // Messages librdkafka already fetched are taken in a burst, without a trip
                // through the select for each (completions wait for the burst's end).
                for _ in 0..BURST {
                    if !lp.room_to_read(&config) {
                        break;
                    }
                    match consumer.recv().now_or_never() {
                        Some(msg) => lp.on_received(msg).await,
                        None => break,
                    }
                }
            }
        }
    }
    // Shutdown: stop reading, let workers finish their queues within the grace period.
    tracing::info!(
        in_flight = lp.watermarks.in_flight(),
        "shutting down; draining"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_millis(config.shutdown_grace_ms);
    let dispatcher = std::mem::replace(&mut lp.dispatcher, Dispatcher::new(engine.clone(), 1));
    let mut closing = tokio::spawn(dispatcher.close());
    loop {
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => lp.on_done_all(done),
            Some(jobs) = held_rx.recv() => lp.on_held(jobs),
            _ = &mut closing => break,
            _ = tokio::time::sleep_until(deadline), if !engine.hard_stop.is_cancelled() => {
                tracing::warn!("grace period over; leaving unfinished events for redelivery");
                engine.hard_stop.cancel();
            }
        }
    }
    while let Ok(done) = done_rx.try_recv() {
        lp.on_done_all(done);
    }
    while let Ok(jobs) = held_rx.try_recv() {
        lp.on_held(jobs);
    }
    let drained = lp.park.drain(PARK_DRAIN).await;
    lp.on_flushed(drained);
    lp.store_offsets();
    if let Some(changelog) = services.store.changelog().cloned() {
        // Tombstones of parked events delivered during the drain.
        let flush = move || changelog.flush(Duration::from_secs(2));
        let _ = tokio::task::spawn_blocking(flush).await;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing stored since the last auto-commit: everything finished is committed.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
            tracing::debug!("final commit: nothing new to commit")
        }
        Err(e) => {
            tracing::warn!(error = %e, "final commit failed; uncommitted events will be redelivered")
        }
    }
    lag_task.abort();
    if let Some(fatal) = lp.fatal {
        return Err(ConsumerError::KafkaFatal(fatal));
    }
    tracing::info!("consumer stopped");
    Ok(())
}

/// Most messages taken per burst (see the consume loop).
const BURST: usize = 64;

impl Loop {
    /// Whether another message may be read: fewer than `max_in_flight` unfinished events
    /// besides those awaiting HEC acks, and fewer than `hec_ack_max_pending` of those.
    fn room_to_read(&self, config: &Config) -> bool {
        let awaiting_acks = self.engine.acks.events();
        self.watermarks.in_flight().saturating_sub(awaiting_acks) < config.max_in_flight
            && awaiting_acks < config.hec_ack_max_pending
    }

    /// Apply rebalances seen since the last call. Rebalance callbacks run inside the poll that
    /// returned `msg`, so this runs before any message is tracked: a message from a partition
    /// assigned again in the same poll starts a fresh watermark instead of joining (and later
    /// being dropped with) the revoked one, and an assigned partition's parked events are
    /// restored before its first message. False once shutdown interrupted a restore.
    async fn apply_rebalance(&mut self) -> bool {
        if self.stopping {
            return false;
        }
        let Some(Changes { revoked, assigned }) = self.ownership.take_changes() else {
            return true;
        };
        for p in &revoked {
            self.watermarks.revoke(*p);
            self.dirty.remove(p);
        }
        let Some(changelog) = self.park.changelog().cloned() else {
            return true;
        };
        // Revoked: the new owner restores them. Assigned: restored from scratch below.
        let mut drop: Vec<i32> = revoked.iter().chain(&assigned).copied().collect();
        drop.sort_unstable();
        drop.dedup();
        match self.park.drop_partitions(&drop) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(partitions = ?drop, records = n, "dropped parked events of revoked partitions (their owner restores them)")
            }
            Err(e) => {
                tracing::error!(error = %e, "dropping parked events of revoked partitions failed")
            }
        }
        if assigned.is_empty() {
            return true;
        }
        let Some(records) =
            restore::read_until_done(&changelog, &assigned, RESTORE_TIMEOUT, &self.cancel).await
        else {
            self.stopping = true;
            return false;
        };
        let n = records.len() as u64;
        match self.park.restore(records) {
            Ok(()) => self
                .services
                .metrics
                .changelog_restored(ChangelogKind::Park, n),
            Err(e) => {
                self.services.store_failed();
                tracing::error!(error = %e, partitions = ?assigned, "writing restored parked events to the local store failed");
            }
        }
        self.services.metrics.parked.set(self.park.stored() as i64);
        true
    }

    async fn on_received(&mut self, msg: Result<BorrowedMessage<'_>, KafkaError>) {
        if !self.apply_rebalance().await {
            // Stopping: the message stays unfinished and is redelivered.
            return;
        }
        match msg {
            Ok(m) => {
                let partition = m.partition();
                let offset = m.offset();
                // Typed straight from the message's buffer; the bytes are copied only when
                // they are not a valid event (to dead-letter them).
                let payload = m.payload().unwrap_or_default();
                let parsed = TopicEvent::parse(payload)
                    .map(Box::new)
                    .map_err(|e| (e.0, payload.to_vec()));
                let only = replayed_for(&m);
                drop(m);
                self.on_message(partition, offset, parsed, only).await;
            }
            Err(e) => {
                // A fatal error (e.g. this static member fenced by the group) ends the
                // client for good: drain what is in flight and exit non-zero, so the
                // supervisor starts a fresh instance (unfinished offsets were never stored).
                if let Some((code, reason)) = self.consumer.client().fatal_error() {
                    if self.fatal.is_none() {
                        tracing::error!(error = %code, %reason, "fatal Kafka consumer error; draining and exiting");
                        self.fatal = Some(format!("{code}: {reason}"));
                        self.cancel.cancel();
                    }
                    return;
                }
                tracing::warn!(error = %e, "kafka receive error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// A consumed record: invalid ones are dead-lettered, valid ones go to every stream of
    /// their org that takes them (`only`: a replayed dead letter goes to its stream alone).
    async fn on_message(
        &mut self,
        partition: i32,
        offset: i64,
        parsed: Result<Box<TopicEvent>, (String, Vec<u8>)>,
        only: Option<String>,
    ) {
        let metrics = &self.services.metrics;
        metrics.consumed.inc();
        self.watermarks.track(partition, offset);
        let event = match parsed {
            Ok(event) => event,
            Err((error, payload)) => return self.invalid(partition, offset, &payload, error).await,
        };
        if !event.event_type.is_known() {
            metrics.unknown_event_types.inc();
        }
        // One job per stream that takes the event; the offset is finished once every copy is.
        // (Counted first, so the common case of one stream copies and allocates nothing.)
        let streams = self.services.settings.streams(event.org_id());
        let takes = |(key, rt): &&(StreamKey, Arc<OrgRuntime>)| {
            only.as_deref().is_none_or(|s| key.stream() == s)
                && rt.settings.selects(event.event_type, event.flow_id())
        };
        let all = streams.as_ref().map_or(&[][..], |s| &s.streams[..]);
        let copies = all.iter().filter(takes).count();
        if copies == 0 {
            metrics.filtered.inc();
            if metrics.org_labels_on() {
                let key = StreamKey::new(event.org_id(), els_model::settings::DEFAULT_STREAM);
                metrics.org_event(&key, crate::metrics::OrgOutcome::Filtered, 1);
            }
            return self.finish_offset(partition, offset);
        }
        self.watermarks.add_copies(partition, offset, copies - 1);
        let keys: Vec<StreamKey> = if copies == 1 {
            Vec::new()
        } else {
            all.iter().filter(takes).map(|(k, _)| k.clone()).collect()
        };
        let first = all.iter().find(takes).map(|(k, _)| k.clone());
        let Some(first) = first else { return };
        for key in keys.into_iter().skip(1) {
            let job = Job {
                event: event.clone(),
                stream: key,
                origin: Origin::Kafka { partition, offset },
            };
            self.route_job(job).await;
        }
        let job = Job {
            event,
            stream: first,
            origin: Origin::Kafka { partition, offset },
        };
        self.route_job(job).await;
    }

    /// Queue a job consumed from Kafka on its stream's worker, or park it, or (held events at
    /// the quota) dead-letter it.
    async fn route_job(&mut self, job: Job) {
        let (partition, offset) = (job.origin.partition(), job.origin.offset());
        let streams = &self.services.streams;
        if streams.holds(job.stream.as_str()) {
            let (events, bytes) = self.park.held(job.stream.as_str());
            let knobs = &streams.knobs;
            if events >= knobs.hold_max_events || bytes >= knobs.hold_max_bytes {
                return self.over_quota(job).await;
            }
        }
        let holding = streams.holds(job.stream.as_str());
        let routed = route::route(
            &mut self.dispatcher,
            &mut self.park,
            job,
            self.park_after,
            holding,
        );
        if let Err(ParkFailed { job, error }) = routed.await {
            // Cannot park: the event stays unfinished (its offset is never stored) and will
            // be redelivered after a restart. Readiness reports the store failure.
            self.services.store_failed();
            let key = &job.stream;
            tracing::error!(error = %error, org_id = key.org(), stream = key.stream(), partition, offset, "parking failed; offset held back");
        }
    }

    /// An event of a paused stream whose held events are at the stream's quota: dead-lettered
    /// `quota_exceeded` (counted, replayable), never dropped.
    async fn over_quota(&mut self, job: Job) {
        let (partition, offset) = (job.origin.partition(), job.origin.offset());
        let attempt = super::retry::Attempt {
            verdict: super::retry::Verdict::Permanent,
            status: None,
            detail: "the stream is paused and its held events are at the org's quota".into(),
        };
        let finished =
            worker::dead_letter(&self.engine, vec![job], Reason::QuotaExceeded, 0, &attempt);
        finished.await;
        tracing::debug!(partition, offset, "held events at quota; dead-lettered");
    }

    /// Jobs a paused stream's worker handed back: held in the park store (those consumed
    /// from Kafka are parked; parked ones wait again, first in line).
    fn on_held(&mut self, jobs: Vec<Job>) {
        for job in jobs {
            match job.origin {
                Origin::Kafka { partition, offset } => {
                    if let Err(e) = self.park.park(&job.stream, &job.event, partition, offset) {
                        // Its offset stays unfinished: redelivered after a restart.
                        self.services.store_failed();
                        tracing::error!(error = %e, org_id = job.stream.org(), stream = job.stream.stream(), partition, offset, "holding an event failed; offset held back");
                    }
                }
                Origin::Parked(at) => self.park.give_back(job.stream.as_str(), at.key),
            }
        }
    }

    async fn invalid(&mut self, partition: i32, offset: i64, payload: &[u8], error: String) {
        let record = DeadLetterV1::invalid_event(partition, offset, payload, error);
        tracing::warn!(
            partition,
            offset,
            "invalid event on the topic; dead-lettering"
        );
        if worker::store_durably(&self.engine, vec![record]).await {
            self.services
                .metrics
                .dead_lettered
                .with_label_values(&[Reason::InvalidEvent.as_str()])
                .inc();
            self.finish_offset(partition, offset);
        }
    }

    fn on_done_all(&mut self, done: Vec<Done>) {
        for d in done {
            self.on_done(d);
        }
    }

    fn on_done(&mut self, done: Done) {
        match done.origin {
            Origin::Kafka { partition, offset } => self.finish_offset(partition, offset),
            Origin::Parked(at) => {
                if let Err(e) = self.park.complete(&at.key, at.partition, at.offset) {
                    tracing::warn!(error = %e, "could not remove a finished parked record; it may be redelivered");
                }
            }
        }
    }

    fn finish_offset(&mut self, partition: i32, offset: i64) {
        if self.watermarks.finish(partition, offset).is_some() {
            self.dirty.insert(partition);
        }
    }

    async fn flush_park(&mut self) {
        let flushed = self.park.flush().await;
        self.on_flushed(flushed);
    }

    fn on_flushed(&mut self, flushed: Flushed) {
        let Flushed {
            done,
            failed,
            error,
        } = flushed;
        let finished = !done.is_empty();
        for d in done {
            self.on_done(d);
        }
        let Some(e) = error else {
            if finished {
                self.services.store_ok();
            }
            return;
        };
        // A failed changelog write leaves its offsets unfinished (redelivered after a
        // restart); the events themselves are still delivered from the park tree.
        if self.services.store_failed() {
            let what = if failed > 0 {
                "writing parked events to the state topic failed"
            } else {
                "park flush failed"
            };
            tracing::error!(error = %e, offsets = failed, "{what}; offsets held back");
        }
    }

    async fn housekeeping(&mut self) {
        self.flush_park().await;
        route::resume_parked(
            &mut self.dispatcher,
            &mut self.park,
            &self.services.streams,
            &self.services.settings,
        )
        .await;
        self.dispatcher.reap();
        self.store_offsets();
        let m = &self.services.metrics;
        m.in_flight.set(self.watermarks.in_flight() as i64);
        m.parked.set(self.park.stored() as i64);
    }

    /// Store the committable position of every partition we still own.
    fn store_offsets(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in self.watermarks.committable() {
            if self.dirty.contains(&partition) && self.watermarks.owns(partition) {
                let _ = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next));
            }
        }
        self.dirty.clear();
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // Typically a partition revoked a moment ago: nothing to store for it any more.
            tracing::debug!(error = %e, "storing offsets failed");
        }
    }
}

/// `ClientConfig::set` only when `cond` holds.
trait SetIf {
    fn set_if(&mut self, cond: bool, key: &str, value: &str) -> &mut Self;
}

impl SetIf for ClientConfig {
    fn set_if(&mut self, cond: bool, key: &str, value: &str) -> &mut Self {
        if cond {
            self.set(key, value);
        }
        self
    }
}

/// Header on a replayed dead letter naming the stream it was dead-lettered for: only that
/// stream gets it again (the org's other streams had delivered it).
pub const REPLAY_STREAM_HEADER: &str = "els-stream";

/// The stream a replayed record is for, if it is one.
fn replayed_for(m: &BorrowedMessage<'_>) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == REPLAY_STREAM_HEADER)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}
