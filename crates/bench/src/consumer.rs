//! The pipeline under test: an `els-consumer` process with default tuning, its settings
//! file (every org to siem-sim), readiness and `/metrics`.
//!
//! Only `ELS_*` knobs the consumer knows are set (it rejects unknown ones): the broker, the
//! topic, a fresh group, a file-only settings store (`ELS_SETTINGS_TOPIC=""`, so no master
//! key is needed) and the SSRF allow-list entry for loopback (siem-sim is on 127.0.0.1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::error::{BenchError, Result};
use crate::procs::{free_port, sibling_bin, wait_port, Proc};
use crate::sim::HEC_TOKEN;
use crate::workload::Endpoint;
pub use els_testkit::parse_metrics;

/// A running consumer.
pub struct Consumer {
    pub proc: Proc,
    pub admin_url: String,
    client: reqwest::Client,
}

/// Settings that send every org (`default`) to `url`.
pub fn settings(url: &str, endpoint: Endpoint) -> serde_json::Value {
    json!({
        "default": {
            "url": url,
            "allow_http": true,
            "endpoint": match endpoint { Endpoint::Hec => "hec", Endpoint::Generic => "http" },
            "auth_headers": [{"name": "Authorization", "value": format!("Splunk {HEC_TOKEN}")}]
        }
    })
}

impl Consumer {
    /// Start a consumer (`bin`, default the sibling `els-consumer`) of `topic` in a new
    /// group, delivering to `url`. `extra_env` adds or overrides `ELS_*` variables.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        bin: Option<&Path>,
        dir: &Path,
        name: &str,
        brokers: &str,
        topic: &str,
        url: &str,
        endpoint: Endpoint,
        extra_env: &[(String, String)],
    ) -> Result<Self> {
        let settings_path = dir.join(format!("{name}-settings.json"));
        let text = serde_json::to_vec_pretty(&settings(url, endpoint))?;
        std::fs::write(&settings_path, text)
            .map_err(|e| BenchError::io(format!("writing {}", settings_path.display()), e))?;
        let data: PathBuf = dir.join(format!("{name}-data"));
        let admin = format!("127.0.0.1:{}", free_port()?);
        let bin = bin.map_or_else(|| sibling_bin("els-consumer"), Path::to_path_buf);
        let mut cmd = Command::new(bin);
        cmd.env("ELS_BROKERS", brokers)
            .env("ELS_TOPIC", topic)
            .env(
                "ELS_GROUP_ID",
                format!("els-bench-{name}-{}", uuid::Uuid::new_v4().simple()),
            )
            .env("ELS_INSTANCE_ID", format!("els-bench-{name}"))
            .env("ELS_SETTINGS_FILE", &settings_path)
            .env("ELS_SETTINGS_TOPIC", "")
            .env("ELS_SSRF_ALLOW", "127.0.0.1")
            .env("ELS_DATA_DIR", &data)
            .env("ELS_ADMIN_LISTEN", &admin)
            .env("RUST_LOG", "info,rdkafka=warn");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(name, cmd, dir.join(format!("{name}.log")))?;
        let mut me = Self {
            proc,
            admin_url: format!("http://{admin}"),
            client: reqwest::Client::new(),
        };
        if let Err(e) = wait_port(&admin, Duration::from_secs(30)) {
            me.proc.check_alive()?;
            return Err(e.into());
        }
        Ok(me)
    }

    /// Wait until the consumer owns partitions (`/readyz` is 200).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let url = format!("{}/readyz", self.admin_url);
        let start = Instant::now();
        loop {
            let ok = self
                .client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            self.proc.check_alive()?;
            if start.elapsed() > timeout {
                return Err(BenchError::timeout(
                    "the consumer to own partitions",
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `/metrics` as `name{labels}` -> value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin_url))
            .send()
            .await?
            .text()
            .await?;
        Ok(parse_metrics(&text))
    }

    /// SIGTERM and wait for the graceful exit.
    pub fn stop(&mut self) {
        self.proc.terminate(Duration::from_secs(15));
    }
}

/// Mean of a Prometheus histogram (`_sum / _count`), if it has observations.
pub fn histogram_mean(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let sum = metrics.get(&format!("{name}_sum"))?;
    let count = metrics.get(&format!("{name}_count"))?;
    (*count > 0.0).then(|| sum / count)
}

/// Sum of every series of a metric (all label sets).
pub fn metric_total(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parsed_and_summarised() {
        let text = "# HELP x\n# TYPE x counter\nels_batch_size_events_sum 1000\n\
                    els_batch_size_events_count 4\n\
                    els_events_dead_lettered_total{reason=\"rejected\"} 2\n\
                    els_events_dead_lettered_total{reason=\"rate_limited\"} 1\n\
                    els_events_delivered_total 998\n";
        let m = parse_metrics(text);
        assert_eq!(histogram_mean(&m, "els_batch_size_events"), Some(250.0));
        assert_eq!(metric_total(&m, "els_events_dead_lettered_total"), 3.0);
        assert_eq!(metric_total(&m, "els_events_delivered_total"), 998.0);
        assert_eq!(histogram_mean(&m, "nope"), None);
    }
}
