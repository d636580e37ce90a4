//! Lifecycle notices in Kafka: every stream state change is a JSON record
//! ([`StreamNotice`], keyed by org) in the `els.stream-events` topic (created with one
//! partition and 30 days' retention when missing). At start the topic is read to its end, so
//! a paused stream is paused again after a restart or on another instance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use els_api::status::StreamNotice;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::ConsumerError;
use crate::producer::{self, WriteTimeout};

/// How long the start-up read of the topic may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Retention of the topic when ELS creates it.
const RETENTION_MS: &str = "2592000000";

/// Writes notices to the topic (fire and forget: a lost notice loses history, not events).
pub struct NoticeSink {
    producer: FutureProducer,
    topic: String,
}

impl NoticeSink {
    pub fn send(&self, notice: &StreamNotice) {
        let Ok(payload) = serde_json::to_vec(notice) else {
            return;
        };
        let record = FutureRecord::to(&self.topic)
            .key(notice.org.as_bytes())
            .payload(&payload);
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::warn!(error = %e, org_id = %notice.org, "could not write a stream notice");
        }
    }
}

/// Create the topic when missing, read its notices (oldest first), and open the sink.
pub async fn start(config: &Config) -> Result<(NoticeSink, Vec<StreamNotice>), ConsumerError> {
    let topic = config.stream_events_topic.clone();
    ensure_topic(config, &topic).await?;
    let producer = producer::shared(&config.brokers, WriteTimeout::Background)?;
    let brokers = config.brokers.clone();
    let read_topic = topic.clone();
    let notices = tokio::task::spawn_blocking(move || read_all(&brokers, &read_topic))
        .await
        .map_err(|e| ConsumerError::Changelog(format!("reading {topic}: {e}")))??;
    tracing::info!(topic = %topic, notices = notices.len(), "stream notices read");
    Ok((NoticeSink { producer, topic }, notices))
}

async fn ensure_topic(config: &Config, topic: &str) -> Result<(), ConsumerError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()?;
    let new =
        NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("retention.ms", RETENTION_MS);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match admin.create_topics([&new], &options).await?.first() {
        Some(Ok(_)) => tracing::info!(topic, "created the stream notices topic"),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {}
        Some(Err((_, code))) => {
            return Err(ConsumerError::Changelog(format!(
                "creating topic {topic}: {code}"
            )))
        }
    }
    Ok(())
}

/// Every notice in the topic, oldest first per partition. Blocking.
fn read_all(brokers: &str, topic: &str) -> Result<Vec<StreamNotice>, ConsumerError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("els-stream-events-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let deadline = Instant::now() + READ_TIMEOUT;
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
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut targets: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) =
            crate::state::changelog::watermarks(&consumer, topic, p, Duration::from_secs(30))?;
        if high > low {
            targets.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let mut notices = Vec::new();
    if targets.is_empty() {
        return Ok(notices);
    }
    consumer.assign(&tpl)?;
    while !targets.is_empty() {
        if Instant::now() > deadline {
            return Err(ConsumerError::Changelog(format!(
                "could not read {topic} to its end within {READ_TIMEOUT:?}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let (p, offset) = (message.partition(), message.offset());
        match message
            .payload()
            .map(serde_json::from_slice::<StreamNotice>)
        {
            Some(Ok(notice)) => notices.push(notice),
            _ => tracing::warn!(partition = p, offset, "unreadable stream notice skipped"),
        }
        if targets.get(&p).is_some_and(|high| offset + 1 >= *high) {
            targets.remove(&p);
        }
    }
    Ok(notices)
}
