//! The broker side: Apache Kafka on loopback (the shared test kit's), topics, preloading a topic with events keyed
//! by org (as the producer does), the raw consume rate (L1), and a fixed-rate producer for
//! the open-loop latency runs.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use els_model::ExecutionEvent;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::error::{BenchError, Result};
use crate::workload::payload;
use els_testkit::{Kafka, Usage};

/// Partitions of every benchmark topic.
pub const PARTITIONS: i32 = 4;

/// Apache Kafka (one node, from `deploy/kafka`) and the benchmark's producer side.
pub struct Broker {
    pub kafka: Kafka,
    pub addr: String,
}

impl Broker {
    pub fn start(dir: &Path) -> Result<Self> {
        let kafka = Kafka::single(dir)?;
        Ok(Self {
            addr: kafka.addr.clone(),
            kafka,
        })
    }

    /// A topic of [`PARTITIONS`] partitions.
    pub async fn create_topic(&self, name: &str) -> Result<()> {
        Ok(self.kafka.create_topic(name, PARTITIONS).await?)
    }

    /// An idempotent producer configured like `els-producer` (`acks=all`, 5 ms linger).
    pub fn producer(&self) -> Result<FutureProducer> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("message.timeout.ms", "60000")
            .set("client.id", "els-bench")
            .create()?)
    }

    /// Produce `events` keyed by org id and wait for every acknowledgement. Returns the
    /// payload bytes written.
    pub async fn preload(&self, topic: &str, events: &[ExecutionEvent]) -> Result<u64> {
        let producer = self.producer()?;
        let mut bytes = 0u64;
        for chunk in events.chunks(20_000) {
            let payloads: Vec<Vec<u8>> = chunk.iter().map(payload).collect();
            bytes += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
            let sends = chunk.iter().zip(&payloads).map(|(event, p)| {
                let record = FutureRecord::to(topic)
                    .key(event.org_id.as_bytes())
                    .payload(p.as_slice());
                producer.send(record, Timeout::After(Duration::from_secs(60)))
            });
            for result in join_all(sends).await {
                if let Err((e, _)) = result {
                    return Err(BenchError::step(format!("preloading {topic}: {e}")));
                }
            }
        }
        Ok(bytes)
    }
}

/// What a raw consume (L1) saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawConsume {
    pub events: u64,
    pub bytes: u64,
    /// First message to last message.
    pub seconds: f64,
    /// CPU of this process (the consuming client) over the same span.
    pub client_cpu: f64,
    /// Fold of every payload byte, so the compiler cannot skip touching them.
    pub checksum: u64,
    /// The client's `fetch.wait.max.ms` in this run.
    pub fetch_wait_ms: u32,
}

/// `fetch.wait.max.ms` values L1 tries: els-consumer's default (20) and a shorter one (Kafka
/// answers a fetch as soon as `fetch.min.bytes` are there, so the two should measure alike).
pub const L1_FETCH_WAITS_MS: [u32; 2] = [20, 10];

/// L1: read `expect` records of `topic` in a new consumer group with no processing beyond
/// touching every payload byte. Runs on a blocking thread (the client polls synchronously).
pub async fn raw_consume(
    brokers: &str,
    topic: &str,
    expect: u64,
    timeout: Duration,
    fetch_wait_ms: u32,
) -> Result<RawConsume> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("els-bench-l1-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()?;
    consumer.subscribe(&[topic])?;
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        let mut out = RawConsume {
            fetch_wait_ms,
            ..RawConsume::default()
        };
        let mut first: Option<(Instant, f64)> = None;
        let mut last = Instant::now();
        while out.events < expect {
            if Instant::now() > deadline {
                return Err(BenchError::timeout(
                    format!("raw consume ({} of {expect})", out.events),
                    timeout,
                ));
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if first.is_none() {
                        first = Some((Instant::now(), Usage::own().cpu_seconds));
                    }
                    let p = m.payload().unwrap_or_default();
                    out.bytes += p.len() as u64;
                    out.checksum = p
                        .iter()
                        .fold(out.checksum, |acc, b| acc.rotate_left(5) ^ u64::from(*b));
                    out.events += 1;
                    last = Instant::now();
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        if let Some((start, cpu)) = first {
            out.seconds = (last - start).as_secs_f64();
            out.client_cpu = Usage::own().cpu_seconds - cpu;
        }
        Ok(out)
    })
    .await
    .map_err(|e| BenchError::step(format!("raw consume thread: {e}")))?
}

/// The latency floor of the broker alone: a plain consumer (new group, the same fetch wait
/// as els-consumer) reads `expect` events of `topic` and records, per event, arrival minus
/// the event's `timestamp` in milliseconds. `ready` is told once partitions are assigned,
/// so the producer can start without the group join counting as latency.
pub async fn floor_latency(
    brokers: &str,
    topic: &str,
    expect: u64,
    timeout: Duration,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<Vec<f64>> {
    #[derive(serde::Deserialize)]
    struct Stamp {
        timestamp: String,
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("els-bench-floor-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", L1_FETCH_WAITS_MS[0].to_string())
        .create()?;
    consumer.subscribe(&[topic])?;
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        let mut told = false;
        let mut out = Vec::with_capacity(expect as usize);
        while (out.len() as u64) < expect {
            if Instant::now() > deadline {
                return Err(BenchError::timeout(
                    format!("floor consume ({} of {expect})", out.len()),
                    timeout,
                ));
            }
            let message = consumer.poll(Duration::from_millis(20));
            if !told && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                told = true;
                let _ = ready.send(());
            }
            match message {
                Some(Ok(m)) => {
                    let now = Utc::now();
                    let stamp: Stamp = serde_json::from_slice(m.payload().unwrap_or_default())?;
                    if let Some(t) = crate::sim::parse_time(&stamp.timestamp) {
                        out.push((now - t).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| BenchError::step(format!("floor consume thread: {e}")))?
}

/// How well the open-loop producer kept its schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paced {
    pub events: u64,
    /// Wall time from the first intended send to the last acknowledgement.
    pub seconds: f64,
    /// Worst lag of an actual hand-over to the client behind its intended time.
    pub max_behind_ms: f64,
}

/// Produce `events` at `rate` per second, each stamped with its intended send time as its
/// `timestamp`, so latency measured from it includes any delay of the producer itself
/// (no coordinated omission).
pub async fn produce_at_rate(
    producer: &FutureProducer,
    topic: &str,
    mut events: Vec<ExecutionEvent>,
    rate: f64,
) -> Result<Paced> {
    let start = Instant::now();
    let start_wall: DateTime<Utc> = Utc::now();
    let interval = 1.0 / rate.max(1.0);
    let mut acks = Vec::with_capacity(events.len());
    let mut max_behind = 0f64;
    let total = events.len();
    let mut i = 0usize;
    while i < total {
        // Send everything whose time has come, then sleep until the next one is due.
        let now = start.elapsed().as_secs_f64();
        while i < total && (i as f64) * interval <= now {
            let intended = (i as f64) * interval;
            max_behind = max_behind.max((now - intended) * 1000.0);
            let event = &mut events[i];
            event.timestamp = start_wall + chrono::Duration::microseconds((intended * 1e6) as i64);
            let p = payload(event);
            let record = FutureRecord::to(topic)
                .key(event.org_id.as_bytes())
                .payload(p.as_slice());
            match producer.send_result(record) {
                Ok(ack) => acks.push(ack),
                Err((e, _)) => return Err(BenchError::step(format!("producing: {e}"))),
            }
            i += 1;
        }
        if i < total {
            let due = Duration::from_secs_f64((i as f64) * interval);
            tokio::time::sleep_until(tokio::time::Instant::from_std(start + due)).await;
        }
    }
    for ack in join_all(acks).await {
        match ack {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(BenchError::step(format!("producing: {e}"))),
            Err(_) => return Err(BenchError::step("producer dropped a delivery")),
        }
    }
    Ok(Paced {
        events: total as u64,
        seconds: start.elapsed().as_secs_f64(),
        max_behind_ms: max_behind,
    })
}
