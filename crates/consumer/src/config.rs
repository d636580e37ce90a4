//! Consumer configuration: defaults, then a TOML file, then `ELS_*` environment variables.
//! Validated at start; errors name the field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::retry::RetryPolicy;
use crate::delivery::ssrf::SsrfPolicy;
use crate::error::ConsumerError;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic of execution events, keyed by org id.
    pub topic: String,
    /// Consumer group; more instances in the same group share the partitions.
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id
    /// takes its partitions back at once instead of waiting for a rebalance. Empty = dynamic.
    pub instance_id: String,
    /// JSON file of org settings (`{"orgs": {id: settings}, "default": settings}`). With the
    /// settings topic on, its orgs seed the topic (those the topic has no record of) and
    /// `default` stays local configuration.
    pub settings_file: String,
    /// Compacted topic of org settings (key = org id, auth header values encrypted), written
    /// by the admin API and read by every instance. Empty = file-only, read-only settings.
    pub settings_topic: String,
    /// Replication factor when creating the settings topic (and the tokens and audit topics);
    /// -1 = the broker's default.
    pub settings_topic_replication: i32,
    /// Compacted topic of issued admin API tokens (key = token id; role, orgs, expiry and the
    /// SHA-256 of the secret, never the secret), read by every instance. Empty = only the
    /// bootstrap `admin_token` works and tokens cannot be issued.
    pub tokens_topic: String,
    /// Topic of the audit trail (every change through the admin API), read by every
    /// instance. Empty = audit entries are logged and kept in this instance's memory only.
    pub audit_topic: String,
    /// Compacted changelog of the state that stands for finished offsets (parked events,
    /// dead letters), one partition per events-topic partition, so the state outlives an
    /// instance and its disk (see `changelog`). Empty = local-only state (a lost disk loses
    /// that instance's parked events and dead letters).
    pub state_topic: String,
    /// Replication factor when creating the state topic; -1 = the broker's default.
    pub state_topic_replication: i32,
    /// Master keys sealing auth header values: `kid:64-hex-chars,kid2:...`; the first seals
    /// new values, all open. Secret: never logged.
    pub master_keys: String,
    /// File with master keys in the same format, one per line (used if `master_keys` is empty).
    pub master_key_file: String,
    /// SIEM destinations allowed although private/loopback/...: host names, IPs or CIDRs
    /// (`127.0.0.1,siem-sim`). For local demos and tests only.
    pub ssrf_allow: Vec<String>,
    /// Group session timeout: how long a silent (crashed) instance keeps its partitions
    /// before the group gives them to the others.
    pub session_timeout_ms: u64,
    /// Directory of the sled dead-letter and park store.
    pub data_dir: String,
    /// Admin API, `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: String,
    /// Bearer token of the bootstrap super admin (it issues the other tokens); empty disables
    /// the admin endpoints (metrics stay up).
    pub admin_token: String,
    /// A connection to the admin API that has not sent a request's headers (or idles between
    /// requests) this long is closed, so slow or idle clients cannot hold connections.
    pub admin_header_read_timeout_ms: u64,
    /// HEC batches close at this many bytes (default 1,000,000: Splunk's default
    /// `max_content_length`, so a default batch is not answered `413`)...
    pub batch_max_bytes: usize,
    /// ...or this many events...
    pub batch_max_events: usize,
    /// ...or after waiting this long for more events.
    pub batch_linger_ms: u64,
    /// A quiet stream's batches wait up to this long (its linger doubles while its batches
    /// close nearly empty, and falls back as they fill), so requests per second stay bounded
    /// by streams rather than events; `batch_linger_ms` or less turns adapting off.
    pub batch_linger_max_ms: u64,
    /// Per-request timeout towards a SIEM.
    pub request_timeout_ms: u64,
    /// Gzip HEC request bodies.
    pub gzip: bool,
    pub retry_initial_ms: u64,
    pub retry_max_interval_ms: u64,
    /// The retry window: after this long failing (paused included), events go to the
    /// dead-letter store as `retries_exhausted`.
    pub retry_max_elapsed_ms: u64,
    /// Failing (transient errors) this long pauses the stream: its events are held in the
    /// park store and probed.
    pub pause_after_ms: u64,
    /// While a stream is paused, one probe per this interval.
    pub probe_interval_ms: u64,
    /// Per org: most events and bytes held while its stream is paused; past either, new
    /// events are dead-lettered `quota_exceeded`.
    pub hold_max_events_per_org: u64,
    pub hold_max_bytes_per_org: u64,
    /// Most streams an org may have (the admin API refuses one more with 409).
    pub max_streams_per_org: usize,
    /// Topic of stream lifecycle notices (state changes); empty = not written, and states
    /// do not survive a restart.
    pub stream_events_topic: String,
    /// HEC indexer acknowledgement (tokens with ack on): poll `/services/collector/ack`
    /// this often for the ids of a channel...
    pub hec_ack_poll_interval_ms: u64,
    /// ...and re-send a batch whose ack has not come after this long (Splunk may hold the
    /// last batches about two minutes).
    pub hec_ack_timeout_ms: u64,
    /// Events awaiting their ack, per org (that org's reading then waits; its events park)...
    pub hec_ack_max_pending_per_org: usize,
    /// ...and across all orgs (reading from Kafka then pauses).
    pub hec_ack_max_pending: usize,
    /// Events queued in memory per org; beyond it the org's events are parked on disk.
    pub org_queue_capacity: usize,
    /// Consumed events not yet finished, across all orgs; beyond it reading pauses.
    pub max_in_flight: usize,
    /// On SIGTERM: how long to keep delivering what is in flight before exiting.
    pub shutdown_grace_ms: u64,
    /// Workers of orgs without traffic for this long are stopped (bounded memory).
    pub org_idle_ms: u64,
    /// Most requests to SIEMs at once, across all orgs (sockets and CPU stay bounded with
    /// many orgs).
    pub max_concurrent_requests: usize,
    /// When an org's queue is full, wait this long for room before parking its events:
    /// a busy but healthy SIEM frees room quickly, a stuck one gets parked.
    pub park_after_ms: u64,
    /// Longest a fetch may wait at the broker for data (latency when traffic is light).
    pub fetch_wait_max_ms: u64,
    /// Most kilobytes of fetched messages the Kafka client keeps ahead of the consumer
    /// (librdkafka's `queued.max.messages.kbytes`; its own default, 65,536, is up to 64 MiB
    /// more memory in a backlog); the client fetches again within 10 ms of room.
    pub fetch_queue_max_kbytes: u64,
    /// Per-org metric series (`els_org_events_total`) for at most this many orgs, the rest
    /// as `__other__`; 0 = off (org ids as labels are opt-in).
    pub metrics_org_labels: usize,
    /// Threads of the async runtime: 1 runs everything on one thread (the leanest per event);
    /// more spread delivery work (e.g. TLS) over cores.
    pub worker_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "els.events".into(),
            group_id: "els-consumer".into(),
            instance_id: String::new(),
            settings_file: String::new(),
            settings_topic: "els.settings".into(),
            settings_topic_replication: -1,
            tokens_topic: "els.tokens".into(),
            audit_topic: "els.audit".into(),
            state_topic: "els.state".into(),
            state_topic_replication: -1,
            master_keys: String::new(),
            master_key_file: String::new(),
            ssrf_allow: Vec::new(),
            session_timeout_ms: 10_000,
            data_dir: "./els-data".into(),
            admin_listen: "127.0.0.1:9090".into(),
            admin_token: String::new(),
            admin_header_read_timeout_ms: 10_000,
            batch_max_bytes: 1_000_000,
            batch_max_events: 500,
            batch_linger_ms: 50,
            batch_linger_max_ms: 1000,
            request_timeout_ms: 10_000,
            gzip: false,
            retry_initial_ms: 250,
            retry_max_interval_ms: 30_000,
            retry_max_elapsed_ms: 86_400_000,
            pause_after_ms: 60_000,
            probe_interval_ms: 30_000,
            hold_max_events_per_org: 1_000_000,
            hold_max_bytes_per_org: 1 << 30,
            max_streams_per_org: 5,
            stream_events_topic: "els.stream-events".into(),
            hec_ack_poll_interval_ms: 10_000,
            hec_ack_timeout_ms: 300_000,
            hec_ack_max_pending_per_org: 100_000,
            hec_ack_max_pending: 500_000,
            org_queue_capacity: 1000,
            max_in_flight: 50_000,
            shutdown_grace_ms: 10_000,
            org_idle_ms: 300_000,
            max_concurrent_requests: 256,
            park_after_ms: 100,
            fetch_wait_max_ms: 20,
            fetch_queue_max_kbytes: 8192,
            metrics_org_labels: 0,
            worker_threads: 1,
        }
    }
}

/// librdkafka's upper bound for `queued.max.messages.kbytes`.
const FETCH_QUEUE_MAX_KBYTES_LIMIT: u64 = 2_097_151;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("instance_id", &self.instance_id)
            .field("settings_file", &self.settings_file)
            .field("settings_topic", &self.settings_topic)
            .field("state_topic", &self.state_topic)
            .field("tokens_topic", &self.tokens_topic)
            .field("audit_topic", &self.audit_topic)
            .field("master_keys", &"<redacted>")
            .field("master_key_file", &self.master_key_file)
            .field("ssrf_allow", &self.ssrf_allow)
            .field("data_dir", &self.data_dir)
            .field("admin_listen", &self.admin_listen)
            .field("admin_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Load from an optional TOML file and the process environment, then validate.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConsumerError> {
        let text = path.map(std::fs::read_to_string).transpose()?;
        let (config, unknown): (Self, _) =
            els_model::config::layered(text.as_deref(), "ELS_", std::env::vars())
                .map_err(|e| ConsumerError::Config(e.to_string()))?;
        for variable in unknown {
            tracing::warn!(%variable, "ignoring an ELS_ variable this service does not use");
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConsumerError> {
        let bad = |field: &str, why: &str| Err(ConsumerError::Config(format!("`{field}` {why}")));
        for (field, value) in [
            ("brokers", &self.brokers),
            ("topic", &self.topic),
            ("group_id", &self.group_id),
            ("data_dir", &self.data_dir),
        ] {
            if value.trim().is_empty() {
                return bad(field, "must not be empty");
            }
        }
        if self.admin_listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("admin_listen", "must be an address such as 127.0.0.1:9090");
        }
        if !(1..=FETCH_QUEUE_MAX_KBYTES_LIMIT).contains(&self.fetch_queue_max_kbytes) {
            return bad(
                "fetch_queue_max_kbytes",
                &format!(
                    "must be between 1 and {FETCH_QUEUE_MAX_KBYTES_LIMIT} (the Kafka client's limit)"
                ),
            );
        }
        if self.admin_header_read_timeout_ms == 0 {
            return bad("admin_header_read_timeout_ms", "must be positive");
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return bad("admin_token", "must be at least 16 characters");
        }
        for (field, value) in [
            ("batch_max_bytes", self.batch_max_bytes),
            ("batch_max_events", self.batch_max_events),
            ("org_queue_capacity", self.org_queue_capacity),
            ("max_in_flight", self.max_in_flight),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("worker_threads", self.worker_threads),
            (
                "hec_ack_max_pending_per_org",
                self.hec_ack_max_pending_per_org,
            ),
            ("hec_ack_max_pending", self.hec_ack_max_pending),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if !self.settings_topic.trim().is_empty()
            && self.master_keys.trim().is_empty()
            && self.master_key_file.trim().is_empty()
        {
            return bad(
                "master_keys",
                "is required while the settings topic is enabled (auth header values are \
                 encrypted at rest): set ELS_MASTER_KEYS=<kid>:<64 hex chars>, e.g. \
                 ELS_MASTER_KEYS=main:$(openssl rand -hex 32), or ELS_MASTER_KEY_FILE, or turn \
                 the topic off with ELS_SETTINGS_TOPIC=\"\" (file-only settings)",
            );
        }
        if let Err(why) = self.ssrf_policy() {
            return bad("ssrf_allow", &why);
        }
        if self.session_timeout_ms < 1000 {
            return bad("session_timeout_ms", "must be at least 1000");
        }
        if self.hec_ack_poll_interval_ms < 100 {
            return bad("hec_ack_poll_interval_ms", "must be at least 100");
        }
        if self.hec_ack_timeout_ms < self.hec_ack_poll_interval_ms {
            return bad(
                "hec_ack_timeout_ms",
                "must be at least hec_ack_poll_interval_ms",
            );
        }
        if self.request_timeout_ms == 0 || self.retry_initial_ms == 0 {
            return bad("request_timeout_ms/retry_initial_ms", "must be positive");
        }
        Ok(())
    }

    /// The SSRF allow-list from `ssrf_allow`.
    pub fn ssrf_policy(&self) -> Result<SsrfPolicy, String> {
        SsrfPolicy::parse(&self.ssrf_allow)
    }

    pub fn health_knobs(&self) -> crate::streams::HealthKnobs {
        crate::streams::HealthKnobs {
            pause_after: Duration::from_millis(self.pause_after_ms),
            probe_interval: Duration::from_millis(self.probe_interval_ms.max(100)),
            retry_window: Duration::from_millis(self.retry_max_elapsed_ms),
            hold_max_events: self.hold_max_events_per_org,
            hold_max_bytes: self.hold_max_bytes_per_org,
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(self.retry_initial_ms),
            max_interval: Duration::from_millis(self.retry_max_interval_ms),
            multiplier: 2.0,
            jitter: 0.5,
            max_elapsed: Duration::from_millis(self.retry_max_elapsed_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConsumerError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let (config, _): (Config, _) = els_model::config::layered(None, "ELS_", vars)
            .map_err(|e| ConsumerError::Config(e.to_string()))?;
        config.validate().map(|_| config)
    }

    #[test]
    fn settings_topic_needs_a_master_key() {
        let err = load(&[]).unwrap_err().to_string();
        assert!(
            err.contains("`master_keys`") && err.contains("ELS_MASTER_KEYS"),
            "{err}"
        );
        assert!(load(&[("ELS_SETTINGS_TOPIC", "")]).is_ok());
        let key = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let config = load(&[("ELS_MASTER_KEYS", key)]).unwrap();
        assert!(!format!("{config:?}").contains("0a0b0c"));
        assert_eq!(config.settings_topic, "els.settings");
        assert_eq!(config.state_topic, "els.state");
        assert_eq!(
            (config.tokens_topic.as_str(), config.audit_topic.as_str()),
            ("els.tokens", "els.audit")
        );
        assert_eq!(config.session_timeout_ms, 10_000);
    }

    #[test]
    fn ssrf_allow_from_env() {
        let config = load(&[
            ("ELS_SETTINGS_TOPIC", ""),
            ("ELS_SSRF_ALLOW", "127.0.0.1, siem-sim,10.0.0.0/8"),
        ])
        .unwrap();
        assert_eq!(config.ssrf_allow, ["127.0.0.1", "siem-sim", "10.0.0.0/8"]);
        let err = load(&[
            ("ELS_SETTINGS_TOPIC", ""),
            ("ELS_SSRF_ALLOW", "10.0.0.0/99"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("`ssrf_allow`"), "{err}");
    }

    #[test]
    fn the_fetch_queue_is_bounded_within_the_clients_range() {
        let off = ("ELS_SETTINGS_TOPIC", "");
        assert_eq!(load(&[off]).unwrap().fetch_queue_max_kbytes, 8192);
        let config = load(&[off, ("ELS_FETCH_QUEUE_MAX_KBYTES", "65536")]).unwrap();
        assert_eq!(config.fetch_queue_max_kbytes, 65_536);
        for bad in ["0", "2097152"] {
            let err = load(&[off, ("ELS_FETCH_QUEUE_MAX_KBYTES", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("`fetch_queue_max_kbytes`"), "{bad}: {err}");
        }
    }
}
