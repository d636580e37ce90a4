//! The delivery engine's unit tests: real workers, limiter, HEC splitting and park routing,
//! no processes. The network side is a [`FakeSiem`] (a [`Deliver`] recording each request and
//! answering scripted statuses); time is paused, so waits take no wall-clock time and their
//! timing is exact; the state store is sled in a temp directory, with no changelog (no Kafka).
//!
//! - `batching.rs`: batches close at max events, at max bytes, after the linger.
//! - `limits.rs`: the org limit's `delay` and `dead_letter` policies.
//! - `split.rs`: a HEC 400 is split down to the poison event.
//! - `hec_errors.rs`: whole-request HEC errors get one decision, code 6 re-sends only the
//!   events after the named one, 413 splits down to `too_large`; the data channel.
//! - `park_order.rs`: parked events go back in offset order, before the org's new events.
//! - `acks.rs`: HEC indexer acks: finished only when acked, one poll per interval for all
//!   ids, re-sent after the timeout, code 14 and `hec.ack: false` count the 200s, caps.
//! - `pause.rs`: stream health: a configuration error pauses and holds, failing past the
//!   threshold pauses, a probe is one attempt and resumes; new settings resume.
//! - `retry.rs`: the retry schedule through the worker; permanent answers and exhaustion.
//! - `batched.rs`: NDJSON, JSON array, Datadog and Elasticsearch `_bulk` streams: caps,
//!   splitting, per-item answers.

mod acks;
mod batched;
mod batching;
mod hec_errors;
mod limits;
mod park_order;
mod pause;
mod retry;
mod split;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use els_model::settings::{EndpointKind, OrgSettings};
use els_model::topic::TopicEvent;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::queue;
use super::retry::RetryPolicy;
use super::siem::{Deliver, Exchange, Failure};
use super::worker::{self, Done, Engine, Job, Origin};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::services::{EngineKnobs, Services};
use crate::settings::{OrgRuntime, SettingsStore};
use crate::state::{DeadLetterV1, Filter, StateStore};

/// The org every test event belongs to.
pub const ORG: &str = "org-1";

/// One request the fake SIEM received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Milliseconds since the fake was made (the test's start: time is paused).
    pub at_ms: u64,
    /// The events in the body, by the number [`event`] made them with.
    pub events: Vec<u32>,
    /// The HEC data channel the request was sent on.
    pub channel: uuid::Uuid,
}

type Answer = Box<dyn Fn(usize, &[u32]) -> (u16, String) + Send + Sync>;
type AckAnswer = Box<dyn Fn(&[u64]) -> (u16, String) + Send + Sync>;

/// One ack poll the fake SIEM received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckPoll {
    pub at_ms: u64,
    pub ids: Vec<u64>,
    pub channel: uuid::Uuid,
}

/// A SIEM answering each request with the status (and body) `answer` gives for (request
/// index, events in the body), after `latency`.
pub struct FakeSiem {
    start: tokio::time::Instant,
    answer: Answer,
    latency: Duration,
    requests: Mutex<Vec<Request>>,
    acks: AckAnswer,
    polls: Mutex<Vec<AckPoll>>,
}

impl FakeSiem {
    pub fn new(answer: impl Fn(usize, &[u32]) -> u16 + Send + Sync + 'static) -> Self {
        Self::replying(move |i, events| (answer(i, events), String::new()))
    }

    /// Answers the status and body `answer` gives (HEC replies such as
    /// `{"text":"Incorrect index","code":7}`).
    pub fn replying(
        answer: impl Fn(usize, &[u32]) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            answer: Box::new(answer),
            latency: Duration::ZERO,
            requests: Mutex::new(Vec::new()),
            acks: Box::new(|_| (400, r#"{"text":"ACK is disabled","code":14}"#.to_string())),
            polls: Mutex::new(Vec::new()),
        }
    }

    /// Answers 200 to everything.
    pub fn ok() -> Self {
        Self::new(|_, _| 200)
    }

    /// Answers `statuses` in turn, then 200.
    pub fn scripted(statuses: &[u16]) -> Self {
        let statuses = statuses.to_vec();
        Self::new(move |i, _| statuses.get(i).copied().unwrap_or(200))
    }

    /// Answers ack polls as `answer` says for the ids asked about (by default code 14, as
    /// for a token without ack).
    pub fn with_acks(
        mut self,
        answer: impl Fn(&[u64]) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        self.acks = Box::new(answer);
        self
    }

    /// The ack polls so far.
    pub fn polls(&self) -> Vec<AckPoll> {
        self.polls.lock().unwrap().clone()
    }

    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The events of each request, in order.
    pub fn bodies(&self) -> Vec<Vec<u32>> {
        self.requests().into_iter().map(|r| r.events).collect()
    }
}

impl Deliver for FakeSiem {
    fn exchange<'a>(
        &'a self,
        _runtime: &'a OrgRuntime,
        body: Bytes,
        channel: uuid::Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>> {
        Box::pin(async move {
            let events = event_numbers(&body);
            let (status, reply) = {
                let mut requests = self.requests.lock().unwrap();
                let at_ms = self.start.elapsed().as_millis() as u64;
                let answer = (self.answer)(requests.len(), &events);
                requests.push(Request {
                    at_ms,
                    events,
                    channel,
                });
                answer
            };
            tokio::time::sleep(self.latency).await;
            Ok(Exchange {
                status,
                headers: reqwest::header::HeaderMap::new(),
                body: reply,
            })
        })
    }

    fn query_acks<'a>(
        &'a self,
        _runtime: &'a OrgRuntime,
        body: Bytes,
        channel: uuid::Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>> {
        Box::pin(async move {
            let query: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
            let ids: Vec<u64> = query["acks"]
                .as_array()
                .expect("an acks array")
                .iter()
                .map(|id| id.as_u64().expect("numeric ack ids"))
                .collect();
            let (status, reply) = (self.acks)(&ids);
            self.polls.lock().unwrap().push(AckPoll {
                at_ms: self.start.elapsed().as_millis() as u64,
                ids,
                channel,
            });
            Ok(Exchange {
                status,
                headers: reqwest::header::HeaderMap::new(),
                body: reply,
            })
        })
    }
}

/// A HEC success answer with ack id `id`.
pub fn success_ack(id: usize) -> (u16, String) {
    (
        200,
        format!(r#"{{"text":"Success","code":0,"ackId":{id}}}"#),
    )
}

/// An ack poll answer: each asked id `true` if `acked(id)`.
pub fn ack_answer(ids: &[u64], acked: impl Fn(u64) -> bool) -> (u16, String) {
    let acks: serde_json::Map<String, serde_json::Value> = ids
        .iter()
        .map(|id| (id.to_string(), serde_json::Value::Bool(acked(*id))))
        .collect();
    (200, serde_json::json!({ "acks": acks }).to_string())
}

/// Test event number `n` of [`ORG`] (its number is in its execution id).
pub fn event(n: u32) -> TopicEvent {
    let event = els_model::ingest::parse_event(serde_json::json!({
        "event_type": "FLOW_COMPLETE",
        "execution_id": format!("0b6b1c9e-2f0a-4a49-8f51-{n:012x}"),
        "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "f1", "flow_name": "F",
        "org_id": ORG, "org_name": "Acme", "org_hostname": "acme.example.com",
        "user_id": "u1", "user_email": "bob@example.com"
    }))
    .unwrap();
    TopicEvent::from_event(&event).unwrap()
}

/// Event `n` as consumed from partition 0 at offset `n`.
pub fn job(n: u32) -> Job {
    Job {
        event: Box::new(event(n)),
        stream: crate::streams::StreamKey::new(ORG, els_model::settings::DEFAULT_STREAM),
        origin: Origin::Kafka {
            partition: 0,
            offset: n.into(),
        },
    }
}

/// The numbers of the events in a request body: HEC envelopes or one bare event (events
/// without an execution id, such as ELS's lifecycle event, have none).
fn event_numbers(body: &[u8]) -> Vec<u32> {
    let number = |value: &serde_json::Value| {
        let event = value.get("event").unwrap_or(value);
        let id = event["execution_id"].as_str()?;
        Some(u32::from_str_radix(&id[24..], 16).unwrap())
    };
    serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .flat_map(|value| match value.expect("a JSON body") {
            // A JSON array or Datadog body: its items; `_bulk` action lines have no id.
            serde_json::Value::Array(items) => items.iter().filter_map(number).collect(),
            value => number(&value).into_iter().collect::<Vec<_>>(),
        })
        .collect()
}

/// A HEC stream for [`ORG`], no limit.
pub fn hec() -> OrgSettings {
    OrgSettings::hec("https://siem.example/services/collector/event", "t")
}

/// A generic HTTP stream (one request per event) for [`ORG`].
pub fn http() -> OrgSettings {
    OrgSettings {
        endpoint: EndpointKind::Http,
        ..hec()
    }
}

/// Knobs for tests: no linger, large batches, a retry schedule without jitter
/// (100 ms, doubling, 60 s in all).
pub fn knobs() -> EngineKnobs {
    EngineKnobs {
        retry: RetryPolicy {
            initial: Duration::from_millis(100),
            max_interval: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            max_elapsed: Duration::from_secs(60),
        },
        batch_max_bytes: 1 << 20,
        batch_max_events: 100,
        linger: Duration::ZERO,
        // Fixed linger unless a test turns adapting on.
        linger_max: Duration::ZERO,
        idle: Duration::from_secs(3600),
        max_concurrent_requests: 8,
        ack: crate::services::AckKnobs {
            poll_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            max_pending_per_org: 100_000,
            max_pending: 500_000,
        },
    }
}

/// An engine over test services: [`ORG`] with `settings`, a fake SIEM, a temp-dir store.
pub struct Harness {
    pub services: Arc<Services>,
    pub engine: Arc<Engine>,
    pub siem: Arc<FakeSiem>,
    done: mpsc::UnboundedReceiver<Vec<Done>>,
    /// Jobs a paused stream handed back (the consume loop would hold them in the park store).
    held: mpsc::UnboundedReceiver<Vec<Job>>,
    dir: PathBuf,
}

impl Harness {
    pub fn new(settings: OrgSettings, knobs: EngineKnobs, siem: FakeSiem) -> Self {
        Self::with_health(settings, knobs, siem, Config::default().health_knobs())
    }

    /// [`Harness::new`] with stream-health knobs of its own.
    pub fn with_health(
        settings: OrgSettings,
        knobs: EngineKnobs,
        siem: FakeSiem,
        health: crate::streams::HealthKnobs,
    ) -> Self {
        let org_settings = SettingsStore::default();
        org_settings.put(ORG, settings).unwrap();
        let dir = std::env::temp_dir().join(format!("els-engine-{}", uuid::Uuid::new_v4()));
        let store = StateStore::open(&dir).unwrap();
        let services = Services::new(&Config::default(), org_settings, store, Metrics::new());
        let mut services = Arc::into_inner(services.unwrap()).unwrap();
        let siem = Arc::new(siem);
        services.deliver = siem.clone();
        services.engine = knobs;
        services.streams = Arc::new(crate::streams::StreamStates::new(
            health,
            services.metrics.clone(),
        ));
        let services = Arc::new(services);
        let (done_tx, done) = mpsc::unbounded_channel();
        let (held_tx, held) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine::new(services.clone(), done_tx, held_tx));
        Self {
            services,
            engine,
            siem,
            done,
            held,
            dir,
        }
    }

    /// Start [`ORG`]'s worker with `jobs` already in its queue; the queue's sender.
    pub fn worker(&self, jobs: impl IntoIterator<Item = Job>) -> queue::Sender<Job> {
        let jobs: Vec<Job> = jobs.into_iter().collect();
        let (tx, rx) = queue::channel(jobs.len().max(64));
        for job in jobs {
            tx.try_send(job).unwrap();
        }
        let key = crate::streams::StreamKey::new(ORG, els_model::settings::DEFAULT_STREAM);
        tokio::spawn(worker::run(key, rx, self.engine.clone()));
        tx
    }

    /// Wait until `n` jobs have finished; their completions in the order reported.
    pub async fn finished(&mut self, n: usize) -> Vec<Done> {
        let mut all = Vec::new();
        while all.len() < n {
            all.extend(self.done.recv().await.expect("the engine is alive"));
        }
        all
    }

    /// Wait until `n` jobs were handed back to be held; their offsets.
    pub async fn held(&mut self, n: usize) -> Vec<i64> {
        let mut all = Vec::new();
        while all.len() < n {
            let jobs = self.held.recv().await.expect("the engine is alive");
            all.extend(jobs.iter().map(|j| j.origin.offset()));
        }
        all
    }

    /// Completions reported so far, without waiting.
    pub fn finished_now(&mut self) -> Vec<Done> {
        let mut all = Vec::new();
        while let Ok(done) = self.done.try_recv() {
            all.extend(done);
        }
        all
    }

    /// Every dead letter, by offset.
    pub fn dead_letters(&self) -> Vec<DeadLetterV1> {
        let mut all = self
            .services
            .dead_letters()
            .list(&Filter::default())
            .unwrap();
        all.sort_by_key(|d| d.offset);
        all
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The offsets of `done`, in order.
pub fn offsets(done: &[Done]) -> Vec<i64> {
    done.iter().map(|d| d.origin.offset()).collect()
}
