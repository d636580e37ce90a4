//! Scale-out and broker failures on Apache Kafka: an instance lost for good, a rolling
//! restart, a partition leader killed on a three-node cluster, and plain Kafka clients other
//! than ELS's own writing to the events topic. Every scenario compares the ids the ingest API
//! (or the Kafka client) had acknowledged with the ids that reached siem-sim, and prints the
//! counts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use els_producer::generate::demo_events;
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";
/// Group session timeout of the consumers here (low, so a lost instance is noticed soon).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

async fn wait_delivered(sim: &Sim, n: u64) {
    wait_for(
        "deliveries before the fault",
        Duration::from_secs(120),
        || async { (sim.stats().await.ok()?["distinct_event_ids"].as_u64()? >= n).then_some(()) },
    )
    .await
    .unwrap();
}

fn consumer_env() -> [(&'static str, String); 1] {
    [(
        "ELS_SESSION_TIMEOUT_MS",
        SESSION_TIMEOUT.as_millis().to_string(),
    )]
}

fn start_consumer(dir: &std::path::Path, name: &str, broker: &Kafka, sim: &Sim) -> ConsumerProc {
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let env = consumer_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ConsumerProc::start(dir, name, broker, &settings, &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_takes_over_an_instance_killed_for_good() {
    let dir = test_dir("failover");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 4).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "100000"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let a = start_consumer(&dir, "consumer-a", &broker, &sim);
    let mut b = start_consumer(&dir, "consumer-b", &broker, &sim);
    wait_spread(&[&a, &b], 4).await.unwrap();
    let before = (owned(&a).await, owned(&b).await);

    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        demo_events(12, 20_000, 51),
        250,
        Duration::from_millis(40),
    ));
    wait_delivered(&sim, 5_000).await;
    b.proc.kill9();
    let killed = Instant::now();
    let takeover = wait_for(
        "the survivor owns every partition",
        Duration::from_secs(60),
        || async { (owned(&a).await.len() == 4).then(|| killed.elapsed()) },
    )
    .await
    .unwrap();
    let ids = posting.await.unwrap();
    let (found, dups) = wait_arrived_or_explain(
        &[&sim],
        &ids,
        Duration::from_secs(180),
        Some(Explain {
            broker: &broker,
            topic: TOPIC,
            partitions: 4,
            consumers: vec![&a],
        }),
    )
    .await;
    println!(
        "failover (2 instances, 4 partitions, one kill -9 and never restarted): owned before a {:?} b {:?}; \
         survivor owned all 4 after {:.1} s (session timeout {} s); acknowledged {}, received {found}, duplicates {dups}, lost 0",
        before.0,
        before.1,
        takeover.as_secs_f64(),
        SESSION_TIMEOUT.as_secs(),
        ids.len()
    );
    assert!(
        takeover < SESSION_TIMEOUT * 2,
        "takeover took {takeover:?}, session timeout {SESSION_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_three_instances_under_load_loses_nothing() {
    let dir = test_dir("rolling");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 6).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "100000"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut consumers: Vec<ConsumerProc> = ["consumer-1", "consumer-2", "consumer-3"]
        .iter()
        .map(|name| start_consumer(&dir, name, &broker, &sim))
        .collect();
    wait_spread(&consumers.iter().collect::<Vec<_>>(), 6)
        .await
        .unwrap();

    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        demo_events(18, 24_000, 61),
        200,
        Duration::from_millis(40),
    ));
    let mut restarts = Vec::new();
    for (i, step) in [3_000u64, 8_000, 13_000].into_iter().enumerate() {
        wait_delivered(&sim, step).await;
        let t = Instant::now();
        let clean = consumers[i].proc.terminate(Duration::from_secs(30));
        assert!(
            clean,
            "{} did not exit 0 on SIGTERM",
            consumers[i].proc.name
        );
        consumers[i].restart().unwrap();
        consumers[i]
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap();
        restarts.push(t.elapsed().as_secs_f64());
    }
    let ids = posting.await.unwrap();
    let (found, dups) = wait_arrived_or_explain(
        &[&sim],
        &ids,
        Duration::from_secs(180),
        Some(Explain {
            broker: &broker,
            topic: TOPIC,
            partitions: 6,
            consumers: consumers.iter().collect(),
        }),
    )
    .await;
    println!(
        "rolling restart (3 instances, SIGTERM one at a time under load): acknowledged {}, received {found}, \
         duplicates {dups}, lost 0; each restart until ready took {restarts:.1?} s",
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leader_killed_on_a_three_node_cluster_loses_nothing_acknowledged() {
    let dir = test_dir("leader-loss");
    let mut broker = Kafka::cluster(&dir, 3).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "100000"]).unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let consumer = start_consumer(&dir, "consumer", &broker, &sim);
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();

    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        demo_events(9, 15_000, 71),
        250,
        Duration::from_millis(40),
    ));
    wait_delivered(&sim, 4_000).await;
    let leaders = broker.leaders(TOPIC).unwrap();
    let victim = leaders[&0];
    broker.kill9_node(victim).unwrap();
    let killed = Instant::now();
    let new_leader = wait_for(
        "a new leader of partition 0",
        Duration::from_secs(60),
        || async {
            broker
                .leaders(TOPIC)
                .ok()
                .and_then(|l| l.get(&0).copied())
                .filter(|l| *l >= 0 && *l != victim)
        },
    )
    .await
    .unwrap();
    let elected = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.restart_node(victim).unwrap();
    let ids = posting.await.unwrap();
    let (found, dups) = wait_arrived_or_explain(
        &[&sim],
        &ids,
        Duration::from_secs(240),
        Some(Explain {
            broker: &broker,
            topic: TOPIC,
            partitions: 3,
            consumers: vec![&consumer],
        }),
    )
    .await;
    println!(
        "leader loss (3 Kafka nodes, RF 3, min.insync.replicas 2): leaders before {leaders:?}; killed node {victim} \
         (leader of partition 0) mid-stream, node {new_leader} led it after {:.1} s, restarted after 10 s; \
         acknowledged {}, received {found}, duplicates {dups}, lost 0",
        elected.as_secs_f64(),
        ids.len()
    );
}

/// `key<TAB>payload` lines of events as the ingest API would write them (validated, id
/// assigned, email hashed), for plain Kafka clients to produce.
fn raw_records(events: &[Value]) -> (String, Vec<String>) {
    let mut lines = String::new();
    let mut ids = Vec::new();
    for value in events {
        let event = els_model::ingest::parse_event(value.clone()).unwrap();
        ids.push(event.event_id.to_string());
        let payload = serde_json::to_string(&event).unwrap();
        assert!(!payload.contains('\n') && !payload.contains('\t'));
        lines.push_str(&format!("{}\t{payload}\n", event.org_id));
    }
    (lines, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_and_confluent_kafka_producers_feed_the_pipeline() {
    let dir = test_dir("raw-clients");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, 3).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    let consumer = start_consumer(&dir, "consumer", &broker, &sim);
    consumer.wait_ready(Duration::from_secs(60)).await.unwrap();

    // Debian's kcat (librdkafka's CLI): one message per line, key before the tab.
    let (lines, kcat_ids) = raw_records(&demo_events(5, 300, 81));
    let file = dir.join("kcat.tsv");
    std::fs::write(&file, &lines).unwrap();
    let out = Command::new("kcat")
        .args([
            "-P",
            "-b",
            &broker.addr,
            "-t",
            TOPIC,
            "-K",
            "\t",
            "-X",
            "acks=all",
            "-l",
        ])
        .arg(&file)
        .output()
        .expect("kcat is installed by deploy/scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // confluent-kafka from PyPI (in the venv install-deps.sh makes).
    let (lines, py_ids) = raw_records(&demo_events(5, 300, 82));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("python/.venv/bin/python");
    let mut child = Command::new(&python)
        .arg(root.join("python/produce.py"))
        .args([&broker.addr, TOPIC])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run deploy/scripts/install-deps.sh)",
                python.display()
            )
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "confluent-kafka: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py_acked: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(py_acked, py_ids.len());

    let mut ids = kcat_ids.clone();
    ids.extend(py_ids.iter().cloned());
    let (found, dups) = wait_arrived(&[&sim], &ids, Duration::from_secs(60)).await;
    println!(
        "raw clients: kcat produced {}, confluent-kafka produced {} (acknowledged {py_acked}); received {found}, duplicates {dups}, lost 0",
        kcat_ids.len(),
        py_ids.len()
    );
}
