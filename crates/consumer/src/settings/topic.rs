//! Org settings in a compacted Kafka topic (`settings_topic`, key = org id), so every
//! consumer instance sees the same settings without a restart.
//!
//! - Records are versioned envelopes `{"v":"1","settings":{..},"updated_at":..}` whose auth
//!   header values are sealed ([`super::crypto`]); a tombstone (no payload) deletes the org.
//! - [`Writer`]: the admin API's idempotent producer (`acks=all`), each write awaited.
//! - [`Follower`]: every instance reads all partitions from the beginning with its own
//!   assign-only consumer (no group, no commits), first to the end before the pipeline starts
//!   ([`Follower::catch_up`]), then continuously ([`Follower::run`]), applying records to the
//!   [`SettingsStore`]. Invalid or undecryptable records are logged (never with secret
//!   material) and skipped.
//!
//! Limitations: partitions added to the topic after start are not read until a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use els_model::settings::OrgSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::crypto::Keyring;
use super::store::{SettingsStore, Version};
use crate::config::Config;
use crate::error::ConsumerError;
use crate::producer::{self, WriteTimeout};
use crate::streams::StreamKey;

/// How long a write may wait for Kafka's acknowledgement.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the start may take to read the topic to its end.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The persisted record, versioned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum SettingsRecord {
    #[serde(rename = "1")]
    V1(SettingsRecordV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsRecordV1 {
    /// The org's settings with every auth header value sealed for the org.
    pub settings: OrgSettings,
    pub updated_at: DateTime<Utc>,
    /// The instance that wrote it (for operators reading the topic).
    #[serde(default)]
    pub written_by: String,
}

/// The record value for `settings`, auth header values sealed for `org`.
pub fn encode(keyring: &Keyring, org: &str, settings: &OrgSettings, instance: &str) -> Vec<u8> {
    let record = SettingsRecord::V1(SettingsRecordV1 {
        settings: keyring.seal_settings(org, settings),
        updated_at: Utc::now(),
        written_by: instance.to_string(),
    });
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The clear settings in a record value for `org`. The error text is safe to log: serde's
/// message (which may quote values) is reduced to its category and position.
pub fn decode(keyring: &Keyring, org: &str, payload: &[u8]) -> Result<OrgSettings, String> {
    let record: SettingsRecord = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "not a settings record ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let SettingsRecord::V1(v1) = record;
    let mut settings = keyring
        .open_settings(org, &v1.settings)
        .map_err(|(field, e)| format!("{field} does not decrypt: {e}"))?;
    // Written before credential headers were refused as custom headers: they keep working as
    // auth headers (redacted when shown) rather than the org losing its settings.
    let moved = settings.move_credential_headers_to_auth();
    if !moved.is_empty() {
        tracing::warn!(
            org_id = org,
            headers = ?moved,
            "custom headers that carry a credential are treated as auth headers; save the \
             org's settings again to store them encrypted"
        );
    }
    Ok(settings)
}

/// Create the topic if it is missing (compacted, one partition: settings are small).
/// A broker that refuses the compaction config gets a plain topic and a warning.
pub async fn ensure_topic(config: &Config) -> Result<(), ConsumerError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let replication = || TopicReplication::Fixed(config.settings_topic_replication);
    let topic = &config.settings_topic;
    let compacted = NewTopic::new(topic, 1, replication()).set("cleanup.policy", "compact");
    let mut outcome = admin.create_topics([&compacted], &options).await?;
    if let Some(Err((_, code))) = outcome.first() {
        if *code != RDKafkaErrorCode::TopicAlreadyExists {
            tracing::warn!(topic = %topic, error = %code, "creating the compacted settings topic failed; trying without cleanup.policy");
            let plain = NewTopic::new(topic, 1, replication());
            outcome = admin.create_topics([&plain], &options).await?;
        }
    }
    match outcome.first() {
        Some(Ok(_)) => {
            tracing::info!(topic = %topic, "created the settings topic");
            Ok(())
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(()),
        Some(Err((_, code))) => Err(ConsumerError::SettingsTopic(format!(
            "creating topic {topic}: {code}"
        ))),
    }
}

/// Writes org settings to the topic.
pub struct Writer {
    producer: FutureProducer,
    topic: String,
    keyring: Arc<Keyring>,
    instance: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.topic)
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub fn new(config: &Config, keyring: Arc<Keyring>) -> Result<Self, ConsumerError> {
        let producer = producer::shared(&config.brokers, WriteTimeout::Request)?;
        Ok(Self {
            producer,
            topic: config.settings_topic.clone(),
            keyring,
            instance: config.instance_id.clone(),
        })
    }

    /// Write `settings` (`None`: a tombstone) for the stream `key` and wait for the ack;
    /// returns where the record landed. The record key is the stream key's encoded form:
    /// the bare org id for the stream `default`, as before streams existed.
    pub async fn write(
        &self,
        key: &StreamKey,
        settings: Option<&OrgSettings>,
    ) -> Result<Version, ConsumerError> {
        let org = key.org();
        let payload = settings.map(|s| encode(&self.keyring, org, s, &self.instance));
        let mut record =
            FutureRecord::<[u8], Vec<u8>>::to(&self.topic).key(key.as_str().as_bytes());
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        let delivery = self
            .producer
            .send(record, Timeout::After(WRITE_TIMEOUT))
            .await
            .map_err(|(e, _)| ConsumerError::SettingsTopic(format!("writing {org}: {e}")))?;
        tracing::info!(
            org_id = org,
            stream = key.stream(),
            partition = delivery.partition,
            offset = delivery.offset,
            deleted = settings.is_none(),
            "stream settings written to the settings topic"
        );
        Ok((delivery.partition, delivery.offset))
    }
}

/// Reads the settings topic into the store.
pub struct Follower {
    consumer: BaseConsumer,
    topic: String,
    keyring: Arc<Keyring>,
    store: SettingsStore,
}

impl Follower {
    /// An assign-only consumer on every partition of the topic, from the beginning.
    pub fn new(
        config: &Config,
        keyring: Arc<Keyring>,
        store: SettingsStore,
    ) -> Result<Self, ConsumerError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            // Required by the client, never joined or committed: partitions are assigned.
            .set(
                "group.id",
                format!("els-settings-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("client.id", "els-consumer-settings-reader")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        Ok(Self {
            consumer,
            topic: config.settings_topic.clone(),
            keyring,
            store,
        })
    }

    /// Read every partition to its end as of now; returns the org ids that have any record
    /// (tombstones included), so seeding never re-creates a deleted org. Blocking.
    pub fn catch_up(&mut self) -> Result<HashSet<String>, ConsumerError> {
        let started = Instant::now();
        let deadline = started + CATCH_UP_TIMEOUT;
        let partitions = loop {
            let metadata = self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(5));
            let found: Vec<i32> = metadata
                .ok()
                .and_then(|m| {
                    m.topics()
                        .iter()
                        .find(|t| t.name() == self.topic && t.error().is_none())
                        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                })
                .unwrap_or_default();
            if !found.is_empty() {
                break found;
            }
            if Instant::now() > deadline {
                return Err(ConsumerError::SettingsTopic(format!(
                    "topic {} has no partitions after {CATCH_UP_TIMEOUT:?}",
                    self.topic
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut tpl = TopicPartitionList::new();
        let mut targets: HashMap<i32, i64> = HashMap::new();
        for &p in &partitions {
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)?;
            let (low, high) = crate::state::changelog::watermarks(
                &self.consumer,
                &self.topic,
                p,
                Duration::from_secs(30),
            )?;
            if high > low {
                targets.insert(p, high);
            }
        }
        self.consumer.assign(&tpl)?;
        let mut seen = HashSet::new();
        let mut applied = 0usize;
        while !targets.is_empty() {
            if Instant::now() > deadline {
                return Err(ConsumerError::SettingsTopic(format!(
                    "could not read topic {} to its end within {CATCH_UP_TIMEOUT:?}",
                    self.topic
                )));
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    if let Some(org) = self.apply(&message) {
                        seen.insert(org);
                        applied += 1;
                    }
                    let (p, next) = (message.partition(), message.offset() + 1);
                    if targets.get(&p).is_some_and(|&high| next >= high) {
                        targets.remove(&p);
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading the settings topic"),
                None => {
                    // Compaction can leave gaps: the position tells where reading stands.
                    if let Ok(position) = self.consumer.position() {
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
        tracing::info!(
            topic = %self.topic,
            records = applied,
            orgs = self.store.org_ids().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "settings topic read to its end"
        );
        Ok(seen)
    }

    /// Keep applying new records until `stop`. Blocking: run it on its own thread.
    pub fn run(self, stop: CancellationToken) {
        let mut last_error: Option<Instant> = None;
        while !stop.is_cancelled() {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    self.apply(&message);
                }
                // Logged at most every 30 s: librdkafka reconnects by itself.
                Some(Err(e))
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) =>
                {
                    tracing::warn!(error = %e, topic = %self.topic, "reading the settings topic");
                    last_error = Some(Instant::now());
                }
                Some(Err(_)) | None => {}
            }
        }
    }

    /// Apply one record; returns the org id when the record had a readable key (the org id
    /// for its stream `default`, org and stream id otherwise: [`StreamKey`]).
    fn apply(&self, message: &BorrowedMessage<'_>) -> Option<String> {
        let (partition, offset) = (message.partition(), message.offset());
        let Some(encoded) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            tracing::warn!(
                partition,
                offset,
                "skipping a settings record without a UTF-8 org id key"
            );
            return None;
        };
        let key = StreamKey::from_encoded(encoded);
        let (org, stream) = (key.org(), key.stream());
        if let Err(e) = els_model::settings::check_stream_id(stream, "stream") {
            tracing::warn!(org_id = org, partition, offset, error = %e, "skipping a settings record with an invalid stream id");
            return None;
        }
        let settings = match message.payload() {
            None => None,
            Some(payload) => match decode(&self.keyring, org, payload) {
                Ok(s) => Some(s),
                Err(reason) => {
                    tracing::error!(org_id = org, stream, partition, offset, %reason, "skipping an invalid settings record; the stream keeps its previous settings");
                    return Some(org.to_string());
                }
            },
        };
        let deleted = settings.is_none();
        match self.store.apply(&key, (partition, offset), settings) {
            Ok(true) => tracing::info!(
                org_id = org,
                stream,
                partition,
                offset,
                deleted,
                "stream settings applied from the settings topic"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(org_id = org, stream, partition, offset, error = %e, "skipping an invalid settings record; the stream keeps its previous settings")
            }
        }
        Some(org.to_string())
    }
}

/// Connect the store to the topic: create the topic if missing, read it to the end, seed it
/// with the file's orgs it has no record of, then follow it on a thread until `stop`.
pub async fn start(
    config: &Config,
    keyring: Keyring,
    store: &SettingsStore,
    seed: &HashMap<String, OrgSettings>,
    stop: CancellationToken,
) -> Result<(), ConsumerError> {
    let keyring = Arc::new(keyring);
    ensure_topic(config).await?;
    let mut follower = Follower::new(config, keyring.clone(), store.clone())?;
    let (follower, seen) = tokio::task::spawn_blocking(move || {
        let seen = follower.catch_up();
        seen.map(|s| (follower, s))
    })
    .await
    .map_err(|e| ConsumerError::SettingsTopic(format!("reader task: {e}")))??;
    store.attach_writer(Arc::new(Writer::new(config, keyring)?));
    let mut orgs: Vec<&String> = seed.keys().filter(|o| !seen.contains(*o)).collect();
    orgs.sort();
    for org in orgs {
        let key = StreamKey::new(org, els_model::settings::DEFAULT_STREAM);
        store.save(&key, seed[org].clone()).await?;
        tracing::info!(org_id = %org, "seeded the settings topic from the settings file");
    }
    std::thread::Builder::new()
        .name("els-settings-reader".into())
        .spawn(move || follower.run(stop))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn records_round_trip_sealed() {
        let ring = Keyring::parse(K1, "t").unwrap();
        let settings = OrgSettings::hec("https://siem.example/x", "CANARY-7f3a");
        let bytes = encode(&ring, "org-1", &settings, "c1");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"v":"1","settings":"#), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
        assert!(text.contains("enc:v1:k1:"));
        assert_eq!(decode(&ring, "org-1", &bytes).unwrap(), settings);
        // The same value under another org's key does not open.
        let err = decode(&ring, "org-2", &bytes).unwrap_err();
        assert!(err.contains("auth_headers[0] does not decrypt"), "{err}");
        // Garbage never echoes the input.
        let err = decode(
            &ring,
            "org-1",
            br#"{"v":"1","settings":{"url":5,"x":"CANARY"}}"#,
        )
        .unwrap_err();
        assert!(!err.contains("CANARY"), "{err}");
        // Unsealed auth header values are refused.
        let plain = serde_json::to_vec(&SettingsRecord::V1(SettingsRecordV1 {
            settings,
            updated_at: Utc::now(),
            written_by: String::new(),
        }))
        .unwrap();
        assert!(decode(&ring, "org-1", &plain)
            .unwrap_err()
            .contains("not an encrypted value"));
    }

    #[test]
    fn stored_credential_custom_headers_become_auth_headers() {
        let ring = Keyring::parse(K1, "t").unwrap();
        let mut settings = OrgSettings::hec("https://siem.example/x", "t");
        settings.custom_headers.push(els_model::settings::Header {
            name: "Cookie".into(),
            value: "sid=CANARY".into(),
        });
        // As an older version stored it (custom headers are not sealed).
        let bytes = encode(&ring, "org-1", &settings, "c1");
        let read = decode(&ring, "org-1", &bytes).unwrap();
        assert!(read.custom_headers.is_empty());
        assert_eq!(read.auth_headers[1].name, "Cookie");
        assert_eq!(read.auth_headers[1].value.expose(), "sid=CANARY");
        read.validate().unwrap();
    }
}
