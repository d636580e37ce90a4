//! Harness for end-to-end tests across real processes, all on 127.0.0.1 with free ports:
//! Apache Kafka (from `deploy/kafka`, through [`els_testkit::Kafka`]), `siem-sim`,
//! `els-consumer` and `els-producer`.
//!
//! Binaries are taken from the same target directory as the test binary (build them first:
//! `cargo build --workspace --bins`). Every process is killed when its handle drops, and logs
//! go to files under a per-test directory, printed when a test fails. Process, broker and
//! metrics helpers live in `els-testkit` (shared with `els-bench`) and are re-exported here.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
pub use arrivals::{arrived, post_paced, wait_arrived, wait_arrived_or_explain, Explain};
pub use els_testkit::kafka::Located;
pub use els_testkit::{free_port, parse_metrics, wait_port, Kafka, Proc};
use serde_json::Value;

pub mod arrivals;

/// The admin token used by test consumers.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Master key for encrypting auth headers at rest in tests (never use outside tests).
pub const TEST_MASTER_KEYS: &str =
    "test1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The HEC token siem-sim accepts by default.
pub const HEC_TOKEN: &str = "els-demo-token";

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

/// A running siem-sim.
pub struct Sim {
    pub url: String,
    pub proc: Proc,
    client: reqwest::Client,
}

impl Sim {
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> Result<Self> {
        let port = free_port();
        let mut cmd = Command::new(bin("siem-sim"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra);
        let proc = Proc::spawn(name, cmd, dir.join(format!("{name}.log")))?;
        let addr = format!("127.0.0.1:{port}");
        wait_port(&addr, Duration::from_secs(20))?;
        Ok(Self {
            url: format!("http://{addr}"),
            proc,
            client: http(),
        })
    }

    pub fn hec_url(&self) -> String {
        format!("{}/services/collector/event", self.url)
    }

    pub async fn stats(&self) -> Result<Value> {
        Ok(self
            .client
            .get(format!("{}/sim/stats", self.url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Every event id received, duplicates included, in arrival order.
    pub async fn event_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .client
            .get(format!("{}/sim/event-ids", self.url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Stored records (`{seq, headers, body, ...}`), all pages.
    pub async fn records(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let page: Vec<Value> = self
                .client
                .get(format!("{}/sim/events?after={after}&limit=10000", self.url))
                .send()
                .await?
                .json()
                .await?;
            let Some(last) = page.last().and_then(|r| r["seq"].as_u64()) else {
                break;
            };
            after = last;
            out.extend(page);
        }
        Ok(out)
    }

    pub async fn set_faults(&self, faults: Value) -> Result<()> {
        let r = self
            .client
            .put(format!("{}/sim/faults", self.url))
            .json(&faults)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("setting faults: {}", r.text().await?);
        }
        Ok(())
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

/// A consumer process and what it was started with.
pub struct ConsumerProc {
    pub proc: Proc,
    pub admin_url: String,
    pub env: Vec<(String, String)>,
    dir: PathBuf,
    name: String,
}

impl ConsumerProc {
    /// Start `els-consumer` with `ELS_*` settings (merged over test defaults).
    pub fn start(
        dir: &Path,
        name: &str,
        broker: &Kafka,
        settings: &Value,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let settings_path = dir.join(format!("{name}-settings.json"));
        std::fs::write(&settings_path, serde_json::to_vec_pretty(settings)?)?;
        let admin_port = free_port();
        let mut all: Vec<(String, String)> = vec![
            ("ELS_BROKERS".into(), broker.addr.clone()),
            (
                "ELS_SETTINGS_FILE".into(),
                settings_path.display().to_string(),
            ),
            (
                "ELS_DATA_DIR".into(),
                dir.join(format!("{name}-data")).display().to_string(),
            ),
            ("ELS_ADMIN_LISTEN".into(), format!("127.0.0.1:{admin_port}")),
            ("ELS_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("ELS_SSRF_ALLOW".into(), "127.0.0.1".into()),
            ("ELS_MASTER_KEYS".into(), TEST_MASTER_KEYS.into()),
            ("ELS_BATCH_LINGER_MS".into(), "50".into()),
            ("RUST_LOG".into(), "info,rdkafka=warn".into()),
        ];
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        let mut me = Self {
            proc: Proc::spawn(
                name,
                Command::new("true"),
                dir.join(format!("{name}.boot.log")),
            )?,
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            env: all,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        me.restart()?;
        Ok(me)
    }

    /// Start (again) with the same environment, data directory and admin port.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.kill9();
        let mut cmd = Command::new(bin("els-consumer"));
        cmd.envs(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.proc = Proc::spawn(&self.name, cmd, self.dir.join(format!("{}.log", self.name)))?;
        wait_port(
            self.admin_url.trim_start_matches("http://"),
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = get(format!("{}/metrics", self.admin_url))
            .await?
            .text()
            .await?;
        Ok(parse_metrics(&text))
    }

    /// Wait until the consumer owns partitions (ready).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let url = format!("{}/readyz", self.admin_url);
        wait_for("consumer ready", timeout, || async {
            get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await
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
