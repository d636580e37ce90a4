//! The producer's Prometheus metrics, registered on one registry.

use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events in requests that passed validation.
    pub events_received: IntCounter,
    /// Events Kafka acknowledged.
    pub events_produced: IntCounter,
    /// Events Kafka did not acknowledge (the request got 503; the caller retries).
    pub produce_errors: IntCounter,
    /// Ingest requests by answered HTTP status.
    pub requests: IntCounterVec,
    /// Validated events whose `event_type` this version does not know (accepted and passed
    /// on by name; one series, never a label per name).
    pub unknown_event_types: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let events_received = counter(
            "els_producer_events_received_total",
            "Events in ingest requests that passed validation",
        );
        let events_produced = counter(
            "els_producer_events_produced_total",
            "Events acknowledged by Kafka",
        );
        let produce_errors = counter(
            "els_producer_produce_errors_total",
            "Events Kafka did not acknowledge (request answered 503)",
        );
        let unknown_event_types = counter(
            "els_producer_unknown_event_types_total",
            "Events in ingest requests that passed validation with an event_type this version \
             does not know (accepted and passed on unchanged)",
        );
        let requests = IntCounterVec::new(
            Opts::new(
                "els_producer_requests_total",
                "Ingest requests by HTTP status",
            ),
            &["status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        Self {
            registry,
            events_received,
            events_produced,
            produce_errors,
            requests,
            unknown_event_types,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
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
