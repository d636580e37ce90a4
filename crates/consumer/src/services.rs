//! The application state: what the delivery engine and the admin server share, built once in
//! `main` ([`Services::new`]) and passed down as `Arc<Services>`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::delivery::rebalance::Ownership;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::siem::{Deliver, SiemClient};
use crate::error::ConsumerError;
use crate::metrics::Metrics;
use crate::settings::SettingsStore;
use crate::state::{DeadLetters, StateStore, StoreHealth};
use crate::streams::StreamStates;

/// Every long-lived part of a running consumer.
pub struct Services {
    /// Every org's stream settings (the admin API writes them, workers read them per batch).
    pub settings: SettingsStore,
    /// The sled store of dead letters and parked events, with the state changelog.
    pub store: StateStore,
    /// Whether the store accepts writes (readiness and liveness report it).
    pub store_health: StoreHealth,
    /// The HTTP client towards SIEMs (deliveries and test events), SSRF guard built in.
    pub siem: SiemClient,
    /// The network side of deliveries: `siem` in production; the engine's unit tests put a
    /// fake SIEM here.
    pub deliver: Arc<dyn Deliver>,
    pub metrics: Metrics,
    /// Partitions this instance owns, as the group's rebalances tell it.
    pub ownership: Arc<Ownership>,
    /// How the delivery engine batches, retries and idles.
    pub engine: EngineKnobs,
    /// Every org's stream state (stream health).
    pub streams: Arc<StreamStates>,
}

/// The delivery engine's knobs, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineKnobs {
    pub retry: RetryPolicy,
    /// A batch closes at this many bytes...
    pub batch_max_bytes: usize,
    /// ...or this many events...
    pub batch_max_events: usize,
    /// ...or after waiting this long for more events (a busy stream's linger)...
    pub linger: Duration,
    /// ...which grows up to this for a quiet stream (see `delivery::worker::Linger`).
    pub linger_max: Duration,
    /// Workers of orgs without traffic for this long are stopped.
    pub idle: Duration,
    /// Most requests to SIEMs at once, across all orgs.
    pub max_concurrent_requests: usize,
    /// HEC indexer acknowledgement.
    pub ack: AckKnobs,
}

/// How HEC indexer acks are awaited ([`crate::delivery::ack`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AckKnobs {
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Events awaiting acks per org, and in all.
    pub max_pending_per_org: usize,
    pub max_pending: usize,
}

impl EngineKnobs {
    pub fn from_config(config: &Config) -> Self {
        Self {
            retry: config.retry_policy(),
            batch_max_bytes: config.batch_max_bytes,
            batch_max_events: config.batch_max_events,
            linger: Duration::from_millis(config.batch_linger_ms),
            linger_max: Duration::from_millis(config.batch_linger_max_ms),
            idle: Duration::from_millis(config.org_idle_ms.max(1000)),
            max_concurrent_requests: config.max_concurrent_requests,
            ack: AckKnobs {
                poll_interval: Duration::from_millis(config.hec_ack_poll_interval_ms),
                timeout: Duration::from_millis(config.hec_ack_timeout_ms),
                max_pending_per_org: config.hec_ack_max_pending_per_org,
                max_pending: config.hec_ack_max_pending,
            },
        }
    }
}

impl Services {
    /// Wire the services: the SIEM client is built here, with the SSRF allow-list of the
    /// (validated) configuration.
    pub fn new(
        config: &Config,
        settings: SettingsStore,
        store: StateStore,
        metrics: Metrics,
    ) -> Result<Arc<Self>, ConsumerError> {
        let ssrf = config.ssrf_policy().map_err(ConsumerError::Config)?;
        let siem = SiemClient::new(
            Duration::from_millis(config.request_timeout_ms),
            config.gzip,
            ssrf,
            metrics.clone(),
        )
        .map_err(|e| ConsumerError::Config(format!("http client: {e}")))?;
        Ok(Arc::new(Self {
            settings,
            store,
            store_health: StoreHealth::default(),
            deliver: Arc::new(siem.clone()),
            siem,
            streams: Arc::new(StreamStates::new(config.health_knobs(), metrics.clone())),
            metrics,
            ownership: Arc::new(Ownership::default()),
            engine: EngineKnobs::from_config(config),
        }))
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        self.store.dead_letters()
    }

    /// Record a failed store write; true when it is the first of a run of failures.
    pub fn store_failed(&self) -> bool {
        self.metrics.store_errors.inc();
        self.store_health.failed()
    }

    pub fn store_ok(&self) {
        self.store_health.ok();
    }

    /// Ready: some partitions assigned and the store accepting writes.
    pub fn ready(&self) -> bool {
        !self.ownership.assigned().is_empty() && !self.store_health.is_failing()
    }
}
