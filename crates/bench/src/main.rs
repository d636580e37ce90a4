//! `els-bench`: parse flags, start broker and siem-sim, run the measurements, print the
//! report and write it into `BENCHMARKS.md`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use els_bench::machine::{load_average, Machine};
use els_bench::report::{self, RunInfo};
use els_bench::scenario::{self, Bench, Options};
use els_bench::soak::{self, SoakOptions};
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
    /// Only these drain cases (main, main-ack, org1, org10k, large, generic, ndjson; main brings
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
    /// Where the report goes (default: BENCHMARKS.md, or target/bench/quick.md with --quick;
    /// a soak under 10 minutes goes to target/bench/soak.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Soak instead of the benchmark: the main case under open-loop traffic for N minutes
    /// (1..=240) with a siem-sim 503 burst and consumer restarts (SIGTERM, once SIGKILL) in
    /// turn; sampled every 10 s; a "Soak" section in the report, a CSV and a PNG in the run
    /// directory (and docs/soak.png for N >= 10). Exits 3 when a verdict is missed.
    #[arg(long)]
    soak_minutes: Option<u64>,
    /// Soak rate in events/s (default: half the drain rate of a quick main-case drain).
    #[arg(long, requires = "soak_minutes")]
    soak_rate: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let flags = scenario::check_flags(
        cli.events,
        cli.open_loop_seconds,
        cli.open_loop_base,
        &cli.only,
        cli.consumer_bin.as_deref(),
    );
    if let Err(msg) = flags {
        eprintln!("els-bench: {msg}");
        std::process::exit(2);
    }
    if let Some(minutes) = cli.soak_minutes {
        let checked = soak::check_minutes(minutes).and_then(|()| {
            cli.soak_rate
                .map_or(Ok(()), |r| soak::check_rate(r, minutes))
        });
        if let Err(msg) = checked {
            eprintln!("els-bench: {msg}");
            std::process::exit(2);
        }
    }
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
    let out = cli.out.clone().unwrap_or_else(|| {
        if cli.quick {
            root.join("target/bench/quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    let load_before = load_average();
    let machine = Machine::describe();
    let started = Instant::now();
    if let Some(minutes) = cli.soak_minutes {
        let out = cli.out.clone().unwrap_or_else(|| {
            if minutes >= 10 {
                root.join("BENCHMARKS.md")
            } else {
                root.join("target/bench/soak.md")
            }
        });
        let dir = opts.dir.clone();
        let mut bench = Bench::start(opts).context("starting broker and siem-sim")?;
        let result = bench
            .soak(&SoakOptions {
                minutes,
                rate: cli.soak_rate,
                plot_to_docs: minutes >= 10,
            })
            .await
            .context("soak run")?;
        drop(bench);
        // The soak topic is gigabytes; the samples, plot and logs stay.
        let _ = std::fs::remove_dir_all(dir.join("kafka-1"));
        let after = load_average();
        let run = format!(
            "{} · commit `{}`{} · {} cores · load average before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            machine.commit,
            if machine.dirty.is_empty() { "" } else { " + uncommitted changes" },
            machine.cores,
            load_before.0,
            load_before.1,
            load_before.2,
            after.0,
            after.1,
            after.2
        );
        let block = soak::render(&result, &run);
        println!("{block}");
        let existing = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(
            &out,
            report::splice_between(&existing, &block, soak::BEGIN, soak::END),
        )
        .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("[els-bench] soak section written to {}", out.display());
        if !result.verdicts.all_ok() {
            eprintln!("[els-bench] soak: a verdict was missed");
            std::process::exit(3);
        }
        return Ok(());
    }
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
