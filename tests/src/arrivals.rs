//! Did every acknowledged event arrive? Counting ids at one or more siem-sims, waiting for
//! them with a bound, and explaining a shortfall (where the missing events sit on the topic,
//! what the group committed, what the consumers hold); posting events paced, retrying 503s
//! with the same events (same ids).

// Test output: the figures are the point.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ConsumerProc, Kafka, Sim};

/// `n` demo events of `org`, stamped now (so latency = arrival - timestamp).
pub fn events_for(org: &str, n: usize, seed: u64) -> Vec<Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    els_producer::generate::demo_events(1, n, seed)
        .into_iter()
        .map(|mut e| {
            e["org_id"] = serde_json::json!(org);
            e["timestamp"] = serde_json::json!(now);
            e
        })
        .collect()
}

/// Delivery latency (first arrival at siem-sim minus the event's timestamp) of each of `ids`,
/// in milliseconds, sorted.
pub async fn latencies(sim: &Sim, ids: &HashSet<String>) -> Vec<i64> {
    let mut first: HashMap<String, i64> = HashMap::new();
    for r in sim.records().await.unwrap_or_default() {
        let event = &r["body"]["event"];
        let Some(id) = event["event_id"].as_str() else {
            continue;
        };
        if !ids.contains(id) || first.contains_key(id) {
            continue;
        }
        let time = |v: &Value| {
            v.as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        };
        if let (Some(at), Some(ts)) = (time(&r["received_at"]), time(&event["timestamp"])) {
            first.insert(id.to_string(), (at - ts).num_milliseconds());
        }
    }
    let mut v: Vec<i64> = first.into_values().collect();
    v.sort_unstable();
    v
}

/// The 99th percentile of `sorted` (not empty).
pub fn p99(sorted: &[i64]) -> i64 {
    sorted[((sorted.len() as f64 * 0.99).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

/// How many of `ids` siem-sim has seen, and its duplicate count.
pub async fn arrived(sims: &[&Sim], ids: &[String]) -> (usize, usize) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut total = 0;
    for sim in sims {
        let got = sim.event_ids().await.unwrap_or_default();
        total += got.len();
        seen.extend(got);
    }
    let found = ids.iter().filter(|id| seen.contains(*id)).count();
    (found, total - seen.len())
}

pub async fn wait_arrived(sims: &[&Sim], ids: &[String], timeout: Duration) -> (usize, usize) {
    wait_arrived_or_explain(sims, ids, timeout, None).await
}

/// What to inspect when events are missing: the topic and the consumers.
pub struct Explain<'a> {
    pub broker: &'a Kafka,
    pub topic: &'a str,
    pub partitions: i32,
    pub consumers: Vec<&'a ConsumerProc>,
}

/// Like [`wait_arrived`]; on failure, also says where the missing events are on the topic
/// (lost by the broker, or by the pipeline after the broker had them) and what the consumer
/// group committed.
pub async fn wait_arrived_or_explain(
    sims: &[&Sim],
    ids: &[String],
    timeout: Duration,
    explain: Option<Explain<'_>>,
) -> (usize, usize) {
    let start = Instant::now();
    loop {
        let (found, dups) = arrived(sims, ids).await;
        if found == ids.len() {
            return (found, dups);
        }
        if start.elapsed() >= timeout {
            let mut seen: HashSet<String> = HashSet::new();
            for sim in sims {
                seen.extend(sim.event_ids().await.unwrap_or_default());
            }
            let missing: HashSet<String> = ids
                .iter()
                .filter(|id| !seen.contains(*id))
                .cloned()
                .collect();
            let mut detail = String::new();
            if let Some(x) = explain {
                let (located, read, total) = x
                    .broker
                    .locate_event_ids(x.topic, x.partitions, &missing)
                    .unwrap_or_default();
                let committed = x
                    .broker
                    .committed("els-consumer", x.topic, x.partitions)
                    .unwrap_or_default();
                detail = format!(
                    "; on the topic ({read} of {total} records read): {} of them at {:?}; committed {committed:?}",
                    located.len(),
                    located.values().take(20).collect::<Vec<_>>()
                );
                for c in x.consumers {
                    let m = c.metrics().await.unwrap_or_default();
                    let pick: BTreeMap<&str, f64> = m
                        .iter()
                        .filter(|(k, _)| {
                            [
                                "in_flight",
                                "parked",
                                "retries",
                                "delivered",
                                "consumed",
                                "dead",
                                "siem",
                            ]
                            .iter()
                            .any(|w| k.contains(w))
                        })
                        .map(|(k, v)| (k.as_str(), *v))
                        .collect();
                    detail.push_str(&format!("; consumer {}: {pick:?}", c.admin_url));
                }
            }
            panic!(
                "{} of {} events missing after {timeout:?} (e.g. {:?}){detail}",
                missing.len(),
                ids.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Post `events` in paced batches, retrying 503s with the same events (same ids).
pub async fn post_paced(
    url: String,
    events: Vec<Value>,
    batch: usize,
    pause: Duration,
) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut ids = Vec::with_capacity(events.len());
    let mut refused = 0;
    for chunk in events.chunks(batch) {
        loop {
            match client
                .post(format!("{url}/v1/events"))
                .json(chunk)
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => {
                    let body: Value = r.json().await.unwrap();
                    ids.extend(
                        body["event_ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_string()),
                    );
                    break;
                }
                Ok(r) if r.status() == 503 => refused += 1,
                Ok(r) => panic!("unexpected {}", r.status()),
                Err(_) => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(pause).await;
    }
    if refused > 0 {
        println!("  (producer refused {refused} requests while Kafka was unavailable; retried)");
    }
    ids
}
