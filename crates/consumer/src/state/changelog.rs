//! The state changelog: state that outlives an instance, the way Kafka Streams backs its state
//! stores. sled stays the local store; every record that stands for a finished offset is also
//! written to a compacted topic (`state_topic`) before that offset is finished.
//!
//! - Layout: one changelog partition per events-topic partition (a record goes to the
//!   partition of the event it stands for), so a partition's state is one changelog partition.
//!   Keys name the input offset: `park/{p}/{o}` (a parked event) and `dead/{p}/{o}` (a dead
//!   letter, id [`crate::state::record::dead_letter_id`]); values are versioned JSON records; removal is
//!   a tombstone. A redelivered event rewrites the same key, so compaction de-duplicates.
//! - Writes ([`Changelog`]): one idempotent producer (`acks=all`). Park writes are awaited by
//!   [`crate::delivery::park::Park::flush`] before their offsets are finished; dead-letter writes and
//!   removals are awaited by [`crate::state::DeadLetters`]; park tombstones are fire-and-forget (a lost
//!   one only causes a duplicate delivery later).
//! - [`restore`]: when partitions are assigned, their `park/*` records are read to the high
//!   watermark into the local park tree before any of their messages is handled.
//! - [`follower`]: every instance follows all partitions for `dead/*` records, so each
//!   instance's dead-letter tree is a view of the whole cluster's dead letters.
//! - [`adopt`]: state written without the changelog (older versions) is handed over once.
//!
//! Limitation: partitions added to the events topic after start are covered after a restart
//! (the state topic is grown to match at start).

pub mod adopt;
pub mod follower;
pub mod restore;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Offset;
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ConsumerError;
use crate::metrics::{ChangelogKind, Metrics};
use crate::producer::{self, WriteTimeout};
use crate::streams::StreamKey;
use els_model::settings::DEFAULT_STREAM;

/// What a changelog key names: the input offset a record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Park {
        partition: i32,
        offset: i64,
        slot: u8,
    },
    /// `slot` is the dead letter's id's stream slot ([`crate::state::record::dead_letter_id`]).
    Dead {
        partition: i32,
        offset: i64,
        slot: u8,
    },
}

impl Key {
    /// `park/{p}/{o}` or `dead/{p}/{o}` for the stream `default` (slot 0, as before streams
    /// existed), with `/{slot}` appended for the org's other streams: each stream's copy of an
    /// event has its own record.
    pub fn encode(self) -> String {
        let (kind, partition, offset, slot) = match self {
            Key::Park {
                partition,
                offset,
                slot,
            } => ("park", partition, offset, slot),
            Key::Dead {
                partition,
                offset,
                slot,
            } => ("dead", partition, offset, slot),
        };
        match slot {
            0 => format!("{kind}/{partition}/{offset}"),
            slot => format!("{kind}/{partition}/{offset}/{slot}"),
        }
    }

    pub fn parse(key: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(key).ok()?;
        let mut parts = text.split('/');
        let (kind, p, o) = (parts.next()?, parts.next()?, parts.next()?);
        let slot = match parts.next() {
            None => 0,
            Some(s) => s.parse().ok().filter(|s| *s != 0)?,
        };
        if parts.next().is_some() {
            return None;
        }
        let (partition, offset) = (p.parse().ok()?, o.parse().ok()?);
        match kind {
            "park" => Some(Key::Park {
                partition,
                offset,
                slot,
            }),
            "dead" => Some(Key::Dead {
                partition,
                offset,
                slot,
            }),
            _ => None,
        }
    }

    fn partition(self) -> i32 {
        match self {
            Key::Park { partition, .. } | Key::Dead { partition, .. } => partition,
        }
    }
}

/// The value of a `park/*` record, version 1:
/// `{"v":"1","org_id":..,"stream":..,"event":{..}}` (`stream` absent for the stream
/// `default`, as before streams existed). Written by hand around the event's JSON text (no
/// re-serialisation per parked event); read with [`decode_parked`]. (Not a
/// `#[serde(tag = "v")]` enum: a raw JSON value cannot pass through serde's internally
/// tagged enums.)
pub fn encode_parked(stream: &StreamKey, event_json: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let org = quote(stream.org());
    let named = match stream.stream() {
        DEFAULT_STREAM => String::new(),
        id => format!(r#","stream":{}"#, quote(id)),
    };
    format!(r#"{{"v":"1","org_id":{org}{named},"event":{event_json}}}"#).into_bytes()
}

#[derive(Deserialize)]
struct ParkedWire {
    v: String,
    org_id: String,
    #[serde(default)]
    stream: Option<String>,
    event: Box<serde_json::value::RawValue>,
}

/// (stream, event JSON) of a `park/*` record value.
pub fn decode_parked(value: &[u8]) -> Result<(StreamKey, String), String> {
    let wire: ParkedWire = serde_json::from_slice(value)
        .map_err(|e| format!("not a parked record ({:?} error)", e.classify()))?;
    if wire.v != "1" {
        return Err(format!("unknown parked record version {:?}", wire.v));
    }
    let stream = wire.stream.as_deref().unwrap_or(DEFAULT_STREAM);
    Ok((
        StreamKey::new(&wire.org_id, stream),
        wire.event.get().to_string(),
    ))
}

/// The producer of the state topic, and what the readers need to find it.
pub struct Changelog {
    producer: FutureProducer,
    topic: String,
    brokers: String,
    /// Partitions of the state topic (= the events topic's at start).
    partitions: i32,
    metrics: Metrics,
    /// True once the dead-letter [`follower`] read every partition to the high watermarks
    /// measured at start.
    synced: watch::Receiver<bool>,
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Changelog {
    /// Create the state topic if missing (or grow it to the events topic's partitions) and
    /// the producer. The returned sender is the dead-letter follower's "caught up" signal.
    pub async fn start(
        config: &Config,
        metrics: Metrics,
    ) -> Result<(Arc<Self>, watch::Sender<bool>), ConsumerError> {
        let partitions = ensure_topic(config).await?;
        let producer = producer::shared(&config.brokers, WriteTimeout::Background)?;
        let (tx, rx) = watch::channel(false);
        tracing::info!(topic = %config.state_topic, partitions, "state changelog ready");
        let changelog = Self {
            producer,
            topic: config.state_topic.clone(),
            brokers: config.brokers.clone(),
            partitions,
            metrics,
            synced: rx,
        };
        Ok((Arc::new(changelog), tx))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The changelog partition of a record (ids outside the scheme, from older versions, go to
    /// partition 0; readers go by key, not partition).
    fn partition_of(&self, key: Key) -> i32 {
        let p = key.partition();
        if (0..self.partitions).contains(&p) {
            p
        } else {
            0
        }
    }

    /// Produce `key` = `value` (`None`: a tombstone) without waiting for the ack.
    pub fn send(&self, key: Key, value: Option<&[u8]>) -> Result<DeliveryFuture, ConsumerError> {
        let text = key.encode();
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
            .key(&text)
            .partition(self.partition_of(key));
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.producer
            .send_result(record)
            .map_err(|(e, _)| ConsumerError::Changelog(format!("writing {text}: {e}")))
    }

    /// Await one write's acknowledgement, counting it as `kind`.
    pub async fn acked(
        &self,
        kind: ChangelogKind,
        delivery: DeliveryFuture,
    ) -> Result<(), ConsumerError> {
        let outcome = outcome(delivery.await);
        self.metrics.changelog_write(kind, outcome.is_ok(), 1);
        outcome
    }

    /// Wait up to `timeout` for the dead-letter view to have caught up; false if it has not.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.clone();
        tokio::time::timeout(timeout, rx.wait_for(|synced| *synced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Read the live `park/*` records of `partitions` (see [`restore`]).
    pub async fn read_parked(
        &self,
        partitions: Vec<i32>,
        timeout: Duration,
    ) -> Result<Vec<restore::Restored>, ConsumerError> {
        let (brokers, topic) = (self.brokers.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            restore::read_parked(&brokers, &topic, &partitions, timeout)
        })
        .await
        .map_err(|e| ConsumerError::Changelog(format!("restore task: {e}")))?
    }

    /// Give queued writes up to `timeout` to be sent (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, topic = %self.topic, "state changelog writes still queued at exit");
        }
    }
}

/// Drop from `targets` (partition -> high watermark) the partitions `consumer` has read to
/// their watermark. The position, not the last message, tells: compaction leaves gaps.
fn reached_by_position(consumer: &BaseConsumer, targets: &mut HashMap<i32, i64>) {
    let Ok(position) = consumer.position() else {
        return;
    };
    for e in position.elements() {
        if let Offset::Offset(next) = e.offset() {
            if targets
                .get(&e.partition())
                .is_some_and(|&high| next >= high)
            {
                targets.remove(&e.partition());
            }
        }
    }
}

/// A delivery future's result as ours.
pub fn outcome(
    result: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<(), ConsumerError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(ConsumerError::Changelog(e.to_string())),
        Err(_) => Err(ConsumerError::Changelog("producer gone".into())),
    }
}

/// Create the state topic if it is missing: compacted, with the events topic's partition
/// count (a partition's state is one changelog partition). An existing topic with fewer
/// partitions is grown. Returns the partition count. A broker refusing the compaction config
/// gets a plain topic and a warning (then removed records are only dropped by retention).
pub async fn ensure_topic(config: &Config) -> Result<i32, ConsumerError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("allow.auto.create.topics", "false")
        .create()?;
    let events = partition_count(&admin, &config.topic)?.ok_or_else(|| {
        ConsumerError::Changelog(format!(
            "the events topic {} does not exist (create it first: the state topic {} gets \
             its partition count)",
            config.topic, config.state_topic
        ))
    })?;
    let topic = &config.state_topic;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let replication = || TopicReplication::Fixed(config.state_topic_replication);
    match partition_count(&admin, topic)? {
        Some(have) if have >= events => return Ok(have),
        Some(have) => {
            tracing::warn!(topic = %topic, have, want = events, "growing the state topic to the events topic's partitions");
            let grow = NewPartitions::new(topic, events as usize);
            match admin.create_partitions([&grow], &options).await?.first() {
                Some(Err((_, code))) => {
                    return Err(ConsumerError::Changelog(format!(
                        "growing topic {topic} to {events} partitions: {code}"
                    )))
                }
                _ => return Ok(events),
            }
        }
        None => {}
    }
    // Segments roll hourly so compaction (which skips the active segment) keeps what a
    // restore reads close to the live records.
    let compacted = NewTopic::new(topic, events, replication())
        .set("cleanup.policy", "compact")
        .set("segment.ms", "3600000");
    let mut outcome = admin.create_topics([&compacted], &options).await?;
    if let Some(Err((_, code))) = outcome.first() {
        if *code != RDKafkaErrorCode::TopicAlreadyExists {
            tracing::warn!(topic = %topic, error = %code, "creating the compacted state topic failed; trying without cleanup.policy");
            let plain = NewTopic::new(topic, events, replication());
            outcome = admin.create_topics([&plain], &options).await?;
        }
    }
    match outcome.first() {
        Some(Ok(_)) => {
            tracing::info!(topic = %topic, partitions = events, "created the state topic");
            Ok(events)
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(events),
        Some(Err((_, code))) => Err(ConsumerError::Changelog(format!(
            "creating topic {topic}: {code}"
        ))),
    }
}

/// A partition's (low, high) watermarks, asked again (every 200 ms, up to `patience`) while
/// the broker answers with an error: right after a topic is created (or its leader moved)
/// brokers answer "not leader for partition" for a moment. Blocking.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    partition: i32,
    patience: Duration,
) -> rdkafka::error::KafkaResult<(i64, i64)> {
    use rdkafka::consumer::Consumer;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(marks) => return Ok(marks),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "watermarks not available yet; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Partitions of `topic`, `None` when it does not exist. Blocking (start-up only).
fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Option<i32>, ConsumerError> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as i32)),
        None => Ok(None),
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(ConsumerError::Changelog(format!(
            "reading metadata of topic {topic}: {}",
            RDKafkaErrorCode::from(e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_garbage() {
        for key in [
            Key::Park {
                partition: 3,
                offset: 12_345,
                slot: 0,
            },
            Key::Dead {
                partition: 0,
                offset: 0,
                slot: 0,
            },
            Key::Dead {
                partition: 1,
                offset: 7,
                slot: 200,
            },
        ] {
            assert_eq!(Key::parse(key.encode().as_bytes()), Some(key));
        }
        let park = |slot| Key::Park {
            partition: 2,
            offset: 9,
            slot,
        };
        assert_eq!(park(0).encode(), "park/2/9");
        assert_eq!(park(3).encode(), "park/2/9/3");
        for bad in [
            "park/1",
            "dead/x/1",
            "other/1/2",
            "park/1/2/0",
            "park/1/2/300",
            "park/1/2/3/4",
            "",
        ] {
            assert_eq!(Key::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn parked_records_round_trip() {
        let event = r#"{"org_id":"o\"1","event_id":"e1","n":[1,2]}"#;
        let default = StreamKey::new("o\"1", DEFAULT_STREAM);
        let value = encode_parked(&default, event);
        assert!(value.starts_with(br#"{"v":"1","org_id":"o\"1","event":{"#));
        assert_eq!(decode_parked(&value).unwrap(), (default, event.to_string()));
        let lake = StreamKey::new("o\"1", "lake");
        let value = encode_parked(&lake, event);
        assert!(value.starts_with(br#"{"v":"1","org_id":"o\"1","stream":"lake","event":{"#));
        assert_eq!(decode_parked(&value).unwrap(), (lake, event.to_string()));
        assert!(decode_parked(br#"{"v":"9","org_id":"a","event":{}}"#).is_err());
        assert!(decode_parked(b"nope").is_err());
    }

    #[test]
    fn parked_records_read_back_whatever_the_event_depth() {
        // The deepest event serde_json parses: the record around it is one level deeper.
        let event = format!(r#"{{"nest":{}{}}}"#, "[".repeat(126), "]".repeat(126));
        assert!(serde_json::from_str::<serde_json::Value>(&event).is_ok());
        let key = StreamKey::new("o", DEFAULT_STREAM);
        let value = encode_parked(&key, &event);
        assert!(serde_json::from_slice::<serde_json::Value>(&value).is_err());
        assert_eq!(decode_parked(&value).unwrap(), (key, event));
    }
}
