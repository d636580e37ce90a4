//! `siem-sim` as a process on a free loopback port, and a client of its query API (`/sim/*`):
//! stats, event ids, stored records (paged by `seq`), faults and reset. Answers come back as
//! JSON values, or as the caller's own types (`stats_as`, `records_as`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{KitError, Result};
use crate::proc::{free_port, Proc};

/// The HEC token siem-sim accepts by default.
pub const HEC_TOKEN: &str = "els-demo-token";
/// Records per page of `GET /sim/events` when reading them all.
const PAGE: usize = 10_000;

/// A record type of `GET /sim/events`: paging goes on after the last record's `seq`.
pub trait Stored: DeserializeOwned {
    fn seq(&self) -> Option<u64>;
}

impl Stored for Value {
    fn seq(&self) -> Option<u64> {
        self["seq"].as_u64()
    }
}

/// A running siem-sim and a client for it.
pub struct SimProc {
    /// `http://127.0.0.1:<port>`; the HEC, generic and `/sim/*` paths hang off it.
    pub url: String,
    pub proc: Proc,
    client: reqwest::Client,
    /// How it was started, for [`SimProc::restart`].
    command: (PathBuf, Vec<String>, Vec<(String, String)>, PathBuf),
}

impl SimProc {
    /// Start `bin` (siem-sim) on a free port with `args` and `env`, logging to
    /// `dir/<name>.log`, and wait until it listens.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.splice(0..0, ["--listen".to_string(), addr.clone()]);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let command = (
            bin.to_path_buf(),
            args,
            env,
            dir.join(format!("{name}.log")),
        );
        let proc = Self::spawn(name, &command)?;
        proc.wait_accepting(&addr, Duration::from_secs(20))?;
        Ok(Self {
            url: format!("http://{addr}"),
            proc,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            command,
        })
    }

    fn spawn(
        name: &str,
        (bin, args, env, log): &(PathBuf, Vec<String>, Vec<(String, String)>, PathBuf),
    ) -> Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(name, cmd, log.clone())
    }

    /// `kill -9`: the port refuses connections until [`SimProc::restart`].
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// Start again on the same address with the same flags (its stored events start over).
    pub fn restart(&mut self) -> Result<()> {
        self.proc.kill9();
        let name = self.proc.name.clone();
        self.proc = Self::spawn(&name, &self.command)?;
        let addr = self.url.trim_start_matches("http://").to_string();
        self.proc.wait_accepting(&addr, Duration::from_secs(20))
    }

    /// The Splunk HEC event endpoint.
    pub fn hec_url(&self) -> String {
        format!("{}/services/collector/event", self.url)
    }

    /// `GET /sim/stats`, the whole answer.
    pub async fn stats(&self) -> Result<Value> {
        self.stats_as().await
    }

    /// `GET /sim/stats` as the caller's type (the fields it reads).
    pub async fn stats_as<T: DeserializeOwned>(&self) -> Result<T> {
        self.get_json("/sim/stats").await
    }

    /// Every event id received, duplicates included, in arrival order.
    pub async fn event_ids(&self) -> Result<Vec<String>> {
        self.get_json("/sim/event-ids").await
    }

    /// Up to `limit` stored records with `seq > after`.
    pub async fn records_after<T: Stored>(&self, after: u64, limit: usize) -> Result<Vec<T>> {
        self.get_json(&format!("/sim/events?after={after}&limit={limit}"))
            .await
    }

    /// Every stored record (`{seq, received_at, headers, body, ...}`), all pages.
    pub async fn records(&self) -> Result<Vec<Value>> {
        self.records_as().await
    }

    /// Every stored record as the caller's type, all pages.
    pub async fn records_as<T: Stored>(&self) -> Result<Vec<T>> {
        let mut out: Vec<T> = Vec::new();
        let mut after = 0;
        loop {
            let page: Vec<T> = self.records_after(after, PAGE).await?;
            let Some(last) = page.last().and_then(Stored::seq) else {
                return Ok(out);
            };
            after = last;
            out.extend(page);
        }
    }

    /// `PUT /sim/faults`: replace the injected faults (`{}` clears them).
    pub async fn set_faults(&self, faults: Value) -> Result<()> {
        let r = self
            .client
            .put(format!("{}/sim/faults", self.url))
            .json(&faults)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(KitError::step(format!("setting faults: {status} {text}")));
        }
        Ok(())
    }

    /// `POST /sim/reset`: forget every request, event and stored record.
    pub async fn reset(&self) -> Result<()> {
        self.client
            .post(format!("{}/sim/reset", self.url))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}
