//! The Kafka side of tokens and audit: create a topic (compacted for tokens), write a record
//! and wait for the ack, and follow every partition from the beginning on a thread of its
//! own (an assign-only consumer: no group, no commits), first to the end of the topic as it
//! stands at start ([`follow`] returns then), then continuously. The same pattern as the
//! settings topic (`settings::topic`), for records that carry no secret material.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::error::ConsumerError;
use crate::producer::{self, WriteTimeout};

const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

fn topic_error(topic: &str, what: impl std::fmt::Display) -> ConsumerError {
    ConsumerError::AccessTopic(format!("topic {topic}: {what}"))
}

/// Create `topic` with one partition if it is missing; `compact` sets `cleanup.policy=compact`.
pub async fn ensure_topic(
    brokers: &str,
    topic: &str,
    replication: i32,
    compact: bool,
) -> Result<(), ConsumerError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(replication));
    if compact {
        new = new.set("cleanup.policy", "compact");
    }
    let outcome = admin.create_topics([&new], &options).await?;
    match outcome.first() {
        Some(Ok(_)) => {
            tracing::info!(topic, compact, "created topic");
            Ok(())
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(()),
        Some(Err((_, code))) => Err(topic_error(topic, format!("creating it: {code}"))),
    }
}

/// An idempotent producer (`acks=all`) for one topic; each write is awaited.
pub struct TopicWriter {
    producer: FutureProducer,
    topic: String,
}

impl TopicWriter {
    pub fn new(brokers: &str, topic: &str) -> Result<Self, ConsumerError> {
        let producer = producer::shared(brokers, WriteTimeout::Request)?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Write `payload` (`None`: a tombstone) under `key` and wait for Kafka's ack.
    pub async fn write(&self, key: &str, payload: Option<&[u8]>) -> Result<(), ConsumerError> {
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(key);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        self.producer
            .send(record, Timeout::After(WRITE_TIMEOUT))
            .await
            .map_err(|(e, _)| topic_error(&self.topic, format!("writing {key}: {e}")))?;
        Ok(())
    }
}

/// Read `topic` from the beginning into `apply(key, payload)`: to its current end before
/// returning, then on a thread until `stop`. Records without a UTF-8 key are skipped.
pub async fn follow<F>(
    brokers: &str,
    topic: &str,
    apply: F,
    stop: CancellationToken,
) -> Result<(), ConsumerError>
where
    F: FnMut(&str, Option<&[u8]>) + Send + 'static,
{
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Required by the client, never joined or committed: partitions are assigned.
        .set(
            "group.id",
            format!("els-follow-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let name = topic.to_string();
    let (consumer, apply) = tokio::task::spawn_blocking(move || {
        let mut apply = apply;
        catch_up(&consumer, &name, &mut apply).map(|()| (consumer, apply))
    })
    .await
    .map_err(|e| topic_error(topic, format!("reader task: {e}")))??;
    let name = topic.to_string();
    std::thread::Builder::new()
        .name(format!("els-follow-{topic}"))
        .spawn(move || run(&consumer, &name, apply, &stop))?;
    Ok(())
}

fn deliver<F: FnMut(&str, Option<&[u8]>)>(message: &impl Message, apply: &mut F) {
    match message.key().map(std::str::from_utf8) {
        Some(Ok(key)) => apply(key, message.payload()),
        _ => tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            "skipping a record without a UTF-8 key"
        ),
    }
}

fn catch_up<F: FnMut(&str, Option<&[u8]>)>(
    consumer: &BaseConsumer,
    topic: &str,
    apply: &mut F,
) -> Result<(), ConsumerError> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let partitions: Vec<i32> = loop {
        let found: Vec<i32> = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            })
            .unwrap_or_default();
        if !found.is_empty() {
            break found;
        }
        if Instant::now() > deadline {
            return Err(topic_error(topic, "no partitions"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    let mut targets: HashMap<i32, i64> = HashMap::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            targets.insert(p, high);
        }
    }
    consumer.assign(&tpl)?;
    while !targets.is_empty() {
        if Instant::now() > deadline {
            return Err(topic_error(topic, "not read to its end in time"));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                deliver(&message, apply);
                let (p, next) = (message.partition(), message.offset() + 1);
                if targets.get(&p).is_some_and(|&high| next >= high) {
                    targets.remove(&p);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, topic, "reading topic"),
            None => {
                // Compaction can leave gaps: the position tells where reading stands.
                if let Ok(position) = consumer.position() {
                    for e in position.elements() {
                        if let Offset::Offset(next) = e.offset() {
                            if targets.get(&e.partition()).is_some_and(|&h| next >= h) {
                                targets.remove(&e.partition());
                            }
                        }
                    }
                }
            }
        }
    }
    tracing::info!(topic, "topic read to its end");
    Ok(())
}

fn run<F: FnMut(&str, Option<&[u8]>)>(
    consumer: &BaseConsumer,
    topic: &str,
    mut apply: F,
    stop: &CancellationToken,
) {
    let mut last_error: Option<Instant> = None;
    while !stop.is_cancelled() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => deliver(&message, &mut apply),
            // Logged at most every 30 s: librdkafka reconnects by itself.
            Some(Err(e)) if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) => {
                tracing::warn!(error = %e, topic, "reading topic");
                last_error = Some(Instant::now());
            }
            Some(Err(_)) | None => {}
        }
    }
}
