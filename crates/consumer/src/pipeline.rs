//! The consume loop: Kafka -> parse -> filter -> per-org queue (or park) -> workers, and back:
//! completions advance per-partition watermarks, and only watermarks are stored as offsets
//! (`enable.auto.offset.store=false`; librdkafka's auto-commit commits what we stored).
//!
//! The loop uses a `biased` select so completions are handled before new messages, and stops
//! reading while `max_in_flight` events are unfinished.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use els_model::topic::TopicEvent;
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::{Dispatcher, Rejected};
use crate::dlq::{DeadLetterV1, Reason, Store};
use crate::error::ConsumerError;
use crate::metrics::Metrics;
use crate::park::Park;
use crate::settings::SettingsStore;
use crate::sink::Sink;
use crate::watermark::Watermarks;
use crate::worker::{self, Done, Job, Origin, Shared};

/// Partition ownership as told by rebalance callbacks (they run inside the client's poll).
#[derive(Default)]
pub struct Ownership {
    assigned: Mutex<BTreeSet<i32>>,
    revoked: Mutex<Vec<i32>>,
    /// Set with `revoked`, so the consume loop checks a flag per message, not a lock.
    any_revoked: AtomicBool,
}

impl Ownership {
    pub fn assigned(&self) -> Vec<i32> {
        self.assigned
            .lock()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default()
    }

    fn take_revoked(&self) -> Vec<i32> {
        if !self.any_revoked.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

pub struct Context {
    ownership: Arc<Ownership>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions revoked");
            if let Ok(mut a) = self.ownership.assigned.lock() {
                for p in &parts {
                    a.remove(p);
                }
            }
            if let Ok(mut r) = self.ownership.revoked.lock() {
                r.extend(parts);
            }
            self.ownership.any_revoked.store(true, Ordering::Release);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions assigned");
            if let Ok(mut a) = self.ownership.assigned.lock() {
                a.extend(parts);
            }
        }
    }
}

/// Shared state the admin API reads.
pub struct Status {
    pub ownership: Arc<Ownership>,
    pub shared: Arc<Shared>,
}

impl Status {
    pub fn ready(&self) -> bool {
        !self.ownership.assigned().is_empty() && !self.shared.store_failing.load(Ordering::Relaxed)
    }
}

/// Build everything the loop needs; returns the status handle for the admin API.
pub fn prepare(
    config: &Config,
    settings: SettingsStore,
    store: Store,
    metrics: Metrics,
) -> Result<(Arc<Status>, mpsc::UnboundedReceiver<Vec<Done>>), ConsumerError> {
    let sink = Sink::new(
        Duration::from_millis(config.request_timeout_ms),
        config.gzip,
        metrics.clone(),
    )
    .map_err(|e| ConsumerError::Config(format!("http client: {e}")))?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        requests: tokio::sync::Semaphore::new(config.max_concurrent_requests),
        settings,
        sink,
        store,
        metrics,
        policy: config.retry_policy(),
        batch_max_bytes: config.batch_max_bytes,
        batch_max_events: config.batch_max_events,
        linger: Duration::from_millis(config.batch_linger_ms),
        idle: Duration::from_millis(config.org_idle_ms.max(1000)),
        done: done_tx,
        hard_stop: CancellationToken::new(),
        store_failing: Default::default(),
        store_failing_since: Default::default(),
    });
    Ok((
        Arc::new(Status {
            ownership: Arc::new(Ownership::default()),
            shared,
        }),
        done_rx,
    ))
}

struct Loop {
    consumer: Arc<StreamConsumer<Context>>,
    topic: String,
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
    park: Park,
    watermarks: Watermarks,
    ownership: Arc<Ownership>,
    /// Partitions whose watermark advanced since offsets were last stored.
    dirty: HashSet<i32>,
    /// How long a full org queue may hold up reading before its events are parked.
    park_after: Duration,
}

/// Run until `cancel`, then drain within the grace period, store offsets and commit.
pub async fn run(
    config: Config,
    status: Arc<Status>,
    mut done_rx: mpsc::UnboundedReceiver<Vec<Done>>,
    cancel: CancellationToken,
) -> Result<(), ConsumerError> {
    let consumer: StreamConsumer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("client.id", "els-consumer")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // Brokers may hold a fetch this long when there is no data; keep latency low.
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        .set_if(
            !config.instance_id.is_empty(),
            "group.instance.id",
            &config.instance_id,
        )
        .create_with_context(Context {
            ownership: status.ownership.clone(),
        })?;
    consumer.subscribe(&[&config.topic])?;
    let consumer = Arc::new(consumer);
    let shared = status.shared.clone();
    let park = Park::open(&shared.store)?;
    let mut lp = Loop {
        consumer: consumer.clone(),
        topic: config.topic.clone(),
        dispatcher: Dispatcher::new(shared.clone(), config.org_queue_capacity),
        shared: shared.clone(),
        park,
        watermarks: Watermarks::default(),
        ownership: status.ownership.clone(),
        dirty: HashSet::new(),
        park_after: Duration::from_millis(config.park_after_ms),
    };
    let lag_task = tokio::spawn(report_lag(
        consumer.clone(),
        config.topic.clone(),
        status.ownership.clone(),
        shared.metrics.clone(),
        cancel.clone(),
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(topic = %config.topic, group = %config.group_id, "consuming");
    loop {
        lp.apply_revocations();
        let can_read = lp.watermarks.in_flight() < config.max_in_flight;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(done) = done_rx.recv() => lp.on_done_all(done),
            _ = tick.tick() => lp.housekeeping().await,
            msg = consumer.recv(), if can_read => {
                lp.on_received(msg).await;
                // Messages librdkafka already fetched are taken in a burst, without a trip
                // through the select for each (completions wait for the burst's end).
                for _ in 0..BURST {
                    if lp.watermarks.in_flight() >= config.max_in_flight {
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
    let dispatcher = std::mem::replace(&mut lp.dispatcher, Dispatcher::new(shared.clone(), 1));
    let mut closing = tokio::spawn(dispatcher.close());
    loop {
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => lp.on_done_all(done),
            _ = &mut closing => break,
            _ = tokio::time::sleep_until(deadline), if !shared.hard_stop.is_cancelled() => {
                tracing::warn!("grace period over; leaving unfinished events for redelivery");
                shared.hard_stop.cancel();
            }
        }
    }
    while let Ok(done) = done_rx.try_recv() {
        lp.on_done_all(done);
    }
    lp.flush_park().await;
    lp.store_offsets();
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
    tracing::info!("consumer stopped");
    Ok(())
}

/// Most messages taken per burst (see the consume loop).
const BURST: usize = 64;

impl Loop {
    /// Forget partitions revoked by a rebalance. Rebalance callbacks run inside the poll that
    /// returned `msg`, so this runs before any message is tracked: a message from a partition
    /// assigned again in the same poll starts a fresh watermark instead of joining (and later
    /// being dropped with) the revoked one.
    fn apply_revocations(&mut self) {
        for p in self.ownership.take_revoked() {
            self.watermarks.revoke(p);
            self.dirty.remove(&p);
        }
    }

    async fn on_received(&mut self, msg: Result<BorrowedMessage<'_>, KafkaError>) {
        self.apply_revocations();
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
                drop(m);
                self.on_message(partition, offset, parsed).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka receive error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn on_message(
        &mut self,
        partition: i32,
        offset: i64,
        parsed: Result<Box<TopicEvent>, (String, Vec<u8>)>,
    ) {
        let metrics = &self.shared.metrics;
        metrics.consumed.inc();
        self.watermarks.track(partition, offset);
        let event = match parsed {
            Ok(event) => event,
            Err((error, payload)) => return self.invalid(partition, offset, &payload, error).await,
        };
        let selected = self
            .shared
            .settings
            .get(event.org_id())
            .is_some_and(|rt| rt.settings.selects(event.event_type, event.flow_id()));
        if !selected {
            metrics.filtered.inc();
            metrics.org_event(event.org_id(), crate::metrics::OrgOutcome::Filtered, 1);
            return self.finish_offset(partition, offset);
        }
        let job = Job {
            event,
            origin: Origin::Kafka { partition, offset },
        };
        let job = if self.park.has_waiting(job.event.org_id()) {
            job
        } else {
            match self.dispatcher.dispatch_within(job, self.park_after).await {
                Ok(()) => return,
                Err(job) => job,
            }
        };
        let org = job.event.org_id().to_string();
        if let Err(e) = self.park.park(job) {
            // Cannot park: the event stays unfinished (its offset is never stored) and will
            // be redelivered after a restart. Readiness reports the store failure.
            self.shared.store_failed();
            tracing::error!(error = %e, org_id = %org, "parking failed; offset held back");
        }
    }

    async fn invalid(&mut self, partition: i32, offset: i64, payload: &[u8], error: String) {
        let raw = serde_json::from_slice(payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
        });
        let now = chrono::Utc::now();
        let record = DeadLetterV1 {
            id: 0,
            org_id: raw
                .get("org_id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            event: raw,
            reason: Reason::InvalidEvent,
            attempts: 0,
            last_status: None,
            last_error: error,
            first_failed_at: now,
            last_failed_at: now,
            partition,
            offset,
        };
        tracing::warn!(
            partition,
            offset,
            "invalid event on the topic; dead-lettering"
        );
        if worker::store_durably(&self.shared, vec![record]).await {
            self.shared
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
            Origin::Parked { key } => {
                if let Err(e) = self.park.complete(&key) {
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
        match self.park.flush().await {
            Ok(done) => {
                for d in done {
                    self.on_done(d);
                }
            }
            Err(e) => {
                if self.shared.store_failed() {
                    tracing::error!(error = %e, "park flush failed; offsets held back");
                }
            }
        }
    }

    async fn housekeeping(&mut self) {
        self.flush_park().await;
        // Hand parked events back to orgs whose queues have room.
        for org in self.park.orgs_waiting() {
            let room = self.dispatcher.room(&org);
            if room == 0 {
                continue;
            }
            match self.park.take(&org, room) {
                Ok(jobs) => {
                    for job in jobs {
                        if let Err(Rejected::Full(job)) = self.dispatcher.try_dispatch(job) {
                            // Cannot happen (we are the only sender), but never drop a job.
                            self.dispatcher.dispatch(*job).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, org_id = %org, "reading parked events failed")
                }
            }
        }
        self.dispatcher.reap();
        self.store_offsets();
        let m = &self.shared.metrics;
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

/// Every few seconds: consumer lag per owned partition (high watermark - committed).
async fn report_lag(
    consumer: Arc<StreamConsumer<Context>>,
    topic: String,
    ownership: Arc<Ownership>,
    metrics: crate::metrics::Metrics,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let parts = ownership.assigned();
        let c = consumer.clone();
        let t = topic.clone();
        let lags = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in &parts {
                tpl.add_partition(&t, *p);
            }
            let committed = c.committed_offsets(tpl, Duration::from_secs(2)).ok();
            parts
                .iter()
                .filter_map(|p| {
                    let (_, high) = c.fetch_watermarks(&t, *p, Duration::from_secs(2)).ok()?;
                    let pos = committed
                        .as_ref()
                        .and_then(|tpl| tpl.find_partition(&t, *p))
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .unwrap_or(0);
                    Some((*p, (high - pos).max(0)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        metrics.lag.reset();
        for (p, lag) in lags {
            metrics.lag.with_label_values(&[&p.to_string()]).set(lag);
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

/// Where the store lives.
pub fn data_path(config: &Config) -> PathBuf {
    PathBuf::from(&config.data_dir)
}
