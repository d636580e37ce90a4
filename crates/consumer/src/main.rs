//! `els-consumer`: parse config, wire store, settings and the app's services, start the admin
//! server and the consume loop, run until SIGINT/SIGTERM, then drain within the grace period.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use els_consumer::access;
use els_consumer::admin::{self, Admin};
use els_consumer::delivery::consume;
use els_consumer::metrics::Metrics;
use els_consumer::settings::crypto::Keyring;
use els_consumer::settings::{topic as settings_topic, SettingsFile, SettingsStore};
use els_consumer::state::changelog::{adopt, follower, Changelog};
use els_consumer::state::{Reason, StateStore};
use els_consumer::streams::notices;
use els_consumer::{Config, Services};
use tokio_util::sync::CancellationToken;

/// jemalloc, with its background thread returning freed pages to the system: after a
/// backlog drains (a SIEM outage), most of what it took is given back within a minute, where
/// glibc's malloc kept all of it until a restart; with many orgs it also measured less CPU
/// per event (BENCHMARKS.md, fifth session of issue 19). It serves the C code too (its
/// `malloc` replaces glibc's, the `unprefixed_malloc_on_supported_platforms` feature): what
/// librdkafka took in a backlog is given back the same way, and `els_heap_bytes` counts it.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's own figures for `els_heap_bytes`: they tell live data from pages the allocator
/// keeps, which RSS alone cannot.
#[cfg(not(target_env = "msvc"))]
fn heap_stats() -> Option<els_consumer::metrics::HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The figures are a snapshot taken at the last epoch: advance it to refresh them.
    epoch::advance().ok()?;
    Some(els_consumer::metrics::HeapStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[derive(Parser)]
#[command(
    name = "els-consumer",
    version,
    about = "Deliver execution events from Kafka to each org's SIEM"
)]
struct Cli {
    /// TOML config file; ELS_* environment variables override it.
    #[arg(long, env = "ELS_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    tracing::info!(?config, "starting els-consumer");
    // One thread by default: no cross-thread wake-ups per event (measured in BENCHMARKS.md);
    // scale with more instances in the group, or more threads.
    let runtime = if config.worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let file = SettingsFile::read(&config.settings_file)?;
    let settings = SettingsStore::from_parsed(&file)?;
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    if config.settings_topic.trim().is_empty() {
        tracing::warn!("settings topic disabled: settings come from the file and are read-only");
    } else {
        let keyring = Keyring::from_config(&config)?.context(
            "master_keys: set ELS_MASTER_KEYS (kid:64-hex-chars) or ELS_MASTER_KEY_FILE",
        )?;
        tracing::info!(topic = %config.settings_topic, kids = ?keyring.kids(), "reading org settings from the settings topic");
        settings_topic::start(&config, keyring, &settings, &file.orgs, cancel.clone())
            .await
            .context("connecting the settings topic")?;
    }
    let mut store =
        StateStore::open(Path::new(&config.data_dir)).context("opening the dead-letter store")?;
    let metrics = Metrics::new().with_org_labels(config.metrics_org_labels);
    #[cfg(not(target_env = "msvc"))]
    let metrics = metrics.with_heap_stats(heap_stats);
    metrics.init_known_series(&Reason::ALL.map(|r| r.as_str()));
    if config.state_topic.trim().is_empty() {
        tracing::warn!("state topic disabled: parked events and dead letters live only on this instance's disk");
    } else {
        let (changelog, synced) = Changelog::start(&config, metrics.clone())
            .await
            .context("connecting the state topic")?;
        adopt::adopt_local_state(&store, &changelog, &config.topic)
            .await
            .context("handing local state over to the state topic")?;
        store.attach_changelog(changelog);
        let (config, dead_letters, metrics, cancel) = (
            config.clone(),
            store.dead_letters().clone(),
            metrics.clone(),
            cancel.clone(),
        );
        tokio::task::spawn_blocking(move || {
            follower::spawn(&config, dead_letters, metrics, synced, cancel)
        })
        .await?
        .context("following dead letters in the state topic")?;
    }
    metrics
        .dead_letters
        .set(store.dead_letters().count() as i64);
    let services = Services::new(&config, settings, store, metrics)?;
    if config.stream_events_topic.trim().is_empty() {
        tracing::warn!("stream notices topic disabled: stream states do not survive a restart");
    } else {
        let (sink, notices) = notices::start(&config)
            .await
            .context("connecting the stream notices topic")?;
        services.streams.restore(notices);
        let settings = &services.settings;
        services
            .streams
            .adopt_settings(|org| settings.get(org).map_or(0, |rt| Arc::as_ptr(&rt) as usize));
        services.streams.attach_sink(sink);
    }
    let (tokens, audit) = access::start(&config, cancel.clone())
        .await
        .context("connecting the tokens and audit topics")?;
    let admin = Arc::new(
        Admin::new(
            services.clone(),
            config.admin_token.clone(),
            &config.brokers,
            &config.topic,
        )?
        .with_access(tokens, audit)
        .with_max_streams(config.max_streams_per_org),
    );
    let listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .with_context(|| format!("binding {}", config.admin_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "admin API listening");
    let admin_cancel = CancellationToken::new();
    let server = tokio::spawn(els_http::serve(
        listener,
        admin::router(admin),
        Duration::from_millis(config.admin_header_read_timeout_ms),
        admin_cancel.clone(),
    ));
    let result = consume::run(config, services, cancel).await;
    admin_cancel.cancel();
    let _ = server.await;
    result.map_err(Into::into)
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cancel.cancel();
}
