//! `els-consumer` as a process, started from a binary path: its settings file, a data
//! directory and an admin port of its own, loopback defaults (`ELS_SSRF_ALLOW=127.0.0.1`, since
//! siem-sim is on 127.0.0.1) under the caller's `ELS_*` variables; then its admin URL,
//! `/metrics`, the wait for `/readyz`, and a restart with the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{KitError, Result};
use crate::metrics::parse_metrics;
use crate::proc::{free_port, Proc};

/// How long a (re)started consumer may take to open its admin port.
const ADMIN_PORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running consumer and what it was started with.
pub struct ConsumerProc {
    pub proc: Proc,
    /// `http://127.0.0.1:<port>` of the admin API (`/metrics`, `/readyz`, `/v1/...`).
    pub admin_url: String,
    /// Every variable it runs with, defaults included: a restart reuses them, so it keeps
    /// its data directory and admin port.
    pub env: Vec<(String, String)>,
    bin: PathBuf,
    log: PathBuf,
    client: reqwest::Client,
}

impl ConsumerProc {
    /// Write `settings` to `dir/<name>-settings.json` and start `bin` reading it, consuming
    /// from `brokers`, with `env` set over the defaults (a later pair wins over an earlier
    /// one with the same name). Returns once the admin port is open.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        brokers: &str,
        settings: &Value,
        env: &[(impl AsRef<str>, impl AsRef<str>)],
    ) -> Result<Self> {
        let settings_path = dir.join(format!("{name}-settings.json"));
        std::fs::write(&settings_path, serde_json::to_vec_pretty(settings)?)
            .map_err(|e| KitError::io(format!("writing {}", settings_path.display()), e))?;
        let data = dir.join(format!("{name}-data"));
        let mut all: Vec<(String, String)> = vec![
            ("ELS_BROKERS".into(), brokers.into()),
            (
                "ELS_SETTINGS_FILE".into(),
                settings_path.display().to_string(),
            ),
            ("ELS_DATA_DIR".into(), data.display().to_string()),
            (
                "ELS_ADMIN_LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
            ("ELS_SSRF_ALLOW".into(), "127.0.0.1".into()),
            ("RUST_LOG".into(), "info,rdkafka=warn".into()),
        ];
        for (k, v) in env {
            let (k, v) = (k.as_ref(), v.as_ref());
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        let listen = all
            .iter()
            .find(|(k, _)| k == "ELS_ADMIN_LISTEN")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut me = Self {
            proc: Self::spawn(bin, name, &all, &dir.join(format!("{name}.log")))?,
            admin_url: format!("http://{listen}"),
            env: all,
            bin: bin.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        me.wait_admin_port()?;
        Ok(me)
    }

    fn spawn(bin: &Path, name: &str, env: &[(String, String)], log: &Path) -> Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(name, cmd, log.to_path_buf())
    }

    fn wait_admin_port(&mut self) -> Result<()> {
        let addr = self.admin_url.trim_start_matches("http://");
        self.proc.wait_accepting(addr, ADMIN_PORT_TIMEOUT)
    }

    /// Start (again, after a kill or an exit) with the same environment, data directory and
    /// admin port; the log goes on in the same file.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.kill9();
        let name = self.proc.name.clone();
        self.proc = Self::spawn(&self.bin, &name, &self.env, &self.log)?;
        self.wait_admin_port()
    }

    /// `/metrics` as `name{labels}` -> value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse_metrics(&text))
    }

    /// Wait until the consumer owns partitions (`/readyz` is 200); fails early, with the
    /// log's tail, when the process exits meanwhile.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let url = format!("{}/readyz", self.admin_url);
        let start = Instant::now();
        loop {
            let ready = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            self.proc.check_alive()?;
            if start.elapsed() > timeout {
                return Err(KitError::timeout(
                    format!("{} to own partitions", self.proc.name),
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
