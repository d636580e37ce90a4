//! Apache Kafka on loopback for tests and benchmarks: the pinned release that
//! `deploy/kafka/pom.xml` fetches from Maven Central, run by `deploy/kafka/kafka.sh node` with
//! plain `java -cp` in KRaft mode (each node broker and controller at once).
//!
//! [`Kafka::single`] is one node (replication factor 1); [`Kafka::cluster`] three or more
//! nodes with replication factor 3 and `min.insync.replicas=2` for topics it creates, so a
//! node can be killed under load. Nodes keep their data directories, so a killed node comes
//! back with its log.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::{KitError, Result};
use crate::proc::{free_port, wait_port, workspace_root, Proc};

/// How long a node may take to start (a cold JVM on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One node: broker and controller in one JVM.
struct Node {
    id: i32,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

/// A running Kafka: one node or a cluster.
pub struct Kafka {
    /// Bootstrap servers for clients (every node, comma-separated).
    pub addr: String,
    nodes: Vec<Node>,
    voters: String,
}

impl Kafka {
    /// One node on free ports, data under `dir/kafka-1`.
    pub fn single(dir: &Path) -> Result<Self> {
        Self::start(dir, 1)
    }

    /// `n` nodes (use 3) forming one KRaft quorum; topics get replication factor 3.
    pub fn cluster(dir: &Path, n: usize) -> Result<Self> {
        Self::start(dir, n)
    }

    /// Start `n` nodes on fresh ports; when a node exits before it listens (its port was
    /// taken after all), try again once on other ports.
    fn start(dir: &Path, n: usize) -> Result<Self> {
        match Self::start_once(dir, n) {
            Ok(kafka) => Ok(kafka),
            Err(first) => {
                eprintln!("kafka did not start ({first}); trying again on other ports");
                for id in 1..=n {
                    let _ = std::fs::remove_dir_all(dir.join(format!("kafka-{id}")));
                }
                Self::start_once(dir, n)
            }
        }
    }

    fn start_once(dir: &Path, n: usize) -> Result<Self> {
        let nodes: Vec<Node> = (1..=n as i32)
            .map(|id| Node {
                id,
                port: free_port(),
                controller_port: free_port(),
                dir: dir.join(format!("kafka-{id}")),
                proc: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let addr = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",");
        let mut kafka = Self {
            addr,
            nodes,
            voters,
        };
        for id in kafka.node_ids() {
            kafka.spawn_node(id)?;
        }
        for id in kafka.node_ids() {
            kafka.wait_node(id)?;
        }
        kafka.wait_brokers(n, START_TIMEOUT)?;
        Ok(kafka)
    }

    /// Wait until node `id` listens, failing at once (with its log) if it exits.
    fn wait_node(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        let addr = format!("127.0.0.1:{}", node.port);
        match &node.proc {
            Some(proc) => proc.wait_accepting(&addr, START_TIMEOUT),
            None => wait_port(&addr, START_TIMEOUT),
        }
    }

    fn spawn_node(&mut self, id: i32) -> Result<()> {
        let voters = self.voters.clone();
        let node = self.node_mut(id)?;
        std::fs::create_dir_all(&node.dir)
            .map_err(|e| KitError::io(format!("creating {}", node.dir.display()), e))?;
        let mut cmd = Command::new("bash");
        cmd.arg(workspace_root().join("deploy/kafka/kafka.sh"))
            .arg("node")
            .arg("--dir")
            .arg(&node.dir)
            .arg("--port")
            .arg(node.port.to_string())
            .arg("--controller-port")
            .arg(node.controller_port.to_string())
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--voters")
            .arg(voters);
        let log = node.dir.with_extension("log");
        node.proc = Some(Proc::spawn(&format!("kafka-{id}"), cmd, log)?);
        Ok(())
    }

    fn node(&self, id: i32) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| KitError::step(format!("no kafka node {id}")))
    }

    fn node_mut(&mut self, id: i32) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| KitError::step(format!("no kafka node {id}")))
    }

    /// Node ids, 1..=n.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Replication factor of topics this kit creates (3 on a cluster, else 1).
    pub fn replication(&self) -> i32 {
        if self.nodes.len() >= 3 {
            3
        } else {
            1
        }
    }

    /// `kill -9` one node (its data directory stays).
    pub fn kill9_node(&mut self, id: i32) -> Result<()> {
        if let Some(mut p) = self.node_mut(id)?.proc.take() {
            p.kill9();
        }
        Ok(())
    }

    /// Start a killed node again on its ports and data; returns once it listens.
    pub fn restart_node(&mut self, id: i32) -> Result<()> {
        self.kill9_node(id)?;
        self.spawn_node(id)?;
        self.wait_node(id)
    }

    /// `kill -9` every node.
    pub fn kill9(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut p) = node.proc.take() {
                p.kill9();
            }
        }
    }

    /// Start every node again (after [`Kafka::kill9`]) and wait until all are brokers again.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        for id in self.node_ids() {
            self.spawn_node(id)?;
        }
        self.wait_brokers(self.nodes.len(), START_TIMEOUT)
    }

    /// CPU and memory of every running node, summed.
    pub fn usage(&self) -> crate::proc::Usage {
        let mut total = crate::proc::Usage::default();
        for u in self
            .nodes
            .iter()
            .filter_map(|n| n.proc.as_ref())
            .map(Proc::usage)
        {
            total.cpu_seconds += u.cpu_seconds;
            total.peak_rss += u.peak_rss;
            total.rss += u.rss;
        }
        total
    }

    /// The logs of every node (for failure output).
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.as_ref())
            .map(|p| format!("---- {} ----\n{}", p.name, p.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn client(&self) -> Result<BaseConsumer> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "els-testkit-inspect")
            .set("enable.auto.commit", "false")
            .create()?)
    }

    /// Wait until the cluster metadata lists `n` brokers.
    pub fn wait_brokers(&self, n: usize, timeout: Duration) -> Result<()> {
        let client = self.client()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(md) = client.fetch_metadata(None, Duration::from_secs(5)) {
                if md.brokers().len() >= n {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(KitError::timeout(format!("{n} kafka brokers"), timeout))
    }

    /// The leader node of each partition of `topic` (-1 while it has none).
    pub fn leaders(&self, topic: &str) -> Result<BTreeMap<i32, i32>> {
        let md = self
            .client()?
            .fetch_metadata(Some(topic), Duration::from_secs(10))?;
        Ok(md
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| (p.id(), p.leader()))
            .collect())
    }

    /// Create a topic (the kit's replication factor) and wait until every partition has a
    /// leader.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(name, partitions, &[]).await
    }

    /// [`Kafka::create_topic`] with topic configs (e.g. `cleanup.policy=compact`).
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()?;
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(self.replication()),
        );
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics([&topic], &options).await? {
            if let Err((t, e)) = result {
                return Err(KitError::step(format!("creating topic {t}: {e}")));
            }
        }
        let start = Instant::now();
        loop {
            let leaders = self.leaders(name).unwrap_or_default();
            if leaders.len() == partitions as usize && leaders.values().all(|l| *l >= 0) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(KitError::timeout(
                    format!("leaders of {name}"),
                    start.elapsed(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sum of high watermarks of a topic's partitions (records ever produced).
    pub fn high_watermarks(&self, topic: &str, partitions: i32) -> Result<i64> {
        let c = self.client()?;
        let mut total = 0;
        for p in 0..partitions {
            let (_, high) = c.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            total += high;
        }
        Ok(total)
    }

    /// Where each of `ids` sits on `topic` (partition, offset), read from the beginning with
    /// a plain consumer; ids not found are absent from the map. Also returns how many records
    /// were read of how many the partitions hold. Tells, when events are missing at the SIEM,
    /// whether the broker lost them or the pipeline did.
    pub fn locate_event_ids(
        &self,
        topic: &str,
        partitions: i32,
        ids: &HashSet<String>,
    ) -> Result<Located> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "els-testkit-locate")
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
            let id = msg
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                .and_then(|v| v["event_id"].as_str().map(str::to_string));
            if let Some(id) = id.filter(|id| ids.contains(id)) {
                found.insert(id, (msg.partition(), msg.offset()));
            }
        }
        Ok((found, total - remaining, total))
    }

    /// The committed offsets of `group` on `topic`, per partition (-1: none).
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
