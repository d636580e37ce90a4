//! `siem-sim` binary: parse flags, bind, print the address, serve until SIGINT/SIGTERM.
//! `siem-sim stats` prints a running simulator's counters.
#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use siem_sim::{Config, Faults, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_STORED, DEFAULT_TOKEN};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// SIEM simulator: Splunk HEC, batched HTTP, Elasticsearch _bulk, Datadog logs, OAuth2 and
/// Logs Ingestion receivers with fault injection (logs go to stderr; set RUST_LOG).
#[derive(Debug, Parser)]
#[command(name = "siem-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, env = "SIEM_SIM_LISTEN", default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// Accepted HEC token; repeat for several (env: comma-separated).
    #[arg(
        long = "token",
        env = "SIEM_SIM_TOKENS",
        value_delimiter = ',',
        default_value = DEFAULT_TOKEN,
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// Largest request body in bytes (compressed and decompressed); larger answers 413.
    #[arg(long, env = "SIEM_SIM_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Full records kept for /sim/events (event ids and counters are kept beyond it).
    #[arg(long, env = "SIEM_SIM_MAX_STORED", default_value_t = DEFAULT_MAX_STORED)]
    max_stored: usize,
    /// Answer every ingest request with this HTTP status (e.g. 503) from the start.
    #[arg(long, env = "SIEM_SIM_FAULT_STATUS")]
    fault_status: Option<u16>,
    /// Sleep this many milliseconds before answering each ingest request.
    #[arg(long, env = "SIEM_SIM_FAULT_DELAY_MS", default_value_t = 0)]
    fault_delay_ms: u64,
    /// Retry-After header value added to fault answers.
    #[arg(long, env = "SIEM_SIM_FAULT_RETRY_AFTER")]
    fault_retry_after: Option<String>,
    /// Token with indexer acknowledgement enabled (accepted too); repeat for several (env:
    /// comma-separated). Such a token needs a GUID data channel and answers ackIds.
    #[arg(
        long = "ack-token",
        env = "SIEM_SIM_ACK_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    ack_tokens: Vec<String>,
    /// Milliseconds after a request before its ack id reads true.
    #[arg(long, env = "SIEM_SIM_ACK_DELAY_MS", default_value_t = 0)]
    ack_delay_ms: u64,
    /// Percentage (0-100) of ack ids that are never acknowledged.
    #[arg(long, env = "SIEM_SIM_NEVER_ACK_PERCENT", default_value_t = 0)]
    never_ack_percent: u8,
    /// Indexes a token may write to, as TOKEN=main,security; repeat per token. Another
    /// index answers 400 code 7.
    #[arg(long = "token-indexes", value_parser = parse_token_indexes)]
    token_indexes: Vec<(String, Vec<String>)>,
    /// Splunk's max_content_length in bytes (Splunk's default is 1000000); a larger body
    /// answers 413. Unset: only --max-body-bytes applies.
    #[arg(long, env = "SIEM_SIM_MAX_CONTENT_LENGTH")]
    max_content_length: Option<usize>,
    /// /http/ndjson and /http/array: most events in one request (more answers 413).
    #[arg(long, env = "SIEM_SIM_BATCH_MAX_EVENTS", default_value_t = siem_sim::http_formats::DEFAULT_MAX_EVENTS)]
    batch_max_events: usize,
    /// /http/ndjson and /http/array: largest body in bytes (more answers 413).
    #[arg(long, env = "SIEM_SIM_BATCH_MAX_BYTES", default_value_t = siem_sim::http_formats::DEFAULT_MAX_BYTES)]
    batch_max_bytes: usize,
    /// Elasticsearch _bulk: http.max_content_length in bytes (default 100mb; more answers 413).
    #[arg(long, env = "SIEM_SIM_ES_MAX_CONTENT_LENGTH", default_value_t = siem_sim::elastic::DEFAULT_MAX_CONTENT_LENGTH)]
    es_max_content_length: usize,
    /// OAuth2 client accepted by the token endpoint, as CLIENT_ID:CLIENT_SECRET; repeat for
    /// several (env: comma-separated).
    #[arg(
        long = "oauth-client",
        env = "SIEM_SIM_OAUTH_CLIENTS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    oauth_clients: Vec<siem_sim::OAuthClient>,
    /// Lifetime of issued OAuth2 access tokens, in seconds.
    #[arg(long, env = "SIEM_SIM_OAUTH_TOKEN_TTL_SECS", default_value_t = siem_sim::oauth::DEFAULT_TOKEN_TTL_SECS)]
    oauth_token_ttl_secs: u64,
}

fn parse_token_indexes(value: &str) -> Result<(String, Vec<String>), String> {
    let (token, indexes) = value
        .split_once('=')
        .ok_or_else(|| "expected TOKEN=index1,index2".to_owned())?;
    let indexes: Vec<String> = indexes
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect();
    if token.is_empty() || indexes.is_empty() {
        return Err("expected TOKEN=index1,index2".to_owned());
    }
    Ok((token.to_owned(), indexes))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a running simulator's /sim/stats, pretty.
    Stats {
        /// Base URL of the simulator.
        #[arg(long, env = "SIEM_SIM_URL", default_value = "http://127.0.0.1:8088")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Stats { ref url }) => print_stats(url).await,
        None => serve(cli).await,
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let config = Config {
        listen: cli.listen,
        tokens: cli.tokens,
        max_body_bytes: cli.max_body_bytes,
        max_stored: cli.max_stored,
        faults: Faults {
            status: cli.fault_status,
            delay_ms: cli.fault_delay_ms,
            retry_after: cli.fault_retry_after,
            never_ack_percent: cli.never_ack_percent,
            ..Faults::default()
        },
        ack_tokens: cli.ack_tokens,
        ack_delay_ms: cli.ack_delay_ms,
        token_indexes: cli.token_indexes.into_iter().collect(),
        max_content_length: cli.max_content_length,
        batch_max_events: cli.batch_max_events,
        batch_max_bytes: cli.batch_max_bytes,
        es_max_content_length: cli.es_max_content_length,
        oauth_clients: cli.oauth_clients,
        oauth_token_ttl_secs: cli.oauth_token_ttl_secs,
    };
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot bind {}", config.listen))?;
    let addr = listener.local_addr().context("cannot read bound address")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "siem-sim listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    siem_sim::serve(listener, config, shutdown_signal()).await?;
    tracing::info!("siem-sim stopped");
    Ok(())
}

async fn print_stats(url: &str) -> anyhow::Result<()> {
    let url = format!("{}/sim/stats", url.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?;
    let stats: serde_json::Value = response.json().await.context("stats are not JSON")?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "siem-sim",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "a",
            "--token",
            "b",
            "--fault-status",
            "503",
        ])
        .unwrap();
        assert_eq!(cli.listen.port(), 0);
        assert_eq!(cli.tokens, ["a", "b"]);
        assert_eq!(cli.fault_status, Some(503));
        assert!(cli.ack_tokens.is_empty());
        let cli = Cli::try_parse_from([
            "siem-sim",
            "--ack-token",
            "t",
            "--ack-delay-ms",
            "5000",
            "--token-indexes",
            "t=main,security",
            "--max-content-length",
            "1000000",
            "--never-ack-percent",
            "10",
        ])
        .unwrap();
        assert_eq!(cli.ack_tokens, ["t"]);
        assert_eq!(cli.ack_delay_ms, 5000);
        assert_eq!(
            cli.token_indexes,
            [(
                "t".to_owned(),
                vec!["main".to_owned(), "security".to_owned()]
            )]
        );
        assert_eq!(cli.max_content_length, Some(1_000_000));
        assert_eq!(cli.never_ack_percent, 10);
        assert_eq!(cli.batch_max_events, 1000);
        assert_eq!(cli.oauth_token_ttl_secs, 3600);
        let cli = Cli::try_parse_from([
            "siem-sim",
            "--oauth-client",
            "app:s3cret",
            "--oauth-client",
            "b:c",
            "--oauth-token-ttl-secs",
            "30",
            "--batch-max-events",
            "10",
            "--batch-max-bytes",
            "2048",
            "--es-max-content-length",
            "4096",
        ])
        .unwrap();
        assert_eq!(cli.oauth_clients.len(), 2);
        assert_eq!(cli.oauth_clients[0].id, "app");
        assert_eq!(cli.oauth_token_ttl_secs, 30);
        assert_eq!(
            (
                cli.batch_max_events,
                cli.batch_max_bytes,
                cli.es_max_content_length
            ),
            (10, 2048, 4096)
        );
        assert!(Cli::try_parse_from(["siem-sim", "--oauth-client", "nosecret"]).is_err());
        assert!(Cli::try_parse_from(["siem-sim", "--token-indexes", "t="]).is_err());
        let stats = Cli::try_parse_from(["siem-sim", "stats", "--url", "http://h:1"]).unwrap();
        assert!(matches!(stats.command, Some(Command::Stats { url }) if url == "http://h:1"));
    }
}
