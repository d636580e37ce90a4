//! `els-bench`: parse flags, start broker and siem-sim, run the measurements, print the
//! report and write it into `BENCHMARKS.md`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use els_bench::machine::{load_average, Machine};
use els_bench::report::{self, RunInfo};
use els_bench::scenario::{Bench, Options};
use els_testkit::workspace_root;

/// Benchmark the ELS pipeline against its physical limits and a naive forwarder (needs
/// `cargo build --release -p els-consumer -p siem-sim` and Apache Kafka from `deploy/kafka`).
#[derive(Debug, Parser)]
#[command(name = "els-bench", version)]
struct Cli {
    /// A ~1.5-minute smoke run (20,000 events, short open-loop and naive steps).
    #[arg(long)]
    quick: bool,
    /// Events of the main case (side cases use 1/2, 1/4 or 1/10 of it).
    #[arg(long)]
    events: Option<usize>,
    /// Seconds per open-loop step.
    #[arg(long)]
    open_loop_seconds: Option<f64>,
    /// Skip the naive Python forwarder.
    #[arg(long)]
    no_naive: bool,
    /// Open-loop rates as fractions of this many events/s instead of the drain rate.
    #[arg(long)]
    open_loop_base: Option<f64>,
    /// Skip the open-loop latency runs.
    #[arg(long)]
    no_open_loop: bool,
    /// Only these drain cases (main, main-ack, org1, org10k, large, generic; main brings
    /// main-ack along); open loop and naive
    /// run only with main.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Finally drain the first measured case once more under `perf record` (not measured);
    /// with `--only org10k` that is the 10,000-org case.
    #[arg(long)]
    profile: bool,
    /// Consumer binary to measure instead of target/release/els-consumer (A/B a fix).
    #[arg(long)]
    consumer_bin: Option<PathBuf>,
    /// Extra consumer environment, KEY=VALUE (repeatable), e.g. ELS_BATCH_LINGER_MS=50.
    #[arg(long = "consumer-env", value_parser = parse_env)]
    consumer_env: Vec<(String, String)>,
    /// Where the report goes (default: BENCHMARKS.md, or target/bench/quick.md with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let opts = Options {
        events: cli
            .events
            .unwrap_or(if cli.quick { 20_000 } else { 200_000 }),
        quick: cli.quick,
        open_loop_seconds: cli
            .open_loop_seconds
            .unwrap_or(if cli.quick { 4.0 } else { 15.0 }),
        naive_seconds: if cli.quick { 5.0 } else { 20.0 },
        naive: !cli.no_naive,
        open_loop: !cli.no_open_loop,
        open_loop_base: cli.open_loop_base,
        only: cli.only,
        consumer_bin: cli.consumer_bin.clone(),
        consumer_env: cli.consumer_env.clone(),
        profile: cli.profile,
        dir: root.join("target/bench").join(&stamp),
        root: root.clone(),
    };
    let out = cli.out.unwrap_or_else(|| {
        if cli.quick {
            root.join("target/bench/quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    let load_before = load_average();
    let machine = Machine::describe();
    let started = Instant::now();
    let mut bench = Bench::start(opts).context("starting broker and siem-sim")?;
    let results = bench.run().await.context("benchmark run")?;
    drop(bench);
    let info = RunInfo {
        machine,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        quick: cli.quick,
        load_before,
        load_after: load_average(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut block = report::render(&info, &results);
    if cli.consumer_bin.is_some() || !cli.consumer_env.is_empty() || cli.open_loop_base.is_some() {
        let note = format!(
            "\n**Not the default run:** consumer {:?}, extra env {:?}, open-loop base {:?} ev/s.\n",
            cli.consumer_bin, cli.consumer_env, cli.open_loop_base
        );
        block = block.replacen("\n", &note, 1);
    }
    println!("{block}");
    let existing = std::fs::read_to_string(&out).unwrap_or_default();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&out, report::splice(&existing, &block))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("[els-bench] report written to {}", out.display());
    Ok(())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}
