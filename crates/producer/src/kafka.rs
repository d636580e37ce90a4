//! The idempotent Kafka producer. Plain Kafka configuration only (any Kafka-compatible
//! service works); tests, the local run and compose use Apache Kafka.
//!
//! One producer session serves every request: a request whose events Kafka did not
//! acknowledge in time is answered 503 (its caller retries; nothing was promised), while
//! librdkafka keeps the session's idempotent sequence intact for everyone else. Only a
//! *fatal* idempotence error (the session can never send again) replaces the session with a
//! fresh one (new producer id).
//!
//! Sizes: `message.max.bytes` is set explicitly, and [`EventProducer::encode`] refuses an
//! event whose record could exceed it (the API answers 413) before anything is produced, so
//! librdkafka never fails a send for size: a request that cannot fit is the client's error,
//! not a 503 to retry forever.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use els_model::event::MAX_ORG_ID_BYTES;
use els_model::ExecutionEvent;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;

use crate::error::ProducerError;

/// The most a record adds to its key and value in a record batch, as librdkafka counts it
/// when it checks `message.max.bytes` at produce time (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`:
/// the length, attributes, timestamp delta, offset delta, key length, value length and header
/// count fields at their largest: 5 + 1 + 10 + 5 + 5 + 5 + 5 bytes). ELS sends no headers.
pub const RECORD_OVERHEAD_BYTES: usize = 36;

/// The largest event JSON (the record's value) the producer sends under `message_max_bytes`:
/// the limit minus [`RECORD_OVERHEAD_BYTES`] and the longest key (an org id of
/// [`MAX_ORG_ID_BYTES`]), so the limit does not depend on the org. 999,836 for 1,000,000.
pub const fn max_event_bytes(message_max_bytes: usize) -> usize {
    message_max_bytes.saturating_sub(RECORD_OVERHEAD_BYTES + MAX_ORG_ID_BYTES)
}

/// An event as its topic record: key `org_id`, value the event's JSON.
pub struct Record<'a> {
    key: &'a str,
    payload: Vec<u8>,
}

/// Sends events keyed by `org_id`; every send waits for the broker's acknowledgement.
#[derive(Clone)]
pub struct EventProducer {
    inner: Arc<RwLock<FutureProducer>>,
    brokers: String,
    topic: String,
    ack_timeout: Duration,
    /// librdkafka's `message.max.bytes`.
    message_max_bytes: usize,
}

fn create(
    brokers: &str,
    ack_timeout: Duration,
    message_max_bytes: usize,
) -> Result<FutureProducer, ProducerError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", ack_timeout.as_millis().to_string())
        .set("message.max.bytes", message_max_bytes.to_string())
        .set("client.id", "els-producer")
        .create()?)
}

impl EventProducer {
    pub fn new(
        brokers: &str,
        topic: &str,
        ack_timeout: Duration,
        message_max_bytes: usize,
    ) -> Result<Self, ProducerError> {
        Ok(Self {
            inner: Arc::new(RwLock::new(create(
                brokers,
                ack_timeout,
                message_max_bytes,
            )?)),
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            ack_timeout,
            message_max_bytes,
        })
    }

    /// The largest event JSON this producer sends (see [`max_event_bytes`]).
    pub fn max_event_bytes(&self) -> usize {
        max_event_bytes(self.message_max_bytes)
    }

    /// Serialise every event as its topic record; refuses the lot if one would not fit
    /// ([`ProducerError::EventTooLarge`] names the first), before anything is produced.
    pub fn encode<'a>(
        &self,
        events: &'a [ExecutionEvent],
    ) -> Result<Vec<Record<'a>>, ProducerError> {
        encode(events, self.max_event_bytes())
    }

    fn current(&self) -> FutureProducer {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Produce all records; Ok only when Kafka acknowledged every one of them.
    pub async fn send(&self, records: &[Record<'_>]) -> Result<(), ProducerError> {
        let producer = self.current();
        let sends = records.iter().map(|r| {
            let record = FutureRecord::to(&self.topic)
                .key(r.key.as_bytes())
                .payload(r.payload.as_slice());
            producer.send(record, Timeout::After(self.ack_timeout))
        });
        let results = join_all(sends).await;
        let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
        match failures.first() {
            None => Ok(()),
            Some((err, _)) => {
                let error = ProducerError::NotAcknowledged {
                    failed: failures.len(),
                    total: records.len(),
                    reason: err.to_string(),
                };
                if let Some((code, reason)) = producer.client().fatal_error() {
                    tracing::warn!(error = %code, reason = %reason, "fatal producer error");
                    self.reset(&producer);
                }
                Err(error)
            }
        }
    }

    /// Replace `failed` (if it is still current) with a fresh producer session, after a fatal
    /// error.
    fn reset(&self, failed: &FutureProducer) {
        let fresh = match create(&self.brokers, self.ack_timeout, self.message_max_bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not create a fresh producer; keeping the old one");
                return;
            }
        };
        let old = {
            let mut current = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
                return; // another request already reset it
            }
            std::mem::replace(&mut *current, fresh)
        };
        tracing::info!("the producer session failed for good; started a fresh one");
        // Drop the old session off the async threads: purge what it still queues (those
        // requests are answered 503), it cannot send them any more.
        tokio::task::spawn_blocking(move || {
            old.purge(PurgeConfig::default().queue().inflight());
            drop(old);
        });
    }

    /// Whether the broker answers a metadata request for our topic (readiness).
    pub async fn ready(&self) -> bool {
        let producer = self.current();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Wait for outstanding sends on shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.current().flush(Timeout::After(timeout));
    }
}

/// [`EventProducer::encode`] for a given limit on the record's value.
fn encode(
    events: &[ExecutionEvent],
    max_event_bytes: usize,
) -> Result<Vec<Record<'_>>, ProducerError> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let payload =
                serde_json::to_vec(event).map_err(|e| ProducerError::Encode(e.to_string()))?;
            if payload.len() > max_event_bytes {
                return Err(ProducerError::EventTooLarge {
                    index,
                    size: payload.len(),
                    limit: max_event_bytes,
                });
            }
            Ok(Record {
                key: &event.org_id,
                payload,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(pad: usize) -> ExecutionEvent {
        els_model::ingest::parse_event(json!({
            "event_id": "5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59",
            "event_type": "FLOW_START",
            "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z",
            "flow_id": "f", "flow_name": "F", "org_id": "o".repeat(MAX_ORG_ID_BYTES),
            "org_name": "O", "org_hostname": "h", "user_id": "u", "user_email": "a@b.c",
            "pad": "x".repeat(pad),
        }))
        .unwrap()
    }

    #[test]
    fn the_limit_is_message_max_bytes_minus_overhead_and_key() {
        assert_eq!(max_event_bytes(1_000_000), 999_836);
        let base = serde_json::to_vec(&event(0)).unwrap().len();
        let limit = 10_000;
        let fits = event(max_event_bytes(limit) - base);
        let records = encode(std::slice::from_ref(&fits), max_event_bytes(limit)).unwrap();
        // What librdkafka checks: key + value + overhead <= message.max.bytes.
        let r = &records[0];
        assert_eq!(r.key.len() + r.payload.len() + RECORD_OVERHEAD_BYTES, limit);
        let over = event(max_event_bytes(limit) - base + 1);
        let events = [fits.clone(), over];
        match encode(&events, max_event_bytes(limit)) {
            Err(ProducerError::EventTooLarge {
                index,
                size,
                limit: l,
            }) => {
                assert_eq!((index, size, l), (1, max_event_bytes(limit) + 1, 9_836));
            }
            other => panic!("{:?}", other.map(|r| r.len())),
        }
    }

    #[tokio::test]
    async fn librdkafka_accepts_at_the_limit_and_refuses_beyond_it() {
        // No broker needed: librdkafka checks the size when the record is enqueued.
        let limit = 10_000;
        let producer =
            EventProducer::new("127.0.0.1:9", "t", Duration::from_millis(200), limit).unwrap();
        let base = serde_json::to_vec(&event(0)).unwrap().len();
        let at = event(max_event_bytes(limit) - base);
        let payload = serde_json::to_vec(&at).unwrap();
        let send = |extra: usize| {
            let mut value = payload.clone();
            value.extend(std::iter::repeat_n(b' ', extra));
            let p = producer.current();
            let record = FutureRecord::to("t")
                .key(at.org_id.as_bytes())
                .payload(&value);
            p.send_result(record).map(drop).map_err(|(e, _)| e)
        };
        // At the limit the record is queued (it fails later, for want of a broker) ...
        assert!(send(0).is_ok());
        // ... one byte more and librdkafka refuses it at once.
        let err = send(1).unwrap_err();
        assert_eq!(
            err.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge),
            "{err}"
        );
        producer.current().purge(PurgeConfig::default().queue());
    }
}
