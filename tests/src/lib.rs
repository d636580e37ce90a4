//! Harness for end-to-end tests across real processes, all on 127.0.0.1 with free ports:
//! the Kafka-compatible broker (tansu), `siem-sim`, `els-consumer` and `els-producer`.
//!
//! Binaries are taken from the same target directory as the test binary (build them first:
//! `cargo build --workspace --bins`); the broker from `TANSU_BIN` or `PATH`. Every process is
//! killed when its handle drops, and logs go to files under a per-test directory, printed
//! when a test fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

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

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
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
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/e2e-xxxx -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home_bin = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .unwrap_or_default();
    if home_bin.exists() {
        return home_bin;
    }
    PathBuf::from("tansu")
}

/// A child process, killed (SIGKILL) on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let err = out.try_clone()?;
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.into(),
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `kill -9`: no chance to flush, commit or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `timeout` for a graceful exit; returns whether it exited 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The log so far (for assertions and failure output).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log.display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Wait until TCP connects to `addr`.
pub fn wait_port(addr: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} did not open within {timeout:?}")
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

/// A tansu broker on a free port.
pub struct Broker {
    pub addr: String,
    pub proc: Proc,
    storage: String,
    dir: PathBuf,
}

impl Broker {
    /// In-memory storage: fast, gone when killed.
    pub fn memory(dir: &Path) -> Result<Self> {
        Self::start(dir, "memory://tansu/".into(), free_port())
    }

    /// SQLite storage in `dir`: survives a restart.
    pub fn sqlite(dir: &Path) -> Result<Self> {
        let db = dir.join("broker.db");
        Self::start(dir, format!("sqlite:///{}", db.display()), free_port())
    }

    fn start(dir: &Path, storage: String, port: u16) -> Result<Self> {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_bin());
        cmd.arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://{addr}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{addr}"))
            .arg("--storage-engine")
            .arg(&storage)
            .env("RUST_LOG", "warn");
        let proc = Proc::spawn("broker", cmd, dir.join("broker.log"))?;
        wait_port(&addr, Duration::from_secs(30))?;
        Ok(Self {
            addr,
            proc,
            storage,
            dir: dir.to_path_buf(),
        })
    }

    /// Start again on the same port and storage (after [`Proc::kill9`]).
    pub fn restart(&mut self) -> Result<()> {
        self.proc.kill9();
        let port: u16 = self
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let fresh = Self::start(&self.dir, self.storage.clone(), port)?;
        *self = fresh;
        Ok(())
    }

    /// Create a topic with plain Kafka admin calls.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res = admin.create_topics([&topic], &AdminOptions::new()).await?;
        for r in res {
            if let Err((t, e)) = r {
                bail!("creating topic {t}: {e}");
            }
        }
        Ok(())
    }

    /// Sum of high watermarks of a topic's partitions (records ever produced).
    pub fn high_watermarks(&self, topic: &str, partitions: i32) -> Result<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "els-tests-inspect")
            .create()?;
        let mut total = 0;
        for p in 0..partitions {
            let (_, high) = c.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            total += high;
        }
        Ok(total)
    }

    /// Where each of `ids` sits on `topic` (partition, offset), read from the beginning with
    /// a plain consumer; ids not found are absent from the map. Also returns how many records
    /// were read of how many the partitions hold. Used to tell, when events are missing at
    /// the SIEM, whether the broker lost them or the pipeline did.
    pub fn locate_event_ids(
        &self,
        topic: &str,
        partitions: i32,
        ids: &std::collections::HashSet<String>,
    ) -> Result<Located> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "els-tests-locate")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "20")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        let mut remaining = 0;
        for p in 0..partitions {
            let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            if high > low {
                tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
                remaining += high - low;
            }
        }
        c.assign(&tpl)?;
        let total = remaining;
        let mut found = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while remaining > 0 && Instant::now() < deadline {
            let Some(msg) = c.poll(Duration::from_millis(500)) else {
                continue;
            };
            let msg = msg?;
            remaining -= 1;
            let id = rdkafka::Message::payload(&msg)
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                .and_then(|v| v["event_id"].as_str().map(str::to_string));
            if let Some(id) = id.filter(|id| ids.contains(id)) {
                found.insert(
                    id,
                    (
                        rdkafka::Message::partition(&msg),
                        rdkafka::Message::offset(&msg),
                    ),
                );
            }
        }
        Ok((found, total - remaining, total))
    }

    /// The committed offsets of `group` on `topic`, per partition.
    pub fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<BTreeMap<i32, i64>> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", group)
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(5))?;
        Ok(got
            .elements()
            .iter()
            .map(|e| {
                (
                    e.partition(),
                    match e.offset() {
                        Offset::Offset(o) => o,
                        _ => -1,
                    },
                )
            })
            .collect())
    }
}

/// Event ids found on a topic with their (partition, offset), records read, records held.
pub type Located = (BTreeMap<String, (i32, i64)>, i64, i64);

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
        broker: &Broker,
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
            ("ELS_INSTANCE_ID".into(), name.to_string()),
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

/// Prometheus text format to `name{labels}` -> value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A running ingest API.
pub struct ProducerProc {
    pub proc: Proc,
    pub url: String,
}

impl ProducerProc {
    pub fn start(dir: &Path, broker: &Broker, env: &[(&str, &str)]) -> Result<Self> {
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
