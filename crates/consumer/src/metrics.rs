//! The consumer's Prometheus metrics: typed handles on one registry, bounded labels only
//! (status codes, reasons, partitions; never org ids, URLs or error text).
//!
//! Reconciliation: `consumed = delivered + filtered + dead_lettered + parked-and-pending +
//! in flight`. A retried event is counted in `retries`, never as dropped.

use crate::streams::StreamKey;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub consumed: IntCounter,
    /// Events read whose `event_type` this version does not know: streamed to streams that
    /// take `"all"` or list the type by name, filtered elsewhere. One series, no label per
    /// type name.
    pub unknown_event_types: IntCounter,
    pub filtered: IntCounter,
    pub delivered: IntCounter,
    pub dead_lettered: IntCounterVec,
    pub rate_limited: IntCounter,
    pub retries: IntCounter,
    pub siem_responses: IntCounterVec,
    pub delivery_latency: Histogram,
    pub request_duration: HistogramVec,
    pub batch_size: Histogram,
    pub in_flight: IntGauge,
    pub parked: IntGauge,
    pub dead_letters: IntGauge,
    pub lag: IntGaugeVec,
    pub replayed: IntCounter,
    pub store_errors: IntCounter,
    /// Streams by state (`active`, `failing`, `paused`, `probing`, `paused_by_user`,
    /// `disabled`).
    pub streams: IntGaugeVec,
    /// HEC indexer acknowledgement: ack ids and events waiting for their ack.
    pub acks_pending: IntGauge,
    pub ack_pending_events: IntGauge,
    /// Request sent to ack confirmed.
    pub ack_latency: Histogram,
    /// Batches re-sent because their ack did not come within the timeout.
    pub ack_timeouts: IntCounter,
    /// Ack polls by answer (`ok`, `error`, `disabled`).
    pub ack_polls: IntCounterVec,
    /// Events counted as delivered on a `200` alone although acks were expected (the ack
    /// endpoint answered code 14, or `hec.ack` is true and the answer had no `ackId`).
    pub ack_unconfirmed: IntCounter,
    /// State changelog writes (`kind` = park|dead|tombstone, `outcome` = ok|error).
    changelog_writes: IntCounterVec,
    /// Records read back from the state changelog (`kind` = park|dead).
    changelog_restored: IntCounterVec,
    /// Per-org outcomes (`els_org_events_total{org, outcome}`), only when enabled.
    org_events: IntCounterVec,
    org_labels: Arc<OrgLabels>,
    /// The allocator's own figures (`els_heap_bytes{kind}`), read at each render when the
    /// binary provides a reader (the release consumer's jemalloc); absent otherwise.
    heap: IntGaugeVec,
    heap_stats: Option<fn() -> Option<HeapStats>>,
}

/// What the allocator reports about the heap, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Held by live allocations: what the program's data takes.
    pub allocated: u64,
    /// In pages the allocator keeps: live data, metadata, and freed pages not yet given back.
    /// An upper bound of what is in RAM (pages allocated but never touched count too), so it
    /// can exceed RSS; `resident - allocated` is the allocator's overhead and its cache.
    pub resident: u64,
}

/// The bounded set of org label values: the first `max` orgs seen get their own value, every
/// later org counts as `__other__`. `max = 0` turns per-org series off.
#[derive(Default)]
struct OrgLabels {
    max: usize,
    known: Mutex<HashSet<String>>,
}

/// Label value for orgs beyond the per-org label budget.
pub const OTHER_ORGS: &str = "__other__";

impl OrgLabels {
    fn label<'a>(&self, org: &'a str) -> Option<&'a str> {
        if self.max == 0 {
            return None;
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.contains(org) {
            return Some(org);
        }
        if known.len() < self.max {
            known.insert(org.to_string());
            return Some(org);
        }
        Some(OTHER_ORGS)
    }
}

/// What happened to an org's event, for the per-org series.
#[derive(Debug, Clone, Copy)]
pub enum OrgOutcome {
    Delivered,
    Filtered,
    DeadLettered,
    RateLimited,
}

/// What a state changelog record is, for its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogKind {
    Park,
    Dead,
    Tombstone,
}

impl ChangelogKind {
    pub const ALL: [ChangelogKind; 3] = [Self::Park, Self::Dead, Self::Tombstone];

    fn as_str(self) -> &'static str {
        match self {
            ChangelogKind::Park => "park",
            ChangelogKind::Dead => "dead",
            ChangelogKind::Tombstone => "tombstone",
        }
    }
}

impl OrgOutcome {
    fn as_str(self) -> &'static str {
        match self {
            OrgOutcome::Delivered => "delivered",
            OrgOutcome::Filtered => "filtered",
            OrgOutcome::DeadLettered => "dead_lettered",
            OrgOutcome::RateLimited => "rate_limited",
        }
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are static and unique; a failure here is a programming error caught by tests.
    let _ = r.register(Box::new(c.clone()));
    c
}

impl Metrics {
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| {
            register(&r, IntCounter::new(name, help).expect("valid metric"))
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge =
            |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid metric"));
        let latency_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        Self {
            consumed: counter("els_events_consumed_total", "Events read from Kafka"),
            unknown_event_types: counter(
                "els_events_unknown_type_total",
                "Events read from Kafka with an event_type this version does not know (passed \
                 on unchanged to streams that take all types or list it)",
            ),
            filtered: counter(
                "els_events_filtered_total",
                "Events not streamed (org disabled, no settings, event type or flow not selected)",
            ),
            delivered: counter(
                "els_events_delivered_total",
                "Events the SIEM accepted (2xx)",
            ),
            dead_lettered: counter_vec(
                "els_events_dead_lettered_total",
                "Events written to the dead-letter store, by reason",
                &["reason"],
            ),
            rate_limited: counter(
                "els_events_rate_limited_total",
                "Events that hit their org's max_events limit (delayed or dead-lettered)",
            ),
            retries: counter(
                "els_delivery_retries_total",
                "Delivery attempts that will be retried",
            ),
            siem_responses: counter_vec(
                "els_siem_responses_total",
                "SIEM answers by HTTP status (`error` = network error or timeout)",
                &["status"],
            ),
            delivery_latency: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "els_delivery_latency_seconds",
                        "Event timestamp to SIEM 2xx",
                    )
                    .buckets(latency_buckets.clone()),
                )
                .expect("valid metric"),
            ),
            request_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "els_siem_request_duration_seconds",
                        "Duration of one request to a SIEM",
                    )
                    .buckets(latency_buckets),
                    &["endpoint"],
                )
                .expect("valid metric"),
            ),
            batch_size: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("els_batch_size_events", "Events per SIEM request").buckets(
                        vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                    ),
                )
                .expect("valid metric"),
            ),
            in_flight: gauge("els_events_in_flight", "Consumed events not yet finished"),
            parked: gauge(
                "els_events_parked",
                "Events parked on disk because their org's queue was full",
            ),
            dead_letters: gauge("els_dead_letters", "Records in the dead-letter store"),
            lag: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "els_consumer_lag_messages",
                        "High watermark minus committed position, per owned partition",
                    ),
                    &["partition"],
                )
                .expect("valid metric"),
            ),
            replayed: counter(
                "els_dead_letters_replayed_total",
                "Dead letters re-published to Kafka",
            ),
            store_errors: counter(
                "els_store_errors_total",
                "Failed writes to the dead-letter/park store (offsets are held back)",
            ),
            streams: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "els_streams",
                        "Org streams this instance has seen, by state (active, failing, paused, \
                         probing, paused_by_user, disabled)",
                    ),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            acks_pending: gauge(
                "els_hec_acks_pending",
                "HEC ack ids sent and not yet confirmed by /services/collector/ack",
            ),
            ack_pending_events: gauge(
                "els_hec_ack_pending_events",
                "Events whose HEC request was accepted and whose indexer ack is awaited",
            ),
            ack_latency: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "els_hec_ack_latency_seconds",
                        "HEC request accepted to its indexer ack confirmed",
                    )
                    .buckets(vec![
                        0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            ack_timeouts: counter(
                "els_hec_ack_timeouts_total",
                "HEC batches re-sent because their indexer ack did not come within the timeout",
            ),
            ack_polls: counter_vec(
                "els_hec_ack_polls_total",
                "Polls of /services/collector/ack by answer (ok, error, disabled = code 14)",
                &["result"],
            ),
            ack_unconfirmed: counter(
                "els_hec_ack_unconfirmed_total",
                "Events counted delivered on a 200 alone although acks were expected (ack \
                 endpoint code 14, or hec.ack true and no ackId)",
            ),
            changelog_writes: counter_vec(
                "els_changelog_writes_total",
                "Writes to the state changelog topic, by record kind and outcome (an error holds \
                 the offset back or fails the admin call)",
                &["kind", "outcome"],
            ),
            changelog_restored: counter_vec(
                "els_changelog_restored_total",
                "Records read back from the state changelog: parked events restored on \
                 assignment, dead letters applied to this instance's view",
                &["kind"],
            ),
            org_events: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "els_org_events_total",
                        "Events per org, stream and outcome (top orgs by first sight, the rest as __other__; off unless metrics_org_labels > 0)",
                    ),
                    &["org", "stream", "outcome"],
                )
                .expect("valid metric"),
            ),
            org_labels: Arc::new(OrgLabels::default()),
            heap: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "els_heap_bytes",
                        "Heap as the allocator reports it: allocated (live data) and resident \
                         (pages it keeps, freed ones not yet given back included; an upper \
                         bound, untouched pages count too)",
                    ),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            heap_stats: None,
            registry: r,
        }
    }

    /// Report the heap's figures from `read` at each render (`None` from it leaves the last
    /// figures in place).
    pub fn with_heap_stats(mut self, read: fn() -> Option<HeapStats>) -> Self {
        self.heap_stats = Some(read);
        self
    }

    /// Turn on per-org series for at most `max` orgs (plus `__other__`).
    pub fn with_org_labels(mut self, max: usize) -> Self {
        self.org_labels = Arc::new(OrgLabels {
            max,
            known: Mutex::new(HashSet::new()),
        });
        self
    }

    /// Whether per-org series are on (`metrics_org_labels` > 0).
    pub fn org_labels_on(&self) -> bool {
        self.org_labels.max > 0
    }

    /// Count `n` events of a stream with `outcome` (no-op when per-org series are off).
    pub fn org_event(&self, stream: &StreamKey, outcome: OrgOutcome, n: u64) {
        if let Some(label) = self.org_labels.label(stream.org()) {
            // Past the org cap, `__other__` stands for org and stream alike.
            let stream = if label == OTHER_ORGS {
                OTHER_ORGS
            } else {
                stream.stream()
            };
            self.org_events
                .with_label_values(&[label, stream, outcome.as_str()])
                .inc_by(n);
        }
    }

    /// Count `n` state changelog writes of `kind`.
    pub fn changelog_write(&self, kind: ChangelogKind, ok: bool, n: u64) {
        let outcome = if ok { "ok" } else { "error" };
        self.changelog_writes
            .with_label_values(&[kind.as_str(), outcome])
            .inc_by(n);
    }

    /// Count `n` records of `kind` read back from the state changelog.
    pub fn changelog_restored(&self, kind: ChangelogKind, n: u64) {
        self.changelog_restored
            .with_label_values(&[kind.as_str()])
            .inc_by(n);
    }

    /// Create the labelled series whose label values are known up front, so dashboards and
    /// alerts see a 0 rather than no series before the first event of a kind.
    pub fn init_known_series(&self, reasons: &[&str]) {
        for r in reasons {
            self.dead_lettered.with_label_values(&[r]);
        }
        for endpoint in ["hec", "http"] {
            self.request_duration.with_label_values(&[endpoint]);
        }
        for kind in ChangelogKind::ALL {
            self.changelog_write(kind, true, 0);
            self.changelog_write(kind, false, 0);
        }
        for kind in [ChangelogKind::Park, ChangelogKind::Dead] {
            self.changelog_restored(kind, 0);
        }
        for result in ["ok", "error", "disabled"] {
            self.ack_polls.with_label_values(&[result]);
        }
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        if let Some(stats) = self.heap_stats.and_then(|read| read()) {
            let set = |kind: &str, bytes: u64| {
                let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                self.heap.with_label_values(&[kind]).set(bytes);
            };
            set("allocated", stats.allocated);
            set("resident", stats.resident);
        }
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_org_series_are_off_by_default_and_bounded_when_on() {
        let key = |org: &str| StreamKey::new(org, "default");
        let off = Metrics::new();
        off.org_event(&key("org-1"), OrgOutcome::Delivered, 1);
        assert!(!off.render().contains("els_org_events_total{"));

        let on = Metrics::new().with_org_labels(2);
        for org in ["a", "b", "c", "d", "a"] {
            on.org_event(&key(org), OrgOutcome::Delivered, 1);
        }
        on.org_event(&key("b"), OrgOutcome::DeadLettered, 3);
        on.org_event(&StreamKey::new("b", "lake"), OrgOutcome::DeadLettered, 1);
        on.org_event(&StreamKey::new("c", "lake"), OrgOutcome::Delivered, 1);
        let text = on.render();
        let series = |labels: &str, n: u32| {
            let line = format!("els_org_events_total{{{labels}}} {n}");
            assert!(text.contains(&line), "{line} in {text}");
        };
        series(r#"org="a",outcome="delivered",stream="default""#, 2);
        series(r#"org="b",outcome="dead_lettered",stream="default""#, 3);
        series(r#"org="b",outcome="dead_lettered",stream="lake""#, 1);
        series(
            r#"org="__other__",outcome="delivered",stream="__other__""#,
            3,
        );
        assert!(!text.contains(r#"org="c""#) && !text.contains(r#"org="d""#));
    }

    #[test]
    fn changelog_series_exist_before_the_first_write() {
        let m = Metrics::new();
        m.init_known_series(&[]);
        m.changelog_write(ChangelogKind::Park, true, 2);
        m.changelog_restored(ChangelogKind::Dead, 1);
        let text = m.render();
        assert!(text.contains(r#"els_changelog_writes_total{kind="park",outcome="ok"} 2"#));
        assert!(text.contains(r#"els_changelog_writes_total{kind="tombstone",outcome="error"} 0"#));
        assert!(text.contains(r#"els_changelog_restored_total{kind="dead"} 1"#));
        assert!(text.contains(r#"els_changelog_restored_total{kind="park"} 0"#));
    }

    #[test]
    fn heap_figures_are_read_at_each_render_and_absent_without_a_reader() {
        assert!(!Metrics::new().render().contains("els_heap_bytes{"));

        use std::sync::atomic::{AtomicU64, Ordering};
        static LIVE: AtomicU64 = AtomicU64::new(1000);
        let m = Metrics::new().with_heap_stats(|| {
            let allocated = LIVE.load(Ordering::Relaxed);
            Some(HeapStats {
                allocated,
                resident: allocated * 2,
            })
        });
        assert!(m
            .render()
            .contains(r#"els_heap_bytes{kind="allocated"} 1000"#));
        LIVE.store(7000, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains(r#"els_heap_bytes{kind="allocated"} 7000"#),
            "{text}"
        );
        assert!(
            text.contains(r#"els_heap_bytes{kind="resident"} 14000"#),
            "{text}"
        );
    }
}
