//! Small numeric helpers: percentiles of latency samples and per-event costs.

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Latency {
            samples: samples.len(),
            p50: percentile(&samples, 50.0),
            p99: percentile(&samples, 99.0),
            p999: percentile(&samples, 99.9),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 for none): the smallest value with at least
/// `p` percent of the samples at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The epsilon keeps 99.9 % of 1000 at rank 999 despite binary floating point.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `events / seconds`, 0 when no time passed.
pub fn rate(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

/// CPU-seconds per million events.
pub fn cpu_per_million(cpu_seconds: f64, events: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        cpu_seconds * 1e6 / events as f64
    }
}

/// The throughput two stages reach when they share the same CPUs: each event costs the
/// time of both (harmonic combination), `1 / (1/a + 1/b)`.
pub fn shared_bound(a: f64, b: f64) -> f64 {
    if a <= 0.0 || b <= 0.0 {
        return 0.0;
    }
    1.0 / (1.0 / a + 1.0 / b)
}

/// The no-work floor of a case in CPU-seconds per million events: what the two load clients
/// alone spent per event, L1's consuming client (fetch and touch every payload byte) plus
/// L2's posting client (send pre-built bodies). A forwarder has to do at least both.
pub fn floor_cpu_per_million(
    l1_client_cpu: f64,
    l1_events: u64,
    l2_client_cpu: f64,
    l2_events: u64,
) -> f64 {
    cpu_per_million(l1_client_cpu, l1_events) + cpu_per_million(l2_client_cpu, l2_events)
}

/// The consumer's CPU per event as a multiple of the no-work floor (0 when the floor was not
/// measured).
pub fn floor_ratio(consumer_cpu_per_million: f64, floor_cpu_per_million: f64) -> f64 {
    if floor_cpu_per_million > 0.0 {
        consumer_cpu_per_million / floor_cpu_per_million
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[7.0], 99.9), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let l = Latency::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((l.samples, l.p50, l.max), (3, 2.0, 3.0));
    }

    #[test]
    fn rates_and_costs() {
        assert_eq!(rate(1000, 0.5), 2000.0);
        assert_eq!(rate(1000, 0.0), 0.0);
        assert_eq!(cpu_per_million(0.4, 200_000), 2.0);
        assert_eq!(shared_bound(100.0, 100.0), 50.0);
        assert_eq!(shared_bound(0.0, 100.0), 0.0);
    }

    #[test]
    fn floor_and_its_ratio() {
        // L1 client 0.16 CPU-s over 200,000 events = 0.8 CPU-s/M; L2 client 0.09 CPU-s over
        // 200,000 = 0.45: floor 1.25 CPU-s/M.
        let floor = floor_cpu_per_million(0.16, 200_000, 0.09, 200_000);
        assert!((floor - 1.25).abs() < 1e-9, "{floor}");
        // A consumer at 2.5 CPU-s/M is at 2× the floor.
        assert!((floor_ratio(2.5, floor) - 2.0).abs() < 1e-9);
        // Different event counts per client are normalised separately.
        let f = floor_cpu_per_million(1.0, 1_000_000, 1.0, 500_000);
        assert!((f - 3.0).abs() < 1e-9, "{f}");
        assert_eq!(floor_ratio(2.0, 0.0), 0.0);
    }
}
