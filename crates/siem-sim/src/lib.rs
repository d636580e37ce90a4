//! `siem-sim`: a simulator of SIEM destinations with fault injection. It plays Splunk HTTP
//! Event Collector, and besides batched generic HTTP (NDJSON, JSON array), Elasticsearch
//! `_bulk`, the Datadog logs intake, and Microsoft Sentinel's Logs Ingestion API with its
//! OAuth2 client credentials token endpoint (Microsoft Entra ID style).
//!
//! It is the SIEM of the docker-compose demo and of the end-to-end tests, so it behaves like
//! real HEC where ELS depends on it: the same status and `code` for auth, data and busy
//! errors; a request with one bad envelope is refused (with code 6, the envelopes before the
//! bad one are indexed, as Splunk does).
//! Off unless configured, it also plays the rest of Splunk HEC: tokens with indexer
//! acknowledgement (data channels, `ackId`s, `/services/collector/ack`), allowed indexes per
//! token (code 7) and `max_content_length` (413). A code 6 answer with `invalid-event-number`
//! N has indexed (stored and counted) the events before N, as Splunk has.
//!
//! Tour of the modules:
//! - [`hec`]: the wire protocol, pure and unit-tested: reply codes and bodies, the
//!   `Authorization` header, gzip bodies, and parsing concatenated JSON envelopes.
//! - [`http_formats`]: batched generic HTTP bodies (`/http/ndjson`, `/http/array`) and their
//!   caps on events and bytes per request.
//! - [`elastic`]: Elasticsearch `_bulk`: action/source lines, per-item outcomes (409 for a
//!   re-sent `create`, injected 429 and mapping errors), Elasticsearch's error bodies.
//! - [`datadog`]: Datadog logs intake (`/api/v2/logs`): limits, truncation, error bodies.
//! - [`oauth`]: OAuth2 client credentials as Microsoft Entra ID answers them, and the store
//!   of issued tokens with their expiry.
//! - [`logs_ingestion`]: the Azure Monitor Logs Ingestion API (Microsoft Sentinel) that the
//!   OAuth2 tokens are for.
//! - [`faults`]: the one global fault set (status, delay, hang, `Retry-After`, `fail_next`,
//!   unhealthy) that makes the receiver misbehave on purpose.
//! - [`state`]: counters, every received `event_id` in arrival order, and a bounded window of
//!   full records; [`Sim`] is the shared handle that in-process tests may read directly.
//! - `server`: the axum routes gluing the above to HTTP (ingest, generic and batched HTTP,
//!   `_bulk`, Datadog, token and Logs Ingestion endpoints, health, and the `/sim/*` query
//!   and fault API).
//!
//! Every receiver stores what it accepts into the same [`state`] (so tests count by
//! `event_id` whatever the destination) and has its own counters in `Stats::receivers`; the
//! global request faults (status, delay, hang, `fail_next`, trickle) apply to all of them,
//! with each destination's own error body.
//!
//! This file holds the [`Config`], the crate's [`Error`], and the entry points [`serve`]
//! (run on a listener until a shutdown future resolves) and [`spawn`] (bind and run in the
//! background, for tests).

pub mod datadog;
pub mod elastic;
pub mod faults;
pub mod hec;
pub mod http_formats;
pub mod logs_ingestion;
pub mod oauth;
mod server;
pub mod state;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{BulkRejections, Faults};
pub use oauth::Client as OAuthClient;
pub use state::{ReceiverStats, Record, Sim, Stats};

/// Token accepted when none is configured, shared with the demo's org settings.
pub const DEFAULT_TOKEN: &str = "els-demo-token";
pub const DEFAULT_PORT: u16 = 8088;
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
pub const DEFAULT_MAX_STORED: usize = 100_000;

/// How a simulator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where [`spawn`] binds (`127.0.0.1:0` picks a free port); [`serve`] takes a bound
    /// listener instead, so the caller can learn the port before serving.
    pub listen: SocketAddr,
    /// Tokens accepted in `Authorization: Splunk <token>` (and `Bearer` on `/generic`).
    pub tokens: Vec<String>,
    /// Largest request body, compressed and decompressed alike; larger answers 413.
    pub max_body_bytes: usize,
    /// Full records kept for `/sim/events`; the oldest are dropped beyond it, while event ids
    /// and counters keep counting.
    pub max_stored: usize,
    /// Faults active from the start.
    pub faults: Faults,
    /// Tokens with indexer acknowledgement enabled (accepted like `tokens`): they need a data
    /// channel and answer `ackId`s ("About HTTP Event Collector Indexer Acknowledgment").
    pub ack_tokens: Vec<String>,
    /// How long after a request an ack id of an ack-enabled token reads `true`.
    pub ack_delay_ms: u64,
    /// Indexes a token may write to; a token not listed may write to any.
    pub token_indexes: BTreeMap<String, Vec<String>>,
    /// Splunk's `max_content_length` (default there 1,000,000 bytes): a larger request body
    /// answers 413 with Splunk's text. `None`: only `max_body_bytes` applies.
    pub max_content_length: Option<usize>,
    /// `/http/ndjson` and `/http/array`: most events in one request; more answers 413.
    pub batch_max_events: usize,
    /// `/http/ndjson` and `/http/array`: largest body (compressed and decompressed alike);
    /// larger answers 413.
    pub batch_max_bytes: usize,
    /// Elasticsearch's `http.max_content_length` for `_bulk` (default 100mb); a larger body
    /// answers 413.
    pub es_max_content_length: usize,
    /// OAuth2 clients (client credentials grant) the token endpoint accepts.
    pub oauth_clients: Vec<oauth::Client>,
    /// Lifetime of an issued access token (`expires_in`).
    pub oauth_token_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_stored: DEFAULT_MAX_STORED,
            faults: Faults::default(),
            ack_tokens: Vec::new(),
            ack_delay_ms: 0,
            token_indexes: BTreeMap::new(),
            max_content_length: None,
            batch_max_events: http_formats::DEFAULT_MAX_EVENTS,
            batch_max_bytes: http_formats::DEFAULT_MAX_BYTES,
            es_max_content_length: elastic::DEFAULT_MAX_CONTENT_LENGTH,
            oauth_clients: Vec::new(),
            oauth_token_ttl_secs: oauth::DEFAULT_TOKEN_TTL_SECS,
        }
    }
}

impl Config {
    /// Default config listening on an ephemeral localhost port, for tests.
    pub fn ephemeral() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Config::default()
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.tokens.is_empty() {
            return Err(Error::InvalidConfig {
                field: "tokens",
                reason: "at least one token is required".to_owned(),
            });
        }
        if let Some(bad) = self
            .tokens
            .iter()
            .chain(&self.ack_tokens)
            .find(|t| t.is_empty() || t.contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::InvalidConfig {
                field: "tokens",
                reason: format!(
                    "a token must be non-empty without whitespace ({} chars given)",
                    bad.chars().count()
                ),
            });
        }
        if self.max_body_bytes == 0 {
            return Err(Error::InvalidConfig {
                field: "max_body_bytes",
                reason: "must be greater than 0".to_owned(),
            });
        }
        if self.max_content_length == Some(0) {
            return Err(Error::InvalidConfig {
                field: "max_content_length",
                reason: "must be greater than 0".to_owned(),
            });
        }
        for (field, value) in [
            ("batch_max_events", self.batch_max_events),
            ("batch_max_bytes", self.batch_max_bytes),
            ("es_max_content_length", self.es_max_content_length),
            ("oauth_token_ttl_secs", self.oauth_token_ttl_secs as usize),
        ] {
            if value == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be greater than 0".to_owned(),
                });
            }
        }
        if let Some(bad) = self
            .oauth_clients
            .iter()
            .find(|c| c.id.is_empty() || c.secret.is_empty())
        {
            return Err(Error::InvalidConfig {
                field: "oauth_clients",
                reason: format!("client `{}` needs a non-empty id and secret", bad.id),
            });
        }
        self.faults.validate()
    }
}

/// Everything that can go wrong starting or running a simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the listener's local address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("simulator task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serve on `listener` until `shutdown` resolves, then finish open requests (delayed and hung
/// ones end at once) and return.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let sim = Sim::new(config.max_stored, config.faults.clone())?;
    run(listener, &config, sim, shutdown, CancellationToken::new()).await
}

async fn run(
    listener: TcpListener,
    config: &Config,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let app = Arc::new(server::App {
        sim,
        tokens: config
            .tokens
            .iter()
            .chain(&config.ack_tokens)
            .cloned()
            .collect::<HashSet<_>>(),
        ack_tokens: config.ack_tokens.iter().cloned().collect::<HashSet<_>>(),
        ack_delay: std::time::Duration::from_millis(config.ack_delay_ms),
        token_indexes: config
            .token_indexes
            .iter()
            .map(|(t, i)| (t.clone(), i.iter().cloned().collect()))
            .collect(),
        max_content_length: config.max_content_length,
        max_body_bytes: config.max_body_bytes,
        batch_max_events: config.batch_max_events,
        batch_max_bytes: config.batch_max_bytes,
        es_max_content_length: config.es_max_content_length,
        oauth_clients: config.oauth_clients.clone(),
        oauth_ttl: std::time::Duration::from_secs(config.oauth_token_ttl_secs),
        oauth_tokens: std::sync::Mutex::new(oauth::TokenStore::default()),
        shutdown: cancel.clone(),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tokens = config.tokens.len(), "siem-sim serving");
    }
    let signal = async move {
        shutdown.await;
        cancel.cancel();
    };
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(signal)
        .await
        .map_err(Error::Serve)
}

/// Bind `config.listen` and serve in a background task. Dropping the handle shuts the
/// simulator down; [`SimHandle::shutdown`] also waits for it.
pub async fn spawn(config: Config) -> Result<SimHandle, Error> {
    config.validate()?;
    let sim = Sim::new(config.max_stored, config.faults.clone())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let sim = sim.clone();
        let cancel = cancel.clone();
        async move {
            let shutdown = cancel.clone().cancelled_owned();
            run(listener, &config, sim, shutdown, cancel).await
        }
    });
    Ok(SimHandle {
        addr,
        sim,
        cancel,
        task: Some(task),
    })
}

/// A simulator running in the background, from [`spawn`].
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    sim: Sim,
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL of the HEC event endpoint.
    pub fn hec_url(&self) -> String {
        format!("{}/services/collector/event", self.url())
    }

    /// The live state, to read stats and events or set faults without HTTP.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Stop serving and wait until the server has finished.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.cancel.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(Config::default().validate().is_ok());
        assert_eq!(Config::default().listen.port(), DEFAULT_PORT);
    }

    #[test]
    fn validation_names_the_field_and_hides_the_token() {
        let config = Config {
            tokens: vec!["sec ret".into()],
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`tokens`"), "{err}");
        assert!(!err.contains("sec"), "{err}");
        let config = Config {
            tokens: vec![],
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            max_body_bytes: 0,
            ..Config::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_body_bytes"));
    }
}
