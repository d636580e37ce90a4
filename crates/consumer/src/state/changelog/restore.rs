//! Restoring parked events on assignment: read changelog partitions from the beginning to the
//! high watermark taken now, with a short-lived assign-only consumer (no group commits),
//! and return the `park/*` records still live (the last value of each key, tombstones drop
//! it). Blocking: run it on a blocking thread.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use tokio_util::sync::CancellationToken;

use super::{decode_parked, Changelog, Key};
use crate::error::ConsumerError;

/// A parked event read back from the changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub partition: i32,
    pub offset: i64,
    /// The stream it was parked for (encoded [`crate::streams::StreamKey`]).
    pub stream: String,
    /// The event's JSON text, as parked.
    pub event: String,
}

/// The live `park/{p}/*` records of `partitions`, in (partition, offset) order.
pub fn read_parked(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<Vec<Restored>, ConsumerError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Required by the client, never joined or committed: partitions are assigned.
        .set(
            "group.id",
            format!("els-state-restore-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "50")
        .set("client.id", "els-consumer-state-restore")
        .create()?;
    // Read up to the high watermark of now: later records are written by this instance.
    let mut targets: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = super::watermarks(&consumer, topic, p, Duration::from_secs(10))?;
        if high > low {
            targets.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let mut live: BTreeMap<(i32, i64, u8), Option<(crate::streams::StreamKey, String)>> =
        BTreeMap::new();
    let mut read = 0usize;
    if !targets.is_empty() {
        consumer.assign(&tpl)?;
    }
    while !targets.is_empty() {
        if Instant::now() > deadline {
            let mut left: Vec<i32> = targets.keys().copied().collect();
            left.sort_unstable();
            return Err(ConsumerError::Changelog(format!(
                "could not read partitions {left:?} of {topic} to their end within {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                read += 1;
                let p = m.partition();
                // A partition's parked records live in the same changelog partition.
                let key = m.key().and_then(Key::parse);
                if let Some(Key::Park {
                    partition,
                    offset,
                    slot,
                }) = key.filter(|k| matches!(k, Key::Park { partition, .. } if *partition == p))
                {
                    let value = match m.payload() {
                        None => None,
                        Some(v) => match decode_parked(v) {
                            Ok(r) => Some(r),
                            Err(why) => {
                                tracing::error!(partition, offset, %why, "skipping an unreadable parked record in the state topic");
                                None
                            }
                        },
                    };
                    live.insert((partition, offset, slot), value);
                }
                if targets.get(&p).is_some_and(|&high| m.offset() + 1 >= high) {
                    targets.remove(&p);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, topic, "reading the state topic"),
            // Nothing more for now: compaction can leave gaps, the position tells.
            None => super::reached_by_position(&consumer, &mut targets),
        }
    }
    let restored: Vec<Restored> = live
        .into_iter()
        .filter_map(|((partition, offset, _), v)| {
            v.map(|(stream, event)| Restored {
                partition,
                offset,
                stream: stream.as_str().to_string(),
                event,
            })
        })
        .collect();
    tracing::info!(
        topic,
        partitions = ?partitions,
        records_read = read,
        parked = restored.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "parked events restored from the state topic"
    );
    Ok(restored)
}

/// [`read_parked`] on a blocking thread, retried every second (each try bounded by `timeout`,
/// each failure logged) until it works; `None` when `cancel` fires first.
pub async fn read_until_done(
    changelog: &Changelog,
    partitions: &[i32],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Option<Vec<Restored>> {
    loop {
        let read = tokio::select! {
            r = changelog.read_parked(partitions.to_vec(), timeout) => r,
            _ = cancel.cancelled() => return None,
        };
        match read {
            Ok(records) => return Some(records),
            Err(e) => tracing::error!(
                partitions = ?partitions,
                topic = %changelog.topic(),
                error = %e,
                "restoring parked events from the state topic failed; no message of these \
                 partitions is handled until it works; retrying"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}
