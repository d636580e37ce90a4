//! The measurements, in the order a run makes them: per case L1, L2 and the drain; then the
//! open-loop latency runs at fractions of the main case's drain rate; then the naive
//! baseline. Every wait is bounded; the broker and siem-sim live for the whole run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use els_testkit::Usage;

use crate::consumer::{self, histogram_mean, metric_total};
use crate::error::{BenchError, Result};
use crate::kafka::{produce_at_rate, raw_consume, Broker, Paced, RawConsume, L1_FETCH_WAITS_MS};
use crate::machine;
use crate::naive;
use crate::sim::{build_bodies, raw_post, RawPost, Sim};
use crate::stats::{rate, Latency};
use crate::workload::{self, Case, Endpoint, Size};

/// Most requests the L2 client keeps in flight (the consumer has one per active org).
pub const L2_MAX_CONCURRENCY: usize = 64;

/// L2 is measured at a few concurrencies up to the pipeline's (one request per org, at
/// most [`L2_MAX_CONCURRENCY`]) and the best rate is the limit: siem-sim on two cores may
/// do better with fewer requests in flight, and a limit must not be understated.
pub fn l2_concurrencies(orgs: usize) -> Vec<usize> {
    let mut c: Vec<usize> = [4, 16, L2_MAX_CONCURRENCY]
        .into_iter()
        .map(|c| c.min(orgs.max(1)))
        .collect();
    c.dedup();
    c
}
/// Records siem-sim keeps for latencies (an open-loop step sends at most this many).
pub const SIM_MAX_STORED: usize = 250_000;
/// Fractions of the drain rate for the open-loop runs.
pub const OPEN_LOOP_FRACTIONS: [f64; 3] = [0.25, 0.5, 0.75];
/// How long a consumer has for its graceful exit after SIGTERM.
pub(crate) const CONSUMER_GRACE: Duration = Duration::from_secs(15);

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events of the main case (side cases use fewer).
    pub events: usize,
    /// A `--quick` run (the 10,000-org case stays small).
    pub quick: bool,
    /// Seconds per open-loop step.
    pub open_loop_seconds: f64,
    /// Seconds each naive forwarder mode runs at most.
    pub naive_seconds: f64,
    pub naive: bool,
    pub open_loop: bool,
    /// Rate the open-loop fractions apply to instead of the measured drain rate.
    pub open_loop_base: Option<f64>,
    /// The consumer binary under test (default: `els-consumer` beside this binary), e.g. a
    /// build with a candidate fix.
    pub consumer_bin: Option<PathBuf>,
    /// Extra `ELS_*` variables for every consumer (A/B a knob; the report says so).
    pub consumer_env: Vec<(String, String)>,
    /// Run only these cases (by name: main, org1, org10k, large, generic); empty = all.
    /// Open loop and naive need `main`.
    pub only: Vec<String>,
    /// After the measurements, drain the first measured case again under `perf record`.
    pub profile: bool,
    /// The workspace root (for `bench/naive` and `target/`).
    pub root: PathBuf,
    /// Logs, consumer data and profiles of this run.
    pub dir: PathBuf,
}

/// L1 and L2 of one case.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub l1: RawConsume,
    /// Broker CPU while L1 ran.
    pub l1_broker_cpu: f64,
    pub l2: RawPost,
    pub l2_sim_cpu: f64,
    pub l2_client_cpu: f64,
    pub l2_concurrency: usize,
}

impl Limits {
    pub fn l1_rate(&self) -> f64 {
        rate(self.l1.events, self.l1.seconds)
    }

    pub fn l2_rate(&self) -> f64 {
        rate(self.l2.events, self.l2.seconds)
    }

    /// The no-work floor, CPU-s per million events (L1 client + L2 client).
    pub fn floor(&self) -> f64 {
        crate::stats::floor_cpu_per_million(
            self.l1.client_cpu,
            self.l1.events,
            self.l2_client_cpu,
            self.l2.events,
        )
    }
}

/// The pipeline draining a preloaded topic.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    pub events: u64,
    /// First to last arrival at siem-sim.
    pub seconds: f64,
    /// CPU-seconds from readiness to the last arrival.
    pub consumer_cpu: f64,
    /// Including start-up (process start to the last arrival).
    pub consumer_cpu_total: f64,
    pub broker_cpu: f64,
    pub sim_cpu: f64,
    /// Busy CPU of everything else on the machine over the same window.
    pub other_cpu: f64,
    /// Readiness to the last arrival (the window of the CPU figures).
    pub window: f64,
    pub peak_rss: u64,
    pub mean_batch: Option<f64>,
    pub requests: u64,
    pub duplicates: u64,
    pub dead_lettered: f64,
    /// Highest `els_events_parked` seen (sampled every ~250 ms): events spilled to disk
    /// because their org's queue was full.
    pub peak_parked: f64,
}

impl Drain {
    pub fn rate(&self) -> f64 {
        rate(self.events, self.seconds)
    }
}

impl CaseResult {
    /// Consumer CPU-s per million events.
    pub fn consumer_cpu_per_million(&self) -> f64 {
        crate::stats::cpu_per_million(self.drain.consumer_cpu, self.drain.events)
    }

    /// Consumer CPU per event ÷ the no-work floor of the same case.
    pub fn floor_ratio(&self) -> f64 {
        crate::stats::floor_ratio(self.consumer_cpu_per_million(), self.limits.floor())
    }
}

/// One row of the drain matrix.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub payload_bytes: u64,
    pub limits: Limits,
    pub drain: Drain,
}

impl CaseResult {
    pub fn mean_payload(&self) -> f64 {
        self.payload_bytes as f64 / self.case.events.max(1) as f64
    }
}

/// One open-loop step.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    pub fraction: f64,
    pub target_rate: f64,
    pub paced: Paced,
    pub latency: Latency,
    pub duplicates: u64,
    /// Ingest requests siem-sim got during the step, and the events in them (duplicates
    /// included).
    pub requests: u64,
    pub received: u64,
}

impl OpenLoop {
    /// Requests per second over the step (first intended send to last acknowledgement).
    pub fn requests_per_second(&self) -> f64 {
        rate(self.requests, self.paced.seconds)
    }

    pub fn events_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.received as f64 / self.requests as f64
        }
    }
}

/// One naive forwarder mode.
#[derive(Debug, Clone)]
pub struct Naive {
    pub mode: naive::Mode,
    pub report: naive::Report,
    /// Distinct events siem-sim got (a cross-check of the script's own count).
    pub received: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub cases: Vec<CaseResult>,
    /// Open-loop latency of the broker alone (plain consumer) at 50 % of the drain rate.
    pub floor: Option<Latency>,
    pub open_loop: Vec<OpenLoop>,
    pub naive: Vec<Naive>,
    pub profile: Option<PathBuf>,
}

/// The broker, siem-sim and where this run keeps its files.
pub struct Bench {
    pub opts: Options,
    pub broker: Broker,
    pub sim: Sim,
}

pub(crate) fn log(msg: impl std::fmt::Display) {
    eprintln!("[els-bench] {msg}");
}

impl Bench {
    pub fn start(opts: Options) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| BenchError::io(format!("creating {}", opts.dir.display()), e))?;
        let broker = Broker::start(&opts.dir)?;
        let sim = Sim::start(&opts.dir, SIM_MAX_STORED)?;
        log(format!(
            "broker {} and siem-sim {} up; files in {}",
            broker.addr,
            sim.url,
            opts.dir.display()
        ));
        Ok(Self { opts, broker, sim })
    }

    /// Every measurement of a run.
    pub async fn run(&mut self) -> Result<Results> {
        let mut results = Results::default();
        let mut main_topic = None;
        let cases = workload::matrix(self.opts.events, !self.opts.quick)
            .into_iter()
            .filter(|c| {
                // `main` brings its indexer-ack twin `main-ack` along.
                let named = |o: &String| c.name == *o || c.name.strip_suffix("-ack") == Some(o);
                self.opts.only.is_empty() || self.opts.only.iter().any(named)
            })
            .collect::<Vec<_>>();
        for case in cases {
            let (result, topic) = self.case(&case).await?;
            if case.name == "main" {
                main_topic = Some(topic);
                let drain_rate = self.opts.open_loop_base.unwrap_or(result.drain.rate());
                results.cases.push(result);
                if self.opts.open_loop {
                    (results.floor, results.open_loop) = self.open_loop(drain_rate).await?;
                }
            } else {
                results.cases.push(result);
            }
        }
        if self.opts.naive {
            if let Some(topic) = &main_topic {
                results.naive = self.naive(topic).await?;
            }
        }
        if self.opts.profile {
            if let Some(main) = results.cases.first() {
                results.profile = Some(self.profile(&main.case).await?);
            }
        }
        Ok(results)
    }

    /// Preload a fresh topic for `case`; returns its name and payload bytes.
    pub(crate) async fn preload(&self, case: &Case, seed: u64) -> Result<(String, u64)> {
        let topic = format!(
            "bench-{}-{}",
            case.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let started = Instant::now();
        let events = workload::events(case.orgs, case.size, case.events, seed)?;
        self.broker.create_topic(&topic).await?;
        let bytes = self.broker.preload(&topic, &events).await?;
        log(format!(
            "{}: preloaded {} events ({:.1} MiB) in {:.1} s",
            case.label(),
            case.events,
            bytes as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        ));
        Ok((topic, bytes))
    }

    async fn case(&mut self, case: &Case) -> Result<(CaseResult, String)> {
        let seed = 42 + case.orgs as u64;
        let (topic, payload_bytes) = self.preload(case, seed).await?;
        let limits = self.limits(case, &topic, seed).await?;
        let env = self.opts.consumer_env.clone();
        let drain = self.drain(case, &topic, &env, None).await?;
        log(format!(
            "{}: L1 {:.0}/s, L2 {:.0}/s, pipeline {:.0}/s, consumer {:.2} CPU-s/M",
            case.label(),
            limits.l1_rate(),
            limits.l2_rate(),
            drain.rate(),
            crate::stats::cpu_per_million(drain.consumer_cpu, drain.events)
        ));
        Ok((
            CaseResult {
                case: case.clone(),
                payload_bytes,
                limits,
                drain,
            },
            topic,
        ))
    }

    /// L1 (raw consume of the topic) and L2 (raw POSTs of the same events' bodies).
    async fn limits(&mut self, case: &Case, topic: &str, seed: u64) -> Result<Limits> {
        let n = case.events as u64;
        let bound = Duration::from_secs(120) + Duration::from_millis(n);
        // L1: the best of a few fetch waits (each in a new group, from the start).
        let mut l1 = RawConsume::default();
        let mut l1_broker_cpu = 0.0;
        for wait in L1_FETCH_WAITS_MS {
            let b0 = self.broker.kafka.usage().cpu_seconds;
            let tried = raw_consume(&self.broker.addr, topic, n, bound, wait).await?;
            let cpu = self.broker.kafka.usage().cpu_seconds - b0;
            if rate(tried.events, tried.seconds) > rate(l1.events, l1.seconds) {
                (l1, l1_broker_cpu) = (tried, cpu);
            }
        }

        // The same events (same seed), as the consumer would render them.
        let events = workload::events(case.orgs, case.size, case.events, seed)?;
        let bodies = build_bodies(&events, case.endpoint);
        drop(events);
        let bodies = std::sync::Arc::new(bodies);
        let mut best: Option<Limits> = None;
        for concurrency in l2_concurrencies(case.orgs) {
            self.sim.reset().await?;
            let (s0, c0) = (self.sim.proc.usage().cpu_seconds, Usage::own().cpu_seconds);
            let l2 = raw_post(
                &self.sim.endpoint_url(case.endpoint),
                case.endpoint,
                bodies.clone(),
                concurrency,
                bound,
            )
            .await?;
            let (s1, c1) = (self.sim.proc.usage().cpu_seconds, Usage::own().cpu_seconds);
            let got = self.sim.counts().await?.distinct_event_ids;
            if got != n {
                return Err(BenchError::step(format!(
                    "L2: siem-sim has {got} distinct events, expected {n}"
                )));
            }
            let tried = Limits {
                l1,
                l1_broker_cpu,
                l2,
                l2_sim_cpu: s1 - s0,
                l2_client_cpu: c1 - c0,
                l2_concurrency: concurrency,
            };
            if best.is_none_or(|b| tried.l2_rate() > b.l2_rate()) {
                best = Some(tried);
            }
        }
        self.sim.reset().await?;
        best.ok_or_else(|| BenchError::step("no L2 concurrency to try"))
    }

    /// Start a consumer on the preloaded `topic` and time it until siem-sim has every event.
    /// With `perf_out`, the consumer runs as the child of `perf record` (writing there), so
    /// the CPU figures are perf's own: a profiling drain is not a measurement.
    pub(crate) async fn drain(
        &mut self,
        case: &Case,
        topic: &str,
        env: &[(String, String)],
        perf_out: Option<&PathBuf>,
    ) -> Result<Drain> {
        let n = case.events as u64;
        self.sim.reset().await?;
        let url = self.sim.endpoint_url(case.endpoint);
        let name = format!("consumer-{}", case.name);
        let wrapper = match perf_out {
            Some(out) => Some(perf_wrapper(
                &consumer::bin(self.opts.consumer_bin.as_deref()),
                out,
                &self.opts.dir,
            )?),
            None => None,
        };
        let mut consumer = consumer::start(
            wrapper.as_deref().or(self.opts.consumer_bin.as_deref()),
            &self.opts.dir,
            &name,
            &self.broker.addr,
            topic,
            &url,
            case.endpoint,
            env,
        )?;
        consumer.wait_ready(Duration::from_secs(60)).await?;
        let c0 = consumer.proc.usage();
        let (b0, s0, own0) = (
            self.broker.kafka.usage().cpu_seconds,
            self.sim.proc.usage().cpu_seconds,
            Usage::own().cpu_seconds,
        );
        let (m0, t0) = (machine::busy_seconds(), Instant::now());
        let bound = Duration::from_secs(60) + Duration::from_millis(n);
        let mut peak_parked = 0f64;
        let mut polls = 0u32;
        // With indexer acks the drain ends when every event is acked (delivered), not when
        // it arrived: the consumer counts an event delivered once its ack is confirmed.
        let acked = case.endpoint == Endpoint::HecAck;
        let mut acked_at = None;
        let stats = loop {
            let stats = self.sim.counts().await?;
            if stats.distinct_event_ids >= n && !acked {
                break stats;
            }
            if stats.distinct_event_ids >= n {
                let delivered = consumer
                    .metrics()
                    .await
                    .map(|m| metric_total(&m, "els_events_delivered_total"))
                    .unwrap_or(0.0);
                if delivered >= n as f64 {
                    acked_at = Some(chrono::Utc::now());
                    break stats;
                }
            }
            consumer.proc.check_alive()?;
            if t0.elapsed() > bound {
                return Err(BenchError::timeout(
                    format!("{n} events at siem-sim (have {})", stats.distinct_event_ids),
                    bound,
                ));
            }
            // The parked gauge every ~250 ms (a spill to disk is worth knowing about).
            polls += 1;
            if polls % 5 == 0 {
                if let Ok(m) = consumer.metrics().await {
                    peak_parked = peak_parked.max(metric_total(&m, "els_events_parked"));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let c1 = consumer.proc.usage();
        let (b1, s1, own1) = (
            self.broker.kafka.usage().cpu_seconds,
            self.sim.proc.usage().cpu_seconds,
            Usage::own().cpu_seconds,
        );
        let (m1, window) = (machine::busy_seconds(), t0.elapsed().as_secs_f64());
        let (first, last) = self.sim.first_and_last().await?;
        let metrics = consumer.metrics().await?;
        // perf passes the SIGTERM on to the consumer, then writes its file.
        let grace = if perf_out.is_some() {
            PERF_GRACE
        } else {
            CONSUMER_GRACE
        };
        consumer.proc.terminate(grace);
        let ours = (c1.cpu_seconds - c0.cpu_seconds) + (b1 - b0) + (s1 - s0) + (own1 - own0);
        Ok(Drain {
            events: n,
            seconds: (acked_at.unwrap_or(last) - first).num_milliseconds().max(1) as f64 / 1000.0,
            consumer_cpu: c1.cpu_seconds - c0.cpu_seconds,
            consumer_cpu_total: c1.cpu_seconds,
            broker_cpu: b1 - b0,
            sim_cpu: s1 - s0,
            other_cpu: ((m1 - m0) - ours).max(0.0),
            window,
            peak_rss: c1.peak_rss,
            mean_batch: histogram_mean(&metrics, "els_batch_size_events"),
            requests: stats.requests,
            duplicates: stats.duplicates,
            dead_lettered: metric_total(&metrics, "els_events_dead_lettered_total"),
            peak_parked,
        })
    }

    /// Latency at fixed rates below the main case's drain rate: first the broker's floor
    /// (a plain consumer at 50 %), then the pipeline at each fraction, on fresh topics with
    /// a consumer that is already running and warmed up.
    async fn open_loop(&mut self, drain_rate: f64) -> Result<(Option<Latency>, Vec<OpenLoop>)> {
        let orgs = workload::matrix(1, false)[0].orgs;
        let steps = |fraction: f64| {
            ((drain_rate * fraction * self.opts.open_loop_seconds) as usize)
                .clamp(100, SIM_MAX_STORED)
        };
        let producer = self.broker.producer()?;

        // The floor: producer -> broker -> a plain consumer, no pipeline.
        let floor_topic = self.fresh_topic("floor").await?;
        let count = steps(0.5);
        let events = workload::events(orgs, Size::Small, count, 999)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let consume = crate::kafka::floor_latency(
            &self.broker.addr,
            &floor_topic,
            count as u64,
            Duration::from_secs(180),
            tx,
        );
        let produce = async {
            let ready =
                tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
                    .await
                    .map_err(|e| {
                        BenchError::step(format!("waiting for the floor consumer: {e}"))
                    })?;
            if ready.is_err() {
                return Err(BenchError::step(
                    "the floor consumer got no partitions in 60 s",
                ));
            }
            produce_at_rate(&producer, &floor_topic, events, drain_rate * 0.5).await
        };
        let (floor, produced) = tokio::join!(consume, produce);
        produced?;
        let floor = floor?;
        let floor = Latency::of(floor);
        log(format!(
            "open loop floor (broker only, 50%): p50 {:.0} ms, p99 {:.0} ms",
            floor.p50, floor.p99
        ));

        let topic = self.fresh_topic("open").await?;
        let url = self.sim.endpoint_url(Endpoint::Hec);
        let mut consumer = consumer::start(
            self.opts.consumer_bin.as_deref(),
            &self.opts.dir,
            "consumer-open-loop",
            &self.broker.addr,
            &topic,
            &url,
            Endpoint::Hec,
            &self.opts.consumer_env,
        )?;
        consumer.wait_ready(Duration::from_secs(60)).await?;
        // Warm-up (not measured): a second at 25 % starts every org's worker and connection.
        let warm = ((drain_rate * 0.25) as usize).clamp(100, 20_000);
        self.sim.reset().await?;
        let events = workload::events(orgs, Size::Small, warm, 998)?;
        produce_at_rate(&producer, &topic, events, drain_rate * 0.25).await?;
        self.sim
            .wait_distinct(warm as u64, Duration::from_secs(60), || {
                Ok(consumer.proc.check_alive()?)
            })
            .await?;
        let mut out = Vec::new();
        for (k, fraction) in OPEN_LOOP_FRACTIONS.into_iter().enumerate() {
            let target = drain_rate * fraction;
            let count = steps(fraction);
            let events = workload::events(orgs, Size::Small, count, 1000 + k as u64)?;
            self.sim.reset().await?;
            let paced = produce_at_rate(&producer, &topic, events, target).await?;
            let stats = self
                .sim
                .wait_distinct(count as u64, Duration::from_secs(120), || {
                    Ok(consumer.proc.check_alive()?)
                })
                .await?;
            let records = self.sim.all_records().await?;
            let samples: Vec<f64> = records
                .iter()
                .filter_map(|r| Some((r.received()? - r.event_time()?).num_milliseconds() as f64))
                .collect();
            let latency = Latency::of(samples);
            log(format!(
                "open loop {:.0}% ({target:.0}/s, {count} events): p50 {:.0} ms, p99 {:.0} ms, p99.9 {:.0} ms",
                fraction * 100.0,
                latency.p50,
                latency.p99,
                latency.p999
            ));
            out.push(OpenLoop {
                fraction,
                target_rate: target,
                paced,
                latency,
                duplicates: stats.duplicates,
                requests: stats.requests,
                received: stats.events,
            });
        }
        consumer.proc.terminate(CONSUMER_GRACE);
        self.sim.reset().await?;
        Ok((Some(floor), out))
    }

    pub(crate) async fn fresh_topic(&self, name: &str) -> Result<String> {
        let topic = format!(
            "bench-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.broker.create_topic(&topic).await?;
        Ok(topic)
    }

    async fn naive(&mut self, topic: &str) -> Result<Vec<Naive>> {
        let python = naive::python(&self.opts.root)?;
        let script = self.opts.root.join("bench/naive/forwarder.py");
        let mut out = Vec::new();
        for mode in [naive::Mode::Single, naive::Mode::Batch] {
            self.sim.reset().await?;
            let report = naive::run(
                &python,
                &script,
                &self.opts.dir,
                &self.broker.addr,
                topic,
                &self.sim.endpoint_url(Endpoint::Hec),
                mode,
                self.opts.events as u64,
                self.opts.naive_seconds,
            )?;
            let received = self.sim.counts().await?.distinct_event_ids;
            log(format!(
                "{}: {} events in {:.1} s ({:.0}/s)",
                mode.label(),
                report.events,
                report.seconds,
                rate(report.events, report.seconds)
            ));
            out.push(Naive {
                mode,
                report,
                received,
            });
        }
        self.sim.reset().await?;
        Ok(out)
    }

    /// Drain `case` once more with `perf record` attached (not a measured run).
    async fn profile(&mut self, case: &Case) -> Result<PathBuf> {
        let (topic, _) = self.preload(case, 4242).await?;
        let out = self.opts.dir.join("perf-consumer.data");
        let env = self.opts.consumer_env.clone();
        self.drain(case, &topic, &env, Some(&out)).await?;
        log(format!(
            "profile written: perf report -i {} --no-children --percent-limit 1",
            out.display()
        ));
        Ok(out)
    }
}

/// Fewest and most events of the main case (`--events`): the side cases take a fraction of
/// it, at least 1,000 each; the topic and siem-sim's ids must fit the machine.
pub const MIN_EVENTS: usize = 1_000;
pub const MAX_EVENTS: usize = 10_000_000;
/// Longest open-loop step (`--open-loop-seconds`).
pub const MAX_OPEN_LOOP_SECONDS: f64 = 300.0;

/// Check the run's flags before anything starts (a run of nothing would still rewrite the
/// report): `--events` within bounds, open-loop seconds and base positive, every `--only`
/// name a case, `--consumer-bin` a file.
pub fn check_flags(
    events: Option<usize>,
    open_loop_seconds: Option<f64>,
    open_loop_base: Option<f64>,
    only: &[String],
    consumer_bin: Option<&std::path::Path>,
) -> std::result::Result<(), String> {
    if let Some(n) = events {
        if !(MIN_EVENTS..=MAX_EVENTS).contains(&n) {
            return Err(format!(
                "--events {n}: between {MIN_EVENTS} and {MAX_EVENTS} events"
            ));
        }
    }
    if let Some(s) = open_loop_seconds {
        if !(s > 0.0 && s <= MAX_OPEN_LOOP_SECONDS) {
            return Err(format!(
                "--open-loop-seconds {s}: more than 0 and at most {MAX_OPEN_LOOP_SECONDS}"
            ));
        }
    }
    if let Some(base) = open_loop_base {
        if !(base.is_finite() && base > 0.0) {
            return Err(format!(
                "--open-loop-base {base}: a rate in events/s, more than 0"
            ));
        }
    }
    let names: Vec<String> = workload::matrix(MIN_EVENTS, true)
        .into_iter()
        .map(|c| c.name)
        .collect();
    if let Some(unknown) = only.iter().find(|o| !names.contains(o)) {
        return Err(format!(
            "--only {unknown}: no such case (cases: {})",
            names.join(", ")
        ));
    }
    if let Some(bin) = consumer_bin {
        if !bin.is_file() {
            return Err(format!("--consumer-bin {}: no such file", bin.display()));
        }
    }
    Ok(())
}

/// How long `perf record` has to stop its consumer and write its file.
const PERF_GRACE: Duration = Duration::from_secs(120);

/// A script that runs `bin` as the child of `perf record` (call graphs via DWARF), writing
/// to `out`. `perf record -p <pid>` (attaching to a running process) records no samples on
/// machines that let perf sample only its own children; a child is sampled everywhere.
fn perf_wrapper(
    bin: &std::path::Path,
    out: &std::path::Path,
    dir: &std::path::Path,
) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("perf-consumer.sh");
    let text = format!(
        "#!/bin/sh\nexec perf record -F 499 --call-graph dwarf,16384 -o {} -- {} \"$@\"\n",
        shell_quote(&out.display().to_string()),
        shell_quote(&bin.display().to_string()),
    );
    let write = || -> std::io::Result<()> {
        std::fs::write(&script, text)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
    };
    write().map_err(|e| BenchError::io(format!("writing {}", script.display()), e))?;
    Ok(script)
}

/// `s` in single quotes for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_before_a_run() {
        let ok = |events, secs, base, only: &[&str], bin: Option<&str>| {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            check_flags(events, secs, base, &only, bin.map(std::path::Path::new))
        };
        assert_eq!(ok(None, None, None, &[], None), Ok(()));
        assert_eq!(
            ok(
                Some(600_000),
                Some(4.0),
                Some(4000.0),
                &["main", "org10k"],
                None
            ),
            Ok(())
        );
        assert_eq!(ok(None, None, None, &["main-ack", "ndjson"], None), Ok(()));
        let err = |r: std::result::Result<(), String>| r.unwrap_err();
        assert!(err(ok(Some(0), None, None, &[], None)).starts_with("--events 0:"));
        assert!(err(ok(Some(MAX_EVENTS + 1), None, None, &[], None)).starts_with("--events"));
        assert!(err(ok(None, Some(0.0), None, &[], None)).starts_with("--open-loop-seconds"));
        assert!(err(ok(None, Some(f64::NAN), None, &[], None)).starts_with("--open-loop-seconds"));
        assert!(err(ok(None, None, Some(-5.0), &[], None)).starts_with("--open-loop-base -5"));
        let unknown = err(ok(None, None, None, &["main", "bogus"], None));
        assert!(
            unknown.starts_with("--only bogus: no such case (cases: main, main-ack, org1"),
            "{unknown}"
        );
        assert!(
            err(ok(None, None, None, &[], Some("/nonexistent/els-consumer")))
                .ends_with("no such file")
        );
    }

    #[test]
    fn the_perf_wrapper_runs_the_consumer_as_its_child() {
        let dir = std::env::temp_dir().join(format!("els-bench-perf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = std::path::Path::new("/opt/it's here/els-consumer");
        let out = dir.join("perf.data");
        let script = perf_wrapper(bin, &out, &dir).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\nexec perf record "), "{text}");
        assert!(
            text.contains(&format!(
                "-o '{}' -- '/opt/it'\\''s here/els-consumer' \"$@\"",
                out.display()
            )),
            "{text}"
        );
        // The quoting holds: sh reads the path back unchanged.
        let echoed = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                shell_quote(&bin.display().to_string())
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(echoed.stdout).unwrap(),
            bin.display().to_string()
        );
    }
}
