//! The producers of ELS's own topics (settings, tokens, audit, state changelog, stream
//! notices, replays), shared: one per broker list and write timeout for the whole process.
//!
//! Each rdkafka `FutureProducer` owns a polling thread that wakes every 100 ms and, because
//! rdkafka rounds the time left down to whole milliseconds, spins for up to a millisecond
//! before each wake-up ends: about 1 % of a core per producer, idle or not. Six producers cost
//! an idle consumer 6 % of a core and the drain benchmark a tenth of its CPU (a profile showed
//! the polling threads at 8 % of the consumer's samples). Two are enough: the writes differ
//! only in how long they may wait for Kafka, and cloning a `FutureProducer` shares it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

/// How long a write may wait for Kafka's acknowledgement before it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteTimeout {
    /// An API call waits on it (settings, tokens, audit, replays): fail within 15 s so the
    /// caller gets a 503 rather than a hung request.
    Request,
    /// Background state (the changelog of parked events and dead letters, stream notices):
    /// ride out a short broker outage.
    Background,
}

impl WriteTimeout {
    pub fn duration(self) -> Duration {
        match self {
            Self::Request => Duration::from_secs(15),
            Self::Background => Duration::from_secs(30),
        }
    }
}

type Producers = HashMap<(String, WriteTimeout), FutureProducer>;

static PRODUCERS: OnceLock<Mutex<Producers>> = OnceLock::new();

/// The process's idempotent (`acks=all`) producer for `brokers` with `timeout`, created on
/// first use. Topics are never created by a write (`allow.auto.create.topics=false`): each
/// owner creates its topic with the settings it needs before writing.
pub fn shared(brokers: &str, timeout: WriteTimeout) -> Result<FutureProducer, KafkaError> {
    let mut producers = PRODUCERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let key = (brokers.to_string(), timeout);
    if let Some(p) = producers.get(&key) {
        return Ok(p.clone());
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("allow.auto.create.topics", "false")
        .set(
            "message.timeout.ms",
            timeout.duration().as_millis().to_string(),
        )
        .set("client.id", "els-consumer")
        .create()?;
    producers.insert(key, producer.clone());
    Ok(producer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::Producer;

    #[test]
    fn one_producer_per_broker_list_and_timeout() {
        let a = shared("127.0.0.1:1", WriteTimeout::Request).unwrap();
        let b = shared("127.0.0.1:1", WriteTimeout::Request).unwrap();
        let c = shared("127.0.0.1:1", WriteTimeout::Background).unwrap();
        let d = shared("127.0.0.1:2", WriteTimeout::Request).unwrap();
        let ptr = |p: &FutureProducer| p.client().native_ptr() as usize;
        assert_eq!(ptr(&a), ptr(&b), "the same producer is handed out again");
        assert_ne!(ptr(&a), ptr(&c), "another timeout gets its own");
        assert_ne!(ptr(&a), ptr(&d), "another broker list gets its own");
    }
}
