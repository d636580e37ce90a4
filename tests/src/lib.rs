//! Harness for end-to-end tests across real processes, all on 127.0.0.1 with free ports:
//! Apache Kafka (from `deploy/kafka`, through [`els_testkit::Kafka`]), `siem-sim`,
//! `els-consumer` and `els-producer`.
//!
//! Binaries are taken from the same target directory as the test binary (build them first:
//! `cargo build --workspace --bins`). Every process is killed when its handle drops, and logs
//! go to files under a per-test directory, printed when a test fails.
//!
//! Process, broker, siem-sim, consumer and metrics helpers live in `els-testkit` (shared with
//! `els-bench`) and are re-exported here; what is the tests' own:
//! - [`Sim`] and [`ConsumerProc`]: the kit's processes started with the tests' binaries and
//!   defaults (they deref to [`SimProc`] and [`els_testkit::ConsumerProc`]);
//! - [`ProducerProc`]: the ingest API, and posting events through it;
//! - [`arrivals`]: did every acknowledged event arrive, and if not, where are the others;
//! - small helpers: [`http`], [`get`], [`wait_for`], [`test_dir`], [`bin`], [`settings_for`].

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
pub use arrivals::{
    arrived, events_for, latencies, p99, post_paced, wait_arrived, wait_arrived_or_explain, Explain,
};
pub use els_testkit::kafka::Located;
pub use els_testkit::sim::HEC_TOKEN;
pub use els_testkit::{
    free_port, histogram_mean, metric_total, parse_metrics, wait_port, workspace_root, Kafka, Proc,
    SimProc,
};
use serde_json::Value;

pub mod arrivals;

/// The admin token used by test consumers.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Master key for encrypting auth headers at rest in tests (never use outside tests).
pub const TEST_MASTER_KEYS: &str =
    "test1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// An HTTP client whose requests give up after 30 s, so a hung server fails a test instead
/// of hanging it.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// GET `url` with [`http`]'s timeout.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A fresh directory for one test's logs and data.
pub fn test_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("els-e2e-{name}-{}", uuid::Uuid::new_v4().simple()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A built binary of the workspace, next to the running test binary.
pub fn bin(name: &str) -> PathBuf {
    els_testkit::built_bin(name).unwrap_or_else(|| {
        panic!("{name} is missing: run `cargo build --workspace --bins` before the tests")
    })
}

/// Poll `check` until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running siem-sim: the kit's [`SimProc`] (its `url`, `proc` and query API, reached
/// through `Deref`), started from this workspace's build.
pub struct Sim(SimProc);

impl Sim {
    /// Start siem-sim with the test's extra flags (e.g. `--fault-status 503`), logging to
    /// `dir/<name>.log`.
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> Result<Self> {
        Ok(Self(SimProc::start(
            &bin("siem-sim"),
            dir,
            name,
            extra,
            &[],
        )?))
    }
}

impl Deref for Sim {
    type Target = SimProc;

    fn deref(&self) -> &SimProc {
        &self.0
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut SimProc {
        &mut self.0
    }
}

/// Settings that send every org to `sim` over HEC.
pub fn settings_for(sim_hec_url: &str) -> Value {
    serde_json::json!({
        "url": sim_hec_url,
        "allow_http": true,
        "auth_headers": [{"name": "Authorization", "value": format!("Splunk {HEC_TOKEN}")}]
    })
}

/// A consumer process: the kit's [`els_testkit::ConsumerProc`] (its `proc`, `admin_url`,
/// `metrics`, `wait_ready`, `restart`, reached through `Deref`), started with the tests'
/// defaults: admin token, master keys, a short batch linger.
pub struct ConsumerProc(els_testkit::ConsumerProc);

impl ConsumerProc {
    /// Start `els-consumer` with `ELS_*` settings (merged over test defaults).
    pub fn start(
        dir: &Path,
        name: &str,
        broker: &Kafka,
        settings: &Value,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut all = vec![
            ("ELS_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ELS_MASTER_KEYS", TEST_MASTER_KEYS),
            ("ELS_BATCH_LINGER_MS", "50"),
        ];
        all.extend_from_slice(env);
        Ok(Self(els_testkit::ConsumerProc::start(
            &bin("els-consumer"),
            dir,
            name,
            &broker.addr,
            settings,
            &all,
        )?))
    }
}

impl Deref for ConsumerProc {
    type Target = els_testkit::ConsumerProc;

    fn deref(&self) -> &els_testkit::ConsumerProc {
        &self.0
    }
}

impl DerefMut for ConsumerProc {
    fn deref_mut(&mut self) -> &mut els_testkit::ConsumerProc {
        &mut self.0
    }
}

/// A running ingest API.
pub struct ProducerProc {
    pub proc: Proc,
    pub url: String,
}

impl ProducerProc {
    pub fn start(dir: &Path, broker: &Kafka, env: &[(&str, &str)]) -> Result<Self> {
        let port = free_port();
        let mut cmd = Command::new(bin("els-producer"));
        cmd.arg("serve")
            .env("ELS_BROKERS", &broker.addr)
            .env("ELS_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info,rdkafka=warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("producer", cmd, dir.join("producer.log"))?;
        wait_port(&format!("127.0.0.1:{port}"), Duration::from_secs(30))?;
        Ok(Self {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Post `events` in batches, retrying 503s; returns the accepted event ids.
    pub async fn post_all(&self, events: &[Value], batch: usize) -> Result<Vec<String>> {
        let client = http();
        let mut ids = Vec::with_capacity(events.len());
        for chunk in events.chunks(batch) {
            let mut tries = 0;
            loop {
                tries += 1;
                let r = client
                    .post(format!("{}/v1/events", self.url))
                    .json(chunk)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let body: Value = r.json().await?;
                        for id in body["event_ids"].as_array().into_iter().flatten() {
                            ids.push(id.as_str().unwrap_or_default().to_string());
                        }
                        break;
                    }
                    Ok(r) if r.status().is_client_error() => bail!("rejected: {}", r.text().await?),
                    _ if tries < 60 => tokio::time::sleep(Duration::from_millis(500)).await,
                    Ok(r) => bail!("producer kept failing: {}", r.status()),
                    Err(e) => bail!("producer unreachable: {e}"),
                }
            }
        }
        Ok(ids)
    }
}

/// Read the first line a child prints (e.g. a listening address).
pub fn first_line(child: &mut Child) -> Option<String> {
    let out = child.stdout.take()?;
    BufReader::new(out).lines().next()?.ok()
}

/// The partitions a consumer instance owns, from its `/readyz` (empty when it does not answer).
pub async fn owned(c: &ConsumerProc) -> Vec<i64> {
    let Ok(r) = get(format!("{}/readyz", c.admin_url)).await else {
        return Vec::new();
    };
    let body: Value = r.json().await.unwrap_or_default();
    body["partitions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// Wait (up to 90 s) until the instances own `partitions` partitions between them, each at
/// least one.
pub async fn wait_spread(consumers: &[&ConsumerProc], partitions: usize) -> Result<()> {
    wait_for(
        "every instance owns partitions",
        Duration::from_secs(90),
        || async {
            let mut total = 0;
            for c in consumers {
                let n = owned(c).await.len();
                if n == 0 {
                    return None;
                }
                total += n;
            }
            (total == partitions).then_some(())
        },
    )
    .await
}

/// Run `elsctl` against the consumer's admin API and assert it succeeded; its output as
/// JSON (`--output json`), or `{"text": ...}` when it printed text.
pub fn elsctl(consumer: &ConsumerProc, args: &[&str]) -> Value {
    let out = Command::new(bin("elsctl"))
        .env("ELS_ADMIN_URL", &consumer.admin_url)
        .env("ELS_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(args)
        .output()
        .expect("running elsctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "elsctl {args:?} failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|_| serde_json::json!({ "text": stdout }))
}
