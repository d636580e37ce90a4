//! The cluster-wide dead-letter view: one assign-only consumer (no group, no commits) on every
//! partition of the state topic, from the beginning, for as long as the instance runs. It
//! applies `dead/*` records and tombstones to the local dead-letter tree (`park/*` records are
//! not its business) and signals once it has reached the high watermarks measured at start,
//! so the admin API never answers from a partial view.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Key;
use crate::config::Config;
use crate::error::ConsumerError;
use crate::metrics::{ChangelogKind, Metrics};
use crate::state::record::dead_letter_id_in;
use crate::state::DeadLetters;

/// Start following on a thread of its own until `stop`. The local dead-letter tree is emptied
/// first: the changelog is the truth (a record removed elsewhere while this instance was down
/// may have been compacted away, tombstone and all).
pub fn spawn(
    config: &Config,
    dead_letters: DeadLetters,
    metrics: Metrics,
    synced: watch::Sender<bool>,
    stop: CancellationToken,
) -> Result<(), ConsumerError> {
    let topic = config.state_topic.clone();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set(
            "group.id",
            format!("els-state-view-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "100")
        .set("client.id", "els-consumer-state-view")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut targets = HashMap::new();
    for &p in &partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        let (low, high) = super::watermarks(&consumer, &topic, p, Duration::from_secs(30))?;
        if high > low {
            targets.insert(p, high);
        }
    }
    let cleared = dead_letters.clear_view()?;
    consumer.assign(&tpl)?;
    tracing::info!(topic = %topic, partitions = partitions.len(), cleared, "following dead letters in the state topic");
    let mut follower = Follower {
        consumer,
        topic,
        dead_letters,
        metrics,
        targets,
        synced,
        started: Instant::now(),
        applied: 0,
    };
    follower.check_synced();
    std::thread::Builder::new()
        .name("els-state-view".into())
        .spawn(move || follower.run(stop))?;
    Ok(())
}

struct Follower {
    consumer: BaseConsumer,
    topic: String,
    dead_letters: DeadLetters,
    metrics: Metrics,
    /// Partitions not yet read to the high watermark of start-up.
    targets: HashMap<i32, i64>,
    synced: watch::Sender<bool>,
    started: Instant,
    applied: usize,
}

impl Follower {
    fn run(mut self, stop: CancellationToken) {
        let mut last_error: Option<Instant> = None;
        while !stop.is_cancelled() {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    if self.apply(&m) {
                        self.applied += 1;
                    }
                    let (p, next) = (m.partition(), m.offset() + 1);
                    if self.targets.get(&p).is_some_and(|&high| next >= high) {
                        self.targets.remove(&p);
                        self.check_synced();
                    }
                }
                // Logged at most every 30 s: librdkafka reconnects by itself.
                Some(Err(e))
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) =>
                {
                    tracing::warn!(error = %e, topic = %self.topic, "reading the state topic");
                    last_error = Some(Instant::now());
                }
                Some(Err(_)) => {}
                None if !self.targets.is_empty() => {
                    super::reached_by_position(&self.consumer, &mut self.targets);
                    self.check_synced();
                }
                None => {}
            }
        }
    }

    fn check_synced(&mut self) {
        if self.targets.is_empty() && !*self.synced.borrow() {
            self.synced.send_replace(true);
            tracing::info!(
                topic = %self.topic,
                applied = self.applied,
                dead_letters = self.dead_letters.count(),
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "dead letters of every instance read from the state topic"
            );
        }
    }

    /// Apply a `dead/*` record; true when it was a live record.
    fn apply(&self, m: &BorrowedMessage<'_>) -> bool {
        let Some(Key::Dead {
            partition,
            offset,
            slot,
        }) = m.key().and_then(Key::parse)
        else {
            return false;
        };
        let Some(id) = dead_letter_id_in(slot, partition, offset) else {
            return false;
        };
        // A value that does not decode is kept in the view all the same (reported there).
        match self.dead_letters.apply_changelog(id, m.payload()) {
            Ok(_readable) => {
                self.metrics
                    .dead_letters
                    .set(self.dead_letters.count() as i64);
                let live = m.payload().is_some();
                if live {
                    self.metrics.changelog_restored(ChangelogKind::Dead, 1);
                }
                live
            }
            Err(e) => {
                tracing::error!(partition, offset, error = %e, "skipping a dead-letter record of the state topic");
                false
            }
        }
    }
}
