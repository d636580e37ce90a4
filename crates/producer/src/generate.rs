//! Demo traffic: realistic execution events posted to the ingest API.
//!
//! Each execution starts (`FLOW_START`) and ends completed, failed (with an error code, message
//! and failing step) or canceled; some executions are throttled instead; a share are child
//! flows carrying parent and root ids. Event ids are assigned here, so a retried request keeps
//! its ids and receivers can de-duplicate.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ProducerError;

const FLOWS: [&str; 8] = [
    "Onboard new hire",
    "Deprovision leaver",
    "Sync groups to Slack",
    "Rotate API keys",
    "Quarterly access review",
    "Create Jira ticket on alert",
    "Reset MFA",
    "Nightly report",
];

const FOLDERS: [&str; 3] = ["Identity", "Security", "Reports"];

const ERRORS: [(&str, &str, &str); 4] = [
    ("HTTP_429", "Too many requests from connector", "Call API"),
    (
        "TIMEOUT",
        "Step timed out after 60000 ms",
        "Wait for approval",
    ),
    ("INVALID_INPUT", "Field 'email' is required", "Create user"),
    (
        "AUTH_FAILED",
        "Connection credentials expired",
        "Slack: post message",
    ),
];

/// An endless, seeded stream of demo events across `orgs` organisations.
pub struct DemoTraffic {
    rng: StdRng,
    orgs: usize,
    queued: VecDeque<Value>,
}

impl DemoTraffic {
    pub fn new(orgs: usize, seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            orgs: orgs.max(1),
            queued: VecDeque::new(),
        }
    }

    /// The org id of the i-th demo org: `org-0001`, `org-0002`, ...
    pub fn org_id(i: usize) -> String {
        format!("org-{:04}", i + 1)
    }

    pub fn next_event(&mut self) -> Value {
        if self.queued.is_empty() {
            self.execution();
        }
        self.queued.pop_front().unwrap_or(Value::Null)
    }

    fn execution(&mut self) {
        let org = self.rng.gen_range(0..self.orgs);
        let org_id = Self::org_id(org);
        let flow = self.rng.gen_range(0..FLOWS.len());
        let user = self.rng.gen_range(1..=50);
        let execution_id = Uuid::new_v4().to_string();
        let mut base = json!({
            "execution_id": execution_id,
            "flow_id": format!("flo{:02}{}", flow, org_id.replace('-', "")),
            "flow_name": FLOWS[flow],
            "org_id": org_id,
            "org_name": format!("Demo Org {}", org + 1),
            "org_hostname": format!("{org_id}.workflows.example.com"),
            "user_id": format!("00u{user:05}"),
            "user_email": format!("User{user}@{org_id}.example.com"),
            "folder_id": format!("fld{}", flow % 3),
            "folder_name": FOLDERS[flow % 3],
            "engine_mode": "standard",
            "depth": 0,
        });
        if self.rng.gen_bool(0.2) {
            let parent = Uuid::new_v4().to_string();
            base["depth"] = json!(1);
            base["parent_execution_id"] = json!(parent);
            base["parent_flow_id"] = json!("floParent");
            base["parent_flow_name"] = json!("Main orchestrator");
            base["root_execution_id"] = json!(parent);
            base["root_flow_id"] = json!("floParent");
            base["root_flow_name"] = json!("Main orchestrator");
        }
        let roll: f64 = self.rng.gen();
        if roll < 0.08 {
            let mut e = self.event(&base, "FLOW_THROTTLED");
            e["throttled"] = json!(true);
            e["throttle_limit"] = json!({"limit_type": "executions_per_minute", "limit": 600, "retry_after_ms": 1000});
            self.queued.push_back(e);
            return;
        }
        self.queued.push_back(self.event(&base, "FLOW_START"));
        let duration = self.rng.gen_range(20..30_000u64);
        let steps = self.rng.gen_range(1..40u32);
        let mut end = if roll < 0.78 {
            self.event(&base, "FLOW_COMPLETE")
        } else if roll < 0.94 {
            let (code, message, step) = ERRORS[self.rng.gen_range(0..ERRORS.len())];
            let mut e = self.event(&base, "FLOW_FAILED");
            e["error"] = json!({"error_code": code, "error_message": message, "step_name": step,
                                "step_id": format!("stp{}", self.rng.gen_range(1..steps + 1))});
            e
        } else {
            self.event(&base, "FLOW_CANCELED")
        };
        end["duration"] = json!(duration);
        end["step_count"] = json!(steps);
        self.queued.push_back(end);
    }

    fn event(&self, base: &Value, event_type: &str) -> Value {
        let mut e = base.clone();
        e["event_id"] = json!(Uuid::new_v4().to_string());
        e["event_type"] = json!(event_type);
        e["timestamp"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        e
    }
}

/// `count` demo events across `orgs` orgs.
pub fn demo_events(orgs: usize, count: usize, seed: u64) -> Vec<Value> {
    let mut traffic = DemoTraffic::new(orgs, seed);
    (0..count).map(|_| traffic.next_event()).collect()
}

/// Options of `els-producer generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Base URL of the ingest API, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    pub orgs: usize,
    /// Events per second.
    pub rate: f64,
    /// Total events; 0 = until cancelled.
    pub count: u64,
    /// Events per request.
    pub batch: usize,
    pub seed: u64,
}

/// Post demo traffic at `rate` until `count` events were accepted or `cancel` fires.
/// A request answered 503 (or not at all) is retried with the same events and ids.
/// Returns the number of accepted events.
pub async fn run(opts: &GenerateOptions, cancel: CancellationToken) -> Result<u64, ProducerError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/v1/events", opts.target.trim_end_matches('/'));
    let mut traffic = DemoTraffic::new(opts.orgs, opts.seed);
    let start = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    let mut last_log = start;
    while opts.count == 0 || sent < opts.count {
        let remaining = if opts.count == 0 {
            u64::MAX
        } else {
            opts.count - sent
        };
        let n = (opts.batch as u64).min(remaining) as usize;
        let batch: Vec<Value> = (0..n).map(|_| traffic.next_event()).collect();
        let due = start + Duration::from_secs_f64((sent + n as u64) as f64 / opts.rate.max(0.001));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        loop {
            match client.post(&url).json(&batch).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(ProducerError::Config(format!(
                        "ingest API rejected demo events ({status}): {body}"
                    )));
                }
                Ok(r) => tracing::warn!(status = %r.status(), "ingest busy; retrying batch"),
                Err(e) => tracing::warn!(error = %e, "ingest unreachable; retrying batch"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(sent),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        sent += n as u64;
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = tokio::time::Instant::now();
            tracing::info!(sent, "demo traffic");
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_events_are_valid_and_varied() {
        let events = demo_events(5, 2000, 7);
        let mut types = std::collections::BTreeSet::new();
        for v in events {
            let e = els_model::ingest::parse_event(v).unwrap();
            types.insert(e.event_type);
            if e.event_type == els_model::EventType::FlowFailed {
                assert!(e.error.is_some());
            }
        }
        assert_eq!(types.len(), 5);
    }
}
