//! Soak mode (`els-bench --soak-minutes N`): the main-case topology (one broker, siem-sim,
//! the release consumer, 100 orgs, HEC) under an open-loop producer at half the drain rate
//! for N minutes, with faults injected in turn (a siem-sim 503 burst, a consumer restart by
//! SIGTERM, once by SIGKILL), sampled every 10 s, and judged at the end: RSS flat, lag back
//! to its steady level within 30 s of each fault, and no acknowledged event lost.
//!
//! The pure parts (the fault plan, the verdicts, the CSV, the bitmaps of event sequence
//! numbers) are unit-tested; the run itself is a benchmark step like the others.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use els_model::ExecutionEvent;
use els_testkit::{metric_total, parse_metrics, Usage};
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::de::{SeqAccess, Visitor};
use tokio::sync::mpsc;

use crate::consumer;
use crate::error::{BenchError, Result};
use crate::report::MIB;
use crate::scenario::{log, Bench, CONSUMER_GRACE};
use crate::sim::Stats;
use crate::stats::rate;
use crate::workload::{self, group_digits, payload, Endpoint, Size};

/// Longest soak `--soak-minutes` accepts.
pub const MAX_MINUTES: u64 = 240;
/// Sampling period of the series.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Lag must be back to its steady level within this many seconds after each fault.
pub const RECOVERY_LIMIT_S: f64 = 30.0;
/// RSS at the end within this fraction of the reference sample.
pub const RSS_TOLERANCE: f64 = 0.10;
/// Most events one soak produces (siem-sim keeps every id, ~100 bytes each, and answers them
/// all as one JSON array at the end): the rate is lowered to fit, and an explicit
/// `--soak-rate` above it is refused.
pub const MAX_EVENTS: u64 = 24_000_000;
/// The soak topic keeps at most this much per partition (old segments are deleted), so a
/// long soak does not fill the disk; the consumer is normally less than a second behind.
pub const RETENTION_BYTES_PER_PARTITION: &str = "1073741824";
/// Events of the quick drain that sets the default rate.
pub const DRAIN_EVENTS: usize = 100_000;
/// Longest 503 burst.
pub const MAX_BURST_S: f64 = 20.0;

/// `--soak-minutes` must be 1..=[`MAX_MINUTES`].
pub fn check_minutes(minutes: u64) -> std::result::Result<(), String> {
    match minutes {
        0 => Err("--soak-minutes 0: a soak needs at least 1 minute".into()),
        n if n > MAX_MINUTES => Err(format!(
            "--soak-minutes {n}: at most {MAX_MINUTES} minutes (4 hours) per soak; run several if you need longer"
        )),
        _ => Ok(()),
    }
}

/// An explicit `--soak-rate` must be positive and fit [`MAX_EVENTS`] over the soak.
pub fn check_rate(rate: f64, minutes: u64) -> std::result::Result<(), String> {
    let total = rate * minutes as f64 * 60.0;
    if rate.is_nan() || rate <= 0.0 {
        return Err(format!("--soak-rate {rate}: must be > 0 events/s"));
    }
    if total > MAX_EVENTS as f64 {
        return Err(format!(
            "--soak-rate {rate} for {minutes} min is {} events, more than the soak's bound of {} \
             (disk for the topic, memory for siem-sim's ids); use at most {:.0} ev/s",
            group_digits(total as u64),
            group_digits(MAX_EVENTS),
            MAX_EVENTS as f64 / (minutes as f64 * 60.0)
        ));
    }
    Ok(())
}

/// The default rate: half the drain rate, lowered to fit [`MAX_EVENTS`].
pub fn default_rate(drain_rate: f64, minutes: u64) -> f64 {
    (drain_rate / 2.0).min(MAX_EVENTS as f64 / (minutes.max(1) as f64 * 60.0))
}

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// siem-sim answers every ingest request 503 for a while.
    Sim503,
    /// SIGTERM to the consumer (graceful exit), then start it again.
    Term,
    /// SIGKILL to the consumer, then start it again.
    Kill,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Sim503 => "siem-sim 503 burst",
            FaultKind::Term => "consumer SIGTERM + restart",
            FaultKind::Kill => "consumer SIGKILL + restart",
        }
    }

    fn short(self) -> &'static str {
        match self {
            FaultKind::Sim503 => "503",
            FaultKind::Term => "sigterm",
            FaultKind::Kill => "sigkill",
        }
    }
}

/// A fault of the plan: when (seconds since the producer started), what, and for a 503
/// burst how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFault {
    pub at: f64,
    pub kind: FaultKind,
    pub burst_s: f64,
}

/// Faults for a soak of `total` seconds: one every `period` = (total − 45) / 3 clamped to
/// 45..=180 s, the last at least 45 s before the end. Three or fewer: a 503 burst, a SIGTERM
/// restart, a SIGKILL restart; more: 503 bursts and restarts in turn, the second restart by
/// SIGKILL and the others by SIGTERM. Bursts last min(20 s, period / 3).
pub fn plan(total: f64) -> Vec<PlannedFault> {
    let period = ((total - 45.0) / 3.0).clamp(45.0, 180.0);
    let burst_s = MAX_BURST_S.min(period / 3.0);
    let mut slots = Vec::new();
    let mut at = period;
    while at + 45.0 <= total + 1e-9 {
        slots.push(at);
        at += period;
    }
    let n = slots.len();
    slots
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            let kind = if n <= 3 {
                [FaultKind::Sim503, FaultKind::Term, FaultKind::Kill][i]
            } else if i % 2 == 0 {
                FaultKind::Sim503
            } else if i / 2 == 1 {
                FaultKind::Kill
            } else {
                FaultKind::Term
            };
            PlannedFault { at, kind, burst_s }
        })
        .collect()
}

/// One sample of the series (`None` where the consumer was down or did not answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the producer started.
    pub t: f64,
    pub rss_mib: Option<f64>,
    /// `els_heap_bytes{kind="allocated"}` (live heap) and `{kind="resident"}` (pages the
    /// allocator keeps), in MiB; `None` when the consumer does not report them.
    pub heap_allocated_mib: Option<f64>,
    pub heap_resident_mib: Option<f64>,
    /// Consumer CPU since the previous sample, in cores.
    pub cpu_cores: Option<f64>,
    /// Sum of `els_consumer_lag_messages` (high watermark − committed, per owned partition,
    /// refreshed every 5 s by the consumer); `None` when it owned no partition.
    pub lag: Option<f64>,
    pub parked: Option<f64>,
    pub pending_acks: Option<f64>,
    /// Events the broker acknowledged to the producer so far.
    pub acked: u64,
    /// Distinct event ids at siem-sim so far (`None` when `/sim/stats` did not answer in
    /// time).
    pub at_sim: Option<u64>,
}

impl Sample {
    /// Acknowledged events not yet at siem-sim.
    pub fn backlog(&self) -> Option<u64> {
        self.at_sim.map(|a| self.acked.saturating_sub(a))
    }
}

/// What one fault did.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Injected at (s since start).
    pub at: f64,
    /// Lifted at: the 503s stopped, or the restarted consumer owned partitions again.
    pub ended: f64,
    /// Seconds from `ended` until lag and backlog were at their steady level; `None` if
    /// they were not before the next fault (or the end).
    pub recovered_after: Option<f64>,
    /// e.g. whether the SIGTERM exit was clean.
    pub note: String,
}

/// The soak's verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdicts {
    /// (t, MiB) of the reference sample: the one nearest 5 minutes, or N/2 for N < 10.
    pub rss_ref: Option<(f64, f64)>,
    /// (t, MiB) of the last sample with an RSS.
    pub rss_end: Option<(f64, f64)>,
    pub rss_ok: bool,
    pub recoveries_ok: bool,
    pub lost: u64,
    pub lost_ok: bool,
}

impl Verdicts {
    pub fn all_ok(&self) -> bool {
        self.rss_ok && self.recoveries_ok && self.lost_ok
    }
}

/// When the RSS reference sample is taken: after 5 minutes, or half-way for soaks under 10.
pub fn rss_reference_time(minutes: u64) -> f64 {
    if minutes >= 10 {
        300.0
    } else {
        minutes as f64 * 60.0 / 2.0
    }
}

/// The verdicts over the samples, the faults and the count of lost events.
pub fn verdicts(samples: &[Sample], minutes: u64, faults: &[FaultRecord], lost: u64) -> Verdicts {
    let t_ref = rss_reference_time(minutes);
    let with_rss = || samples.iter().filter_map(|s| Some((s.t, s.rss_mib?)));
    let rss_ref = with_rss().min_by(|a, b| (a.0 - t_ref).abs().total_cmp(&(b.0 - t_ref).abs()));
    let rss_end = with_rss().next_back();
    let rss_ok = match (rss_ref, rss_end) {
        (Some((_, r)), Some((_, e))) if r > 0.0 => (e - r).abs() <= RSS_TOLERANCE * r,
        _ => false,
    };
    let recoveries_ok = faults
        .iter()
        .all(|f| f.recovered_after.is_some_and(|s| s <= RECOVERY_LIMIT_S));
    Verdicts {
        rss_ref,
        rss_end,
        rss_ok,
        recoveries_ok,
        lost,
        lost_ok: lost == 0,
    }
}

/// Recovered: the consumer reports lag for its partitions and it is at most `threshold`,
/// and at most `threshold` acknowledged events are not yet at siem-sim.
pub fn is_recovered(lag: Option<f64>, backlog: Option<u64>, threshold: f64) -> bool {
    lag.is_some_and(|l| l <= threshold) && backlog.is_some_and(|b| b as f64 <= threshold)
}

/// The steady level lag returns to: the consumer commits every second (auto-commit), so
/// under load its committed offsets trail the high watermark by about a second of traffic;
/// twice the rate, at least 1,000.
pub fn steady_threshold(rate: f64) -> f64 {
    (2.0 * rate).max(1000.0)
}

/// The samples as CSV (empty fields for missing values).
pub fn csv(samples: &[Sample]) -> String {
    let mut s = String::from(
        "t_s,rss_mib,heap_allocated_mib,heap_resident_mib,cpu_cores,consumer_lag,parked,\
         pending_ack_events,acked,at_sim,backlog\n",
    );
    let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for x in samples {
        let _ = writeln!(
            s,
            "{:.1},{},{},{},{},{},{},{},{},{},{}",
            x.t,
            f(x.rss_mib),
            f(x.heap_allocated_mib),
            f(x.heap_resident_mib),
            f(x.cpu_cores),
            f(x.lag),
            f(x.parked),
            f(x.pending_acks),
            x.acked,
            n(x.at_sim),
            n(x.backlog())
        );
    }
    s
}

/// Set bit `i` (growing the bitmap).
pub fn set_bit(bits: &mut Vec<u64>, i: u64) {
    let word = (i / 64) as usize;
    if word >= bits.len() {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (i % 64);
}

/// Sequence numbers set in `acked` but not in `seen`: their count and the first few.
pub fn missing(acked: &[u64], seen: &[u64]) -> (u64, Vec<u64>) {
    let mut count = 0;
    let mut first = Vec::new();
    for (w, a) in acked.iter().enumerate() {
        let lost = a & !seen.get(w).copied().unwrap_or(0);
        count += u64::from(lost.count_ones());
        let mut bits = lost;
        while bits != 0 && first.len() < 10 {
            let b = bits.trailing_zeros();
            first.push(w as u64 * 64 + u64::from(b));
            bits &= bits - 1;
        }
    }
    (count, first)
}

/// Event ids of a soak: a random run prefix in the high half (UUID version 4 bits set) and
/// the sequence number in the low half (RFC 4122 variant bits set).
pub fn event_id(prefix: u64, seq: u64) -> uuid::Uuid {
    let hi = (prefix & !0xF000) | 0x4000;
    let lo = (seq & !(0b11 << 62)) | (0b10 << 62);
    uuid::Uuid::from_u64_pair(hi, lo)
}

/// The sequence number of one of this run's ids (`None` for another's).
pub fn seq_of(prefix: u64, id: &uuid::Uuid) -> Option<u64> {
    let (hi, lo) = id.as_u64_pair();
    (hi == (prefix & !0xF000) | 0x4000).then_some(lo & !(0b11 << 62))
}

/// What a soak was asked to do.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub minutes: u64,
    /// Events/s instead of half the measured drain rate.
    pub rate: Option<f64>,
    /// Also write the plot to `docs/soak.png` (soaks of 10 minutes or more).
    pub plot_to_docs: bool,
}

/// What a soak measured.
#[derive(Debug, Clone)]
pub struct SoakResult {
    pub minutes: u64,
    pub rate: f64,
    /// The quick drain (events/s, events) when the rate came from it.
    pub drain: Option<(f64, u64)>,
    pub threshold: f64,
    pub samples: Vec<Sample>,
    pub faults: Vec<FaultRecord>,
    pub produced: u64,
    pub produce_errors: u64,
    pub acked: u64,
    pub at_sim: u64,
    pub duplicates: u64,
    pub sim_requests: u64,
    pub sim_events: u64,
    pub lost: u64,
    pub lost_examples: Vec<u64>,
    /// Ids at siem-sim that are not this run's.
    pub foreign: u64,
    pub seconds: f64,
    pub verdicts: Verdicts,
    pub csv: PathBuf,
    pub pngs: Vec<PathBuf>,
    pub plot_note: String,
}

/// What the sampler and the fault loop read.
#[derive(Clone)]
struct Probe {
    start: Instant,
    pid: Arc<AtomicU32>,
    admin_url: String,
    sim_url: String,
    acked: Arc<AtomicU64>,
    client: reqwest::Client,
}

impl Probe {
    async fn metrics(&self) -> Option<std::collections::BTreeMap<String, f64>> {
        let r = self
            .client
            .get(format!("{}/metrics", self.admin_url))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        Some(parse_metrics(
            &r.error_for_status().ok()?.text().await.ok()?,
        ))
    }

    async fn sim_stats(&self) -> Option<Stats> {
        let r = self
            .client
            .get(format!("{}/sim/stats", self.sim_url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// (lag, backlog) now.
    async fn lag_and_backlog(&self) -> (Option<f64>, Option<u64>) {
        let lag = self.metrics().await.as_ref().and_then(lag_of);
        let acked = self.acked.load(Ordering::Relaxed);
        let at_sim = self.sim_stats().await.map(|s| s.distinct_event_ids);
        (lag, at_sim.map(|a| acked.saturating_sub(a)))
    }

    async fn sample(&self, prev: &mut Option<(u32, f64, Instant)>) -> Sample {
        let now = Instant::now();
        let pid = self.pid.load(Ordering::Relaxed);
        let usage = (pid != 0).then(|| Usage::of(pid)).flatten();
        let cpu_cores = usage.and_then(|u| {
            let cores = match *prev {
                Some((p, c, at)) if p == pid => {
                    (u.cpu_seconds - c) / (now - at).as_secs_f64().max(1e-3)
                }
                // A new process since the last sample: its CPU so far over the period.
                Some((_, _, at)) => u.cpu_seconds / (now - at).as_secs_f64().max(1e-3),
                None => return None,
            };
            Some(cores)
        });
        if let Some(u) = usage {
            *prev = Some((pid, u.cpu_seconds, now));
        }
        let metrics = self.metrics().await;
        let stats = self.sim_stats().await;
        Sample {
            t: (now - self.start).as_secs_f64(),
            rss_mib: usage.map(|u| u.rss as f64 / MIB),
            heap_allocated_mib: metrics.as_ref().and_then(|m| heap_mib(m, "allocated")),
            heap_resident_mib: metrics.as_ref().and_then(|m| heap_mib(m, "resident")),
            cpu_cores,
            lag: metrics.as_ref().and_then(lag_of),
            parked: metrics
                .as_ref()
                .map(|m| metric_total(m, "els_events_parked")),
            pending_acks: metrics
                .as_ref()
                .map(|m| metric_total(m, "els_hec_ack_pending_events")),
            acked: self.acked.load(Ordering::Relaxed),
            at_sim: stats.map(|s| s.distinct_event_ids),
        }
    }
}

/// `els_heap_bytes{kind}` in MiB, `None` when the consumer does not report it.
fn heap_mib(m: &std::collections::BTreeMap<String, f64>, kind: &str) -> Option<f64> {
    m.get(&format!("els_heap_bytes{{kind=\"{kind}\"}}"))
        .map(|b| b / MIB)
}

/// The allocator's figures beside the RSS verdict: whether what RSS kept is live data or
/// pages the allocator holds.
pub fn heap_line(samples: &[Sample], t_ref: f64) -> String {
    let with_heap = || {
        samples
            .iter()
            .filter_map(|s| Some((s.t, s.heap_allocated_mib?, s.heap_resident_mib?, s.rss_mib?)))
    };
    let near_ref = with_heap().min_by(|a, b| (a.0 - t_ref).abs().total_cmp(&(b.0 - t_ref).abs()));
    match (near_ref, with_heap().next_back()) {
        (Some(r), Some(e)) => format!(
            "Heap as jemalloc reports it (`els_heap_bytes`: every allocation of the consumer, \
             librdkafka's included), at {:.0} s → at {:.0} s: allocated {:.0} → {:.0} MiB, \
             resident {:.0} → {:.0} MiB (an upper bound: pages never touched count too); \
             RSS {:.0} → {:.0} MiB.",
            r.0, e.0, r.1, e.1, r.2, e.2, r.3, e.3
        ),
        _ => "The consumer did not report `els_heap_bytes` (not built with jemalloc).".into(),
    }
}

/// Sum of `els_consumer_lag_messages` over partitions, `None` when no partition is reported.
fn lag_of(m: &std::collections::BTreeMap<String, f64>) -> Option<f64> {
    let name = "els_consumer_lag_messages{";
    m.keys()
        .any(|k| k.starts_with(name))
        .then(|| metric_total(m, "els_consumer_lag_messages"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Produced by the soak's producer.
struct Produced {
    sent: u64,
    errors: u64,
}

/// Send templates (cycled, each with its own id and its intended send time as timestamp)
/// at `rate` until `until` after `start`; hand each delivery future to `acks`.
#[allow(clippy::too_many_arguments)]
async fn produce_for(
    producer: FutureProducer,
    topic: String,
    mut templates: Vec<ExecutionEvent>,
    prefix: u64,
    rate: f64,
    start: Instant,
    until: Duration,
    acks: mpsc::UnboundedSender<(u64, DeliveryFuture)>,
) -> Produced {
    let start_wall: DateTime<Utc> = Utc::now();
    let interval = 1.0 / rate.max(1.0);
    let mut out = Produced { sent: 0, errors: 0 };
    let mut seq = 0u64;
    let n = templates.len().max(1);
    loop {
        let now = start.elapsed().as_secs_f64();
        if now >= until.as_secs_f64() {
            return out;
        }
        while (seq as f64) * interval <= now {
            let intended = (seq as f64) * interval;
            let event = &mut templates[(seq as usize) % n];
            event.event_id = event_id(prefix, seq);
            event.timestamp = start_wall + chrono::Duration::microseconds((intended * 1e6) as i64);
            let p = payload(event);
            let record = FutureRecord::to(&topic)
                .key(event.org_id.as_bytes())
                .payload(p.as_slice());
            match producer.send_result(record) {
                Ok(ack) => {
                    out.sent += 1;
                    let _ = acks.send((seq, ack));
                }
                Err(_) => out.errors += 1,
            }
            seq += 1;
        }
        let due = Duration::from_secs_f64((seq as f64) * interval);
        tokio::time::sleep_until(tokio::time::Instant::from_std(start + due)).await;
    }
}

/// Await every delivery in order; the bitmap of acknowledged sequence numbers and the count
/// of failed deliveries.
async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<(u64, DeliveryFuture)>,
    acked: Arc<AtomicU64>,
) -> (Vec<u64>, u64) {
    let mut bits = Vec::new();
    let mut failed = 0;
    while let Some((seq, ack)) = rx.recv().await {
        match ack.await {
            Ok(Ok(_)) => {
                set_bit(&mut bits, seq);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => failed += 1,
        }
    }
    (bits, failed)
}

/// Marks this run's ids of a `/sim/event-ids` answer in a bitmap, without building strings.
struct Mark<'a> {
    prefix: u64,
    seen: &'a mut Vec<u64>,
    foreign: &'a mut u64,
}

impl<'de> Visitor<'de> for Mark<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of event ids")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(id) = seq.next_element::<&'de str>()? {
            match uuid::Uuid::parse_str(id)
                .ok()
                .and_then(|u| seq_of(self.prefix, &u))
            {
                Some(n) => set_bit(self.seen, n),
                None => *self.foreign += 1,
            }
        }
        Ok(())
    }
}

/// The ids in a `/sim/event-ids` JSON array: the bitmap of this run's sequence numbers and
/// the count of other ids.
pub fn mark_ids(json: &[u8], prefix: u64) -> Result<(Vec<u64>, u64)> {
    let mut seen = Vec::new();
    let mut foreign = 0;
    let mut de = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_seq(
        &mut de,
        Mark {
            prefix,
            seen: &mut seen,
            foreign: &mut foreign,
        },
    )?;
    Ok((seen, foreign))
}

impl Bench {
    /// The soak: a quick drain for the rate (unless given), then N minutes of open-loop
    /// traffic with faults, then the loss check.
    pub async fn soak(&mut self, so: &SoakOptions) -> Result<SoakResult> {
        let started = Instant::now();
        let total = so.minutes as f64 * 60.0;
        let main = workload::matrix(DRAIN_EVENTS, false)[0].clone();
        let (rate, drain) = match so.rate {
            Some(r) => (r, None),
            None => {
                let case = workload::Case {
                    events: self.opts.events.min(DRAIN_EVENTS),
                    ..main.clone()
                };
                let (topic, _) = self.preload(&case, 4243).await?;
                let env = self.opts.consumer_env.clone();
                let d = self.drain(&case, &topic, &env, None).await?;
                log(format!(
                    "soak: quick drain of {} events at {:.0} ev/s",
                    d.events,
                    d.rate()
                ));
                (
                    default_rate(d.rate(), so.minutes),
                    Some((d.rate(), d.events)),
                )
            }
        };
        let threshold = steady_threshold(rate);
        let faults_plan = plan(total);
        log(format!(
            "soak: {} min at {rate:.0} ev/s, {} orgs, faults at {:?} s",
            so.minutes,
            main.orgs,
            faults_plan
                .iter()
                .map(|f| (f.at, f.kind.short()))
                .collect::<Vec<_>>()
        ));

        self.sim.reset().await?;
        let topic = format!(
            "bench-soak-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.broker
            .kafka
            .create_topic_with(
                &topic,
                crate::kafka::PARTITIONS,
                &[
                    ("retention.bytes", RETENTION_BYTES_PER_PARTITION),
                    ("segment.bytes", "134217728"),
                ],
            )
            .await?;
        let mut consumer = consumer::start(
            self.opts.consumer_bin.as_deref(),
            &self.opts.dir,
            "consumer-soak",
            &self.broker.addr,
            &topic,
            &self.sim.endpoint_url(Endpoint::Hec),
            Endpoint::Hec,
            &self.opts.consumer_env,
        )?;
        consumer.wait_ready(Duration::from_secs(90)).await?;

        let templates = workload::events(main.orgs, Size::Small, 10_000, 4244)?;
        let prefix = uuid::Uuid::new_v4().as_u64_pair().0;
        let start = Instant::now();
        let probe = Probe {
            start,
            pid: Arc::new(AtomicU32::new(consumer.proc.pid())),
            admin_url: consumer.admin_url.clone(),
            sim_url: self.sim.url.clone(),
            acked: Arc::new(AtomicU64::new(0)),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()?,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let producer = self.broker.producer()?;
        let producing = tokio::spawn(produce_for(
            producer,
            topic.clone(),
            templates,
            prefix,
            rate,
            start,
            Duration::from_secs_f64(total),
            tx,
        ));
        let acking = tokio::spawn(collect_acks(rx, probe.acked.clone()));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sampling = {
            let (probe, samples, stop) = (probe.clone(), samples.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut prev = None;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let s = probe.sample(&mut prev).await;
                    lock(&samples).push(s);
                }
            })
        };

        let mut faults = Vec::new();
        for (i, f) in faults_plan.iter().enumerate() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(
                start + Duration::from_secs_f64(f.at),
            ))
            .await;
            let at = start.elapsed().as_secs_f64();
            log(format!("soak: t={at:.0} s: {}", f.kind.label()));
            let note;
            match f.kind {
                FaultKind::Sim503 => {
                    self.sim
                        .set_faults(serde_json::json!({"status": 503}))
                        .await?;
                    tokio::time::sleep(Duration::from_secs_f64(f.burst_s)).await;
                    self.sim.set_faults(serde_json::json!({})).await?;
                    note = format!("{:.0} s of 503", f.burst_s);
                }
                FaultKind::Term | FaultKind::Kill => {
                    let kind = f.kind;
                    probe.pid.store(0, Ordering::Relaxed);
                    let (c, clean, r) = tokio::task::spawn_blocking(move || {
                        let clean = if kind == FaultKind::Term {
                            consumer.proc.terminate(CONSUMER_GRACE)
                        } else {
                            consumer.proc.kill9();
                            false
                        };
                        let r = consumer.restart();
                        (consumer, clean, r)
                    })
                    .await
                    .map_err(|e| BenchError::step(format!("restarting the consumer: {e}")))?;
                    consumer = c;
                    r?;
                    probe.pid.store(consumer.proc.pid(), Ordering::Relaxed);
                    consumer.wait_ready(Duration::from_secs(90)).await?;
                    note = if kind == FaultKind::Term {
                        format!("exit {}", if clean { "clean" } else { "not clean" })
                    } else {
                        "killed".into()
                    };
                }
            }
            let ended = start.elapsed().as_secs_f64();
            // Until lag and backlog are at their steady level, polling every second, until
            // the next fault (or the end of the run).
            let next = faults_plan.get(i + 1).map_or(total, |n| n.at);
            let mut recovered_after = None;
            while start.elapsed().as_secs_f64() < next {
                let (lag, backlog) = probe.lag_and_backlog().await;
                if is_recovered(lag, backlog, threshold) {
                    recovered_after = Some(start.elapsed().as_secs_f64() - ended);
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            log(format!(
                "soak: {} lifted at t={ended:.0} s ({note}); recovered after {}",
                f.kind.label(),
                recovered_after.map_or("— (not before the next fault)".into(), |s| format!(
                    "{s:.0} s"
                ))
            ));
            faults.push(FaultRecord {
                kind: f.kind,
                at,
                ended,
                recovered_after,
                note,
            });
        }

        let produced = producing
            .await
            .map_err(|e| BenchError::step(format!("soak producer: {e}")))?;
        let (acked_bits, failed) = acking
            .await
            .map_err(|e| BenchError::step(format!("soak acks: {e}")))?;
        let acked = probe.acked.load(Ordering::Relaxed);
        log(format!(
            "soak: producer done: {} sent, {acked} acknowledged, {} failed; waiting for siem-sim",
            produced.sent,
            failed + produced.errors
        ));
        // Every acknowledged event at siem-sim, bounded; what is missing then is lost.
        let wait_from = Instant::now();
        while wait_from.elapsed() < Duration::from_secs(180) {
            if probe
                .sim_stats()
                .await
                .is_some_and(|s| s.distinct_event_ids >= acked)
            {
                break;
            }
            consumer.proc.check_alive()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // One more sample after the drain-out, then stop sampling.
        tokio::time::sleep(Duration::from_secs(6)).await;
        stop.store(true, Ordering::Relaxed);
        let _ = sampling.await;
        {
            let mut last = None;
            let s = probe.sample(&mut last).await;
            lock(&samples).push(s);
        }
        let ids = probe
            .client
            .get(format!("{}/sim/event-ids", self.sim.url))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let (seen, foreign) = mark_ids(&ids, prefix)?;
        drop(ids);
        let (lost, lost_examples) = missing(&acked_bits, &seen);
        let stats = self.sim.counts().await?;
        consumer.proc.terminate(CONSUMER_GRACE);
        self.sim.reset().await?;

        let samples = std::mem::take(&mut *lock(&samples));
        let verdicts = verdicts(&samples, so.minutes, &faults, lost);
        let csv_path = self.opts.dir.join("soak-samples.csv");
        std::fs::write(&csv_path, csv(&samples))
            .map_err(|e| BenchError::io(format!("writing {}", csv_path.display()), e))?;
        let mut pngs = vec![self.opts.dir.join("soak.png")];
        if so.plot_to_docs {
            pngs.push(self.opts.root.join("docs/soak.png"));
        }
        let mut plot_note = String::new();
        for png in &pngs {
            if let Some(dir) = png.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            match plot(&samples, &faults, total, png) {
                Ok(text) => {
                    if !text {
                        plot_note =
                            "no font file found: the plot has no text; the legend is below".into();
                    }
                }
                Err(e) => plot_note = format!("plot failed: {e}"),
            }
        }
        log(format!(
            "soak: {lost} lost, {} duplicates at siem-sim; samples in {}",
            stats.duplicates,
            csv_path.display()
        ));
        Ok(SoakResult {
            minutes: so.minutes,
            rate,
            drain,
            threshold,
            samples,
            faults,
            produced: produced.sent,
            produce_errors: produced.errors + failed,
            acked,
            at_sim: stats.distinct_event_ids,
            duplicates: stats.duplicates,
            sim_requests: stats.requests,
            sim_events: stats.events,
            lost,
            lost_examples,
            foreign,
            seconds: started.elapsed().as_secs_f64(),
            verdicts,
            csv: csv_path,
            pngs,
            plot_note,
        })
    }
}

/// Font files tried for the plot's text (Debian's DejaVu and Liberation packages).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Register the first font file found as `sans-serif`; whether there is one.
fn font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        FONTS.iter().any(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .is_ok()
        })
    })
}

/// Colours of the plot, also named in the report's legend.
const FAULT_COLOURS: [(FaultKind, plotters::style::RGBColor, &str); 3] = [
    (
        FaultKind::Sim503,
        plotters::style::RGBColor(220, 40, 40),
        "red",
    ),
    (
        FaultKind::Term,
        plotters::style::RGBColor(240, 150, 0),
        "orange",
    ),
    (
        FaultKind::Kill,
        plotters::style::RGBColor(130, 40, 180),
        "purple",
    ),
];

fn fault_colour(kind: FaultKind) -> plotters::style::RGBColor {
    FAULT_COLOURS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or(plotters::style::BLACK, |(_, c, _)| *c)
}

type Series = (
    &'static str,
    plotters::style::RGBColor,
    fn(&Sample) -> Option<f64>,
);

/// The panels of the plot, top to bottom: title and series (name, colour, value).
fn panels() -> [(&'static str, Vec<Series>); 4] {
    use plotters::style::RGBColor;
    [
        (
            "consumer RSS (MiB)",
            vec![
                ("VmRSS", RGBColor(30, 90, 200), |s| s.rss_mib),
                ("heap resident", RGBColor(120, 170, 240), |s| {
                    s.heap_resident_mib
                }),
                ("heap allocated", RGBColor(0, 160, 160), |s| {
                    s.heap_allocated_mib
                }),
            ],
        ),
        (
            "consumer CPU (cores)",
            vec![("utime+stime", RGBColor(20, 140, 60), |s| s.cpu_cores)],
        ),
        (
            "lag (events)",
            vec![
                ("els_consumer_lag_messages", RGBColor(0, 0, 0), |s| s.lag),
                ("acked, not at siem-sim", RGBColor(140, 140, 140), |s| {
                    s.backlog().map(|b| b as f64)
                }),
            ],
        ),
        (
            "parked / pending acks (events)",
            vec![
                ("els_events_parked", RGBColor(150, 90, 30), |s| s.parked),
                ("els_hec_ack_pending_events", RGBColor(200, 0, 150), |s| {
                    s.pending_acks
                }),
            ],
        ),
    ]
}

/// Draw the series over time, faults marked (a shaded span from injection to lift and a line
/// at the injection), into a PNG. Returns whether text (titles, axes, legends) was drawn.
pub fn plot(
    samples: &[Sample],
    faults: &[FaultRecord],
    total: f64,
    path: &Path,
) -> std::result::Result<bool, String> {
    use plotters::prelude::*;
    let text = font();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::new(path, (1200, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let xmax = samples.iter().map(|s| s.t).fold(total, f64::max).max(1.0);
    let areas = root.split_evenly((4, 1));
    for (area, (title, series)) in areas.iter().zip(panels()) {
        let ymax = samples
            .iter()
            .flat_map(|s| series.iter().filter_map(move |(_, _, v)| v(s)))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut builder = ChartBuilder::on(area);
        builder.margin(8);
        if text {
            builder
                .caption(title, ("sans-serif", 18))
                .x_label_area_size(28)
                .y_label_area_size(70);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(|e| err(&e))?;
        let x_fmt = |x: &f64| format!("{x:.0}");
        let y_fmt = |y: &f64| {
            if ymax < 10.0 {
                format!("{y:.1}")
            } else {
                group_digits(*y as u64)
            }
        };
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("seconds")
                .label_style(("sans-serif", 13))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| err(&e))?;
        for f in faults {
            let c = fault_colour(f.kind);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(f.at, 0.0), (f.ended.max(f.at + 1.0), ymax)],
                    c.mix(0.18).filled(),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(LineSeries::new(
                    [(f.at, 0.0), (f.at, ymax)],
                    c.stroke_width(2),
                ))
                .map_err(|e| err(&e))?;
        }
        for (name, colour, value) in series {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|s| Some((s.t, value(s)?)))
                .collect();
            let drawn = chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| err(&e))?;
            if text {
                drawn.label(name).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(text)
}

pub const BEGIN: &str = "<!-- els-bench:soak:begin (generated by `els-bench --soak-minutes N`; edits inside are overwritten) -->";
pub const END: &str = "<!-- els-bench:soak:end -->";

/// The report section (markers included).
pub fn render(r: &SoakResult, run: &str) -> String {
    let mut s = String::new();
    let v = &r.verdicts;
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Soak ({} minutes)\n", r.minutes);
    let _ = writeln!(
        s,
        "**Run:** {run} · `els-bench --soak-minutes {}{}` took {:.0} s\n",
        r.minutes,
        if r.drain.is_none() {
            format!(" --soak-rate {}", r.rate)
        } else {
            String::new()
        },
        r.seconds
    );
    let rate_from = match r.drain {
        Some((d, n)) => format!(
            "half the drain rate of a quick main-case drain ({} events at {} ev/s){}",
            group_digits(n),
            group_digits(d as u64),
            if r.rate < d / 2.0 - 1.0 {
                format!(
                    ", lowered to fit the soak's bound of {} events in all",
                    group_digits(MAX_EVENTS)
                )
            } else {
                String::new()
            }
        ),
        None => "`--soak-rate`".into(),
    };
    let _ = writeln!(
        s,
        "Main-case topology (one Apache Kafka node, siem-sim, the release consumer with default settings, \
         100 orgs, small events, HEC without acks) under an open-loop producer at **{} ev/s** ({rate_from}). \
         Faults in turn; a sample every {} s. \"Recovered\" = the consumer's `els_consumer_lag_messages` \
         (high watermark − committed, summed over its partitions) and the events acknowledged by the broker \
         but not yet at siem-sim are both ≤ {} (about two seconds of traffic: the consumer commits every \
         second), timed from the moment the fault was lifted (503s stopped; restarted consumer owning \
         partitions again), polled every second.\n",
        group_digits(r.rate as u64),
        SAMPLE_EVERY.as_secs(),
        group_digits(r.threshold as u64)
    );
    let _ = writeln!(
        s,
        "| # | at | fault | lifted at | | recovered after | ≤ {RECOVERY_LIMIT_S:.0} s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (i, f) in r.faults.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {:.0} s | {} | {:.0} s | {} | {} | {} |",
            i + 1,
            f.at,
            f.kind.label(),
            f.ended,
            f.note,
            f.recovered_after
                .map_or("not before the next fault".into(), |x| format!("{x:.0} s")),
            verdict(f.recovered_after.is_some_and(|x| x <= RECOVERY_LIMIT_S))
        );
    }
    let rss =
        |x: Option<(f64, f64)>| x.map_or("-".into(), |(t, m)| format!("{m:.0} MiB at {t:.0} s"));
    let _ = writeln!(s, "\n| verdict | measured | |");
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(
        s,
        "| RSS at the end within {:.0} % of the sample at {:.0} s | {} → {} | {} |",
        RSS_TOLERANCE * 100.0,
        rss_reference_time(r.minutes),
        rss(v.rss_ref),
        rss(v.rss_end),
        verdict(v.rss_ok)
    );
    let _ = writeln!(
        s,
        "| lag back to steady within {RECOVERY_LIMIT_S:.0} s after each fault | {} of {} | {} |",
        r.faults
            .iter()
            .filter(|f| f.recovered_after.is_some_and(|x| x <= RECOVERY_LIMIT_S))
            .count(),
        r.faults.len(),
        verdict(v.recoveries_ok)
    );
    let _ = writeln!(
        s,
        "| 0 lost (every broker-acknowledged id at siem-sim) | {} lost of {} acknowledged{} | {} |",
        group_digits(r.lost),
        group_digits(r.acked),
        if r.lost_examples.is_empty() {
            String::new()
        } else {
            format!(" (first seq {:?})", r.lost_examples)
        },
        verdict(v.lost_ok)
    );
    let max = |f: fn(&Sample) -> Option<f64>| {
        r.samples
            .iter()
            .filter_map(f)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let cpu: Vec<f64> = r.samples.iter().filter_map(|s| s.cpu_cores).collect();
    let _ = writeln!(
        s,
        "\n{}",
        heap_line(&r.samples, rss_reference_time(r.minutes))
    );
    let _ = writeln!(
        s,
        "\nProduced {} ({} failed sends or deliveries), acknowledged {}, at siem-sim {} distinct ({} duplicates, \
         at-least-once after restarts; {} ids not of this run) in {} requests ({:.1} events/request). \
         Over the samples: RSS max {:.0} MiB, consumer CPU mean {:.2} cores (max {:.2}), lag max {}, \
         parked max {}, pending ack events max {}.",
        group_digits(r.produced),
        group_digits(r.produce_errors),
        group_digits(r.acked),
        group_digits(r.at_sim),
        group_digits(r.duplicates),
        group_digits(r.foreign),
        group_digits(r.sim_requests),
        if r.sim_requests > 0 {
            r.sim_events as f64 / r.sim_requests as f64
        } else {
            0.0
        },
        max(|s| s.rss_mib).unwrap_or(0.0),
        cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
        cpu.iter().copied().fold(0.0, f64::max),
        group_digits(max(|s| s.lag).unwrap_or(0.0) as u64),
        group_digits(max(|s| s.parked).unwrap_or(0.0) as u64),
        group_digits(max(|s| s.pending_acks).unwrap_or(0.0) as u64),
    );
    let png = r
        .pngs
        .last()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "\nSamples: `{}`. Plot: `{png}` — panels top to bottom: consumer RSS (blue; jemalloc's heap \
         resident light blue, allocated teal), consumer CPU in cores (green), consumer lag (black) \
         and acknowledged-not-yet-at-siem-sim (grey), parked (brown) and \
         pending ack events (magenta); faults shaded from injection to lift with a line at the injection: \
         {}.{}",
        r.csv.display(),
        FAULT_COLOURS
            .iter()
            .map(|(k, _, c)| format!("{} {c}", k.label()))
            .collect::<Vec<_>>()
            .join(", "),
        if r.plot_note.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.plot_note)
        }
    );
    if r.produced > 0 {
        let _ = writeln!(
            s,
            "\nAchieved {} ev/s over the soak.",
            group_digits(rate(r.produced, r.minutes as f64 * 60.0) as u64)
        );
    }
    let _ = writeln!(s, "{END}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: Option<f64>) -> Sample {
        Sample {
            t,
            rss_mib: rss,
            ..Sample::default()
        }
    }

    fn fault(recovered_after: Option<f64>) -> FaultRecord {
        FaultRecord {
            kind: FaultKind::Sim503,
            at: 45.0,
            ended: 60.0,
            recovered_after,
            note: String::new(),
        }
    }

    #[test]
    fn minutes_and_rates_are_bounded() {
        assert!(check_minutes(0).is_err());
        assert!(check_minutes(241).unwrap_err().contains("240"));
        assert!(check_minutes(1).is_ok() && check_minutes(240).is_ok());
        assert!(check_rate(14_000.0, 30).is_err());
        assert!(check_rate(13_000.0, 30).is_ok());
        assert!(check_rate(0.0, 3).is_err());
        assert_eq!(default_rate(100_000.0, 3), 50_000.0);
        assert!((default_rate(100_000.0, 30) - MAX_EVENTS as f64 / 1800.0).abs() < 1e-6);
    }

    #[test]
    fn plans_cover_every_fault_kind() {
        let short = plan(180.0);
        let at: Vec<f64> = short.iter().map(|f| f.at).collect();
        assert_eq!(at, [45.0, 90.0, 135.0]);
        let kinds: Vec<FaultKind> = short.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FaultKind::Sim503, FaultKind::Term, FaultKind::Kill]);
        assert_eq!(short[0].burst_s, 15.0);
        let long = plan(1800.0);
        assert_eq!(long.len(), 9);
        assert_eq!(long[0].at, 180.0);
        assert!(long.last().unwrap().at + 45.0 <= 1800.0);
        assert_eq!(long[0].burst_s, 20.0);
        let kills = long.iter().filter(|f| f.kind == FaultKind::Kill).count();
        let bursts = long.iter().filter(|f| f.kind == FaultKind::Sim503).count();
        assert_eq!((kills, bursts), (1, 5));
        assert_eq!(long[3].kind, FaultKind::Kill);
        assert!(plan(60.0).is_empty());
    }

    #[test]
    fn verdicts_over_samples() {
        // A 3-minute soak: the reference is the sample nearest 90 s.
        let samples = vec![
            sample(0.0, Some(50.0)),
            sample(80.0, Some(100.0)),
            sample(100.0, None),
            sample(170.0, Some(109.0)),
            sample(180.0, None),
        ];
        let v = verdicts(&samples, 3, &[fault(Some(12.0))], 0);
        assert_eq!(v.rss_ref, Some((80.0, 100.0)));
        assert_eq!(v.rss_end, Some((170.0, 109.0)));
        assert!(v.rss_ok && v.recoveries_ok && v.lost_ok && v.all_ok());
        // 12 % growth, a slow recovery, a lost event: each missed on its own.
        let mut grown = samples.clone();
        grown[3].rss_mib = Some(112.0);
        assert!(!verdicts(&grown, 3, &[], 0).rss_ok);
        assert!(!verdicts(&samples, 3, &[fault(Some(31.0))], 0).recoveries_ok);
        assert!(!verdicts(&samples, 3, &[fault(None)], 0).recoveries_ok);
        let lost = verdicts(&samples, 3, &[], 2);
        assert!(!lost.lost_ok && !lost.all_ok());
        // 30 minutes: the reference is at 5 minutes.
        let long: Vec<Sample> = (0..=180)
            .map(|i| sample(i as f64 * 10.0, Some(100.0 + i as f64 * 0.01)))
            .collect();
        let v = verdicts(&long, 30, &[], 0);
        assert_eq!(v.rss_ref.map(|r| r.0), Some(300.0));
        assert!(v.rss_ok);
        assert!(!verdicts(&[], 3, &[], 0).rss_ok);
    }

    #[test]
    fn recovery_needs_reported_lag_and_a_small_backlog() {
        let th = steady_threshold(20_000.0);
        assert_eq!(th, 40_000.0);
        assert_eq!(steady_threshold(100.0), 1000.0);
        assert!(is_recovered(Some(30_000.0), Some(10), th));
        assert!(
            !is_recovered(None, Some(0), th),
            "no partitions reported yet"
        );
        assert!(
            !is_recovered(Some(0.0), None, th),
            "siem-sim did not answer"
        );
        assert!(!is_recovered(Some(50_000.0), Some(0), th));
        assert!(!is_recovered(Some(0.0), Some(40_001), th));
    }

    #[test]
    fn ids_round_trip_and_losses_are_found() {
        let prefix = 0x1234_5678_9abc_def0;
        let id = event_id(prefix, 42);
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(seq_of(prefix, &id), Some(42));
        assert_eq!(seq_of(prefix + 1, &id), None);
        let mut acked = Vec::new();
        for i in [0, 1, 2, 63, 64, 200] {
            set_bit(&mut acked, i);
        }
        let json = serde_json::to_vec(&vec![
            event_id(prefix, 0).to_string(),
            event_id(prefix, 2).to_string(),
            event_id(prefix, 2).to_string(),
            event_id(prefix, 64).to_string(),
            event_id(prefix, 999).to_string(),
            "not-ours".to_string(),
            uuid::Uuid::new_v4().to_string(),
        ])
        .unwrap();
        let (seen, foreign) = mark_ids(&json, prefix).unwrap();
        assert_eq!(foreign, 2);
        assert_eq!(missing(&acked, &seen), (3, vec![1, 63, 200]));
        assert_eq!(missing(&seen, &seen).0, 0);
    }

    #[test]
    fn csv_leaves_missing_values_empty() {
        let s = Sample {
            t: 10.0,
            rss_mib: Some(100.5),
            lag: None,
            acked: 10,
            at_sim: Some(7),
            ..Sample::default()
        };
        let unknown = Sample {
            t: 20.0,
            acked: 12,
            at_sim: None,
            ..Sample::default()
        };
        let text = csv(&[s, unknown]);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("t_s,rss_mib"));
        assert_eq!(lines.next().unwrap(), "10.0,100.500,,,,,,,10,7,3");
        assert_eq!(lines.next().unwrap(), "20.0,,,,,,,,12,,");
    }

    #[test]
    fn heap_line_compares_the_reference_sample_with_the_last() {
        let at = |t: f64, allocated: f64| Sample {
            t,
            rss_mib: Some(allocated + 40.0),
            heap_allocated_mib: Some(allocated),
            heap_resident_mib: Some(allocated + 10.0),
            ..Sample::default()
        };
        let samples = [
            at(290.0, 20.0),
            at(310.0, 21.0),
            at(600.0, 30.0),
            Sample::default(),
        ];
        let line = heap_line(&samples, 300.0);
        assert!(
            line.contains("at 290 s → at 600 s: allocated 20 → 30 MiB")
                && line.contains("RSS 60 → 70 MiB."),
            "{line}"
        );
        assert!(
            line.contains("resident 30 → 40 MiB (an upper bound"),
            "{line}"
        );
        assert!(heap_line(&[Sample::default()], 300.0).contains("did not report"));
    }

    #[test]
    fn plot_writes_a_png() {
        let dir = std::env::temp_dir().join(format!("els-soak-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("soak.png");
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                t: i as f64 * 10.0,
                rss_mib: Some(100.0 + i as f64),
                heap_allocated_mib: Some(40.0),
                heap_resident_mib: (i != 3).then_some(60.0),
                cpu_cores: Some(0.5),
                lag: (i != 5).then_some(1000.0),
                parked: Some(0.0),
                pending_acks: Some(0.0),
                acked: i * 100,
                at_sim: (i != 7).then_some(i * 90),
            })
            .collect();
        plot(&samples, &[fault(Some(5.0))], 200.0, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
