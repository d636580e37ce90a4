//! `els-producer`: `serve` runs the ingest API; `generate` posts demo traffic to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use els_producer::api::{router, AppState};
use els_producer::generate::{self, GenerateOptions};
use els_producer::kafka::EventProducer;
use els_producer::metrics::Metrics;
use els_producer::Config;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "els-producer",
    version,
    about = "ELS ingest API and demo traffic generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingest API (config: defaults, --config TOML, then ELS_* variables).
    Serve {
        #[arg(long, env = "ELS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Post realistic demo events to a running ingest API.
    Generate {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        #[arg(long, default_value_t = 10)]
        orgs: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Total events (0 = until interrupted).
        #[arg(long, default_value_t = 0)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    match Cli::parse().command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            serve(config, cancel).await
        }
        Command::Generate {
            target,
            orgs,
            rate,
            count,
            batch,
            seed,
        } => {
            if rate <= 0.0 || batch == 0 || orgs == 0 {
                anyhow::bail!("--rate, --batch and --orgs must be positive");
            }
            let opts = GenerateOptions {
                target,
                orgs,
                rate,
                count,
                batch,
                seed,
            };
            let sent = generate::run(&opts, cancel).await?;
            tracing::info!(sent, "demo traffic finished");
            Ok(())
        }
    }
}

async fn serve(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let producer = EventProducer::new(
        &config.brokers,
        &config.topic,
        Duration::from_millis(config.ack_timeout_ms),
        config.message_max_bytes,
    )?;
    let state = Arc::new(AppState::new(&config, producer.clone(), Metrics::new()));
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        topic = %config.topic,
        max_event_bytes = producer.max_event_bytes(),
        "els-producer listening"
    );
    els_http::serve(
        listener,
        router(state),
        Duration::from_millis(config.header_read_timeout_ms),
        cancel,
    )
    .await;
    producer.flush(Duration::from_secs(10));
    Ok(())
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cancel.cancel();
}
