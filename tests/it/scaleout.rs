//! State that outlives an instance: parked events and dead letters go to the compacted state
//! topic before their offsets are finished, so an instance lost for good (disk and all) loses
//! nothing, and one instance's admin API lists and replays every instance's dead letters.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use els_producer::generate::demo_events;
use els_tests::*;
use serde_json::{json, Value};

const TOPIC: &str = "els.events";
const PARTITIONS: i32 = 4;

/// Demo orgs (`org-0001`..`org-0012`) picked one per partition of four (librdkafka's default
/// partitioner: CRC-32 of the org id, modulo 4), so whichever instance is lost owned some of
/// each kind. The test checks the outcome on the instances, not this mapping.
const HANGING: [&str; 4] = ["org-0004", "org-0002", "org-0005", "org-0001"];
const DENIED: [&str; 4] = ["org-0006", "org-0009", "org-0007", "org-0003"];

fn start(
    dir: &std::path::Path,
    name: &str,
    broker: &Kafka,
    settings: &Value,
    env: &[(&str, &str)],
) -> ConsumerProc {
    let mut all = vec![("ELS_SESSION_TIMEOUT_MS", "6000")];
    all.extend_from_slice(env);
    ConsumerProc::start(dir, name, broker, settings, &all).unwrap()
}

fn metric(m: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

/// Dead letters this instance wrote itself (not those it sees from the others).
async fn rejected(c: &ConsumerProc) -> f64 {
    let m = c.metrics().await.unwrap_or_default();
    metric(&m, "els_events_dead_lettered_total{reason=\"rejected\"}")
}

/// (event ids, partitions) of the dead letters `c` lists.
fn listed(c: &ConsumerProc) -> (HashSet<String>, BTreeSet<i64>) {
    let list = elsctl(c, &["--output", "json", "dlq", "list"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ids = items
        .iter()
        .filter_map(|i| i["event"]["event_id"].as_str().map(String::from))
        .collect();
    let partitions = items
        .iter()
        .filter_map(|i| i["partition"].as_i64())
        .collect();
    (ids, partitions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_lost_for_good_loses_nothing() {
    let dir = test_dir("scaleout-lost");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, PARTITIONS).await.unwrap();
    let sim = Sim::start(&dir, "siem-sim", &["--max-stored", "100000"]).unwrap();
    // The SIEM of the hanging orgs: holds every request open until the client gives up.
    let stuck = Sim::start(&dir, "siem-stuck", &["--max-stored", "100000"]).unwrap();
    stuck.set_faults(json!({"hang": true})).await.unwrap();
    // The SIEM of the denied orgs refuses their events themselves (400): dead letters. (A
    // wrong token would pause those streams and hold the events instead.)
    let refusing = Sim::start(&dir, "siem-refusing", &[]).unwrap();
    refusing.set_faults(json!({"status": 400})).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let mut orgs = serde_json::Map::new();
    for org in HANGING {
        orgs.insert(org.into(), settings_for(&stuck.hec_url()));
    }
    for org in DENIED {
        orgs.insert(org.into(), settings_for(&refusing.hec_url()));
    }
    let settings = json!({"orgs": orgs, "default": settings_for(&sim.hec_url())});
    let env = [
        ("ELS_ORG_QUEUE_CAPACITY", "20"),
        ("ELS_REQUEST_TIMEOUT_MS", "2000"),
        ("ELS_RETRY_INITIAL_MS", "200"),
        ("ELS_RETRY_MAX_INTERVAL_MS", "2000"),
    ];
    let a = start(&dir, "consumer-a", &broker, &settings, &env);
    let mut b = start(&dir, "consumer-b", &broker, &settings, &env);
    wait_spread(&[&a, &b], PARTITIONS as usize).await.unwrap();
    let before = (owned(&a).await, owned(&b).await);

    let events = demo_events(12, 12_000, 81);
    let posting = tokio::spawn(post_paced(
        producer.url.clone(),
        events.clone(),
        200,
        Duration::from_millis(60),
    ));
    // The instance to lose has parked events (acknowledged there) and dead letters of its own.
    let (parked_b, dead_b) = wait_for(
        "the instance to lose parks and dead-letters",
        Duration::from_secs(90),
        || async {
            let m = b.metrics().await.ok()?;
            let parked = metric(&m, "els_events_parked");
            let dead = metric(&m, "els_events_dead_lettered_total{reason=\"rejected\"}");
            (parked >= 100.0 && dead >= 20.0).then_some((parked, dead))
        },
    )
    .await
    .unwrap();
    b.proc.kill9();
    let killed = Instant::now();
    std::fs::remove_dir_all(dir.join("consumer-b-data")).unwrap();
    let takeover = wait_for(
        "the survivor owns every partition",
        Duration::from_secs(60),
        || async { (owned(&a).await.len() == PARTITIONS as usize).then(|| killed.elapsed()) },
    )
    .await
    .unwrap();
    let ids = posting.await.unwrap();
    assert_eq!(ids.len(), events.len());
    let parked_a = wait_for(
        "the survivor holds the lost instance's parked events",
        Duration::from_secs(30),
        || async {
            let m = a.metrics().await.ok()?;
            let restored = metric(&m, "els_changelog_restored_total{kind=\"park\"}");
            (restored >= parked_b).then(|| (metric(&m, "els_events_parked"), restored))
        },
    )
    .await
    .unwrap();
    // The stuck SIEM recovers; the survivor delivers what both instances had parked.
    stuck.set_faults(json!({})).await.unwrap();

    let denied: HashSet<&str> = DENIED.into_iter().collect();
    let denied_ids: HashSet<String> = ids
        .iter()
        .zip(&events)
        .filter(|(_, e)| denied.contains(e["org_id"].as_str().unwrap_or("")))
        .map(|(id, _)| id.clone())
        .collect();
    let started = Instant::now();
    let (delivered, dups, dead, dead_partitions) = loop {
        let mut all = sim.event_ids().await.unwrap();
        all.extend(stuck.event_ids().await.unwrap());
        let total = all.len();
        let delivered: HashSet<String> = all.into_iter().collect();
        let (dead, partitions) = listed(&a);
        let lost: Vec<&String> = ids
            .iter()
            .filter(|id| !delivered.contains(*id) && !dead.contains(*id))
            .collect();
        if lost.is_empty() && dead == denied_ids {
            let dups = total - delivered.len();
            break (delivered, dups, dead, partitions);
        }
        if started.elapsed() > Duration::from_secs(180) {
            let lost: HashSet<&String> = lost.into_iter().collect();
            let orgs: BTreeSet<&str> = ids
                .iter()
                .zip(&events)
                .filter(|(id, _)| lost.contains(id))
                .filter_map(|(_, e)| e["org_id"].as_str())
                .collect();
            let m = a.metrics().await.unwrap_or_default();
            let gauges: Vec<(&String, &f64)> = m
                .iter()
                .filter(|(k, _)| k.contains("parked") || k.contains("in_flight"))
                .collect();
            let (located, _, _) = broker
                .locate_event_ids(
                    TOPIC,
                    PARTITIONS,
                    &lost.iter().map(|s| s.to_string()).collect(),
                )
                .unwrap_or_default();
            let committed = broker
                .committed("els-consumer", TOPIC, PARTITIONS)
                .unwrap_or_default();
            let at: Vec<_> = located.values().take(10).collect();
            panic!(
                "{} of {} acknowledged events neither delivered nor dead-lettered (e.g. {:?}, orgs \
                 {orgs:?}, on the topic at {at:?}, committed {committed:?}); dead letters listed {} \
                 of {} expected; survivor {gauges:?}",
                lost.len(),
                ids.len(),
                lost.iter().take(3).collect::<Vec<_>>(),
                dead.len(),
                denied_ids.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        delivered.is_disjoint(&denied_ids),
        "a denied event was delivered"
    );
    assert!(
        before.1.iter().any(|p| dead_partitions.contains(p)),
        "the survivor lists dead letters of the lost instance's partitions {:?}",
        before.1
    );
    println!(
        "instance lost for good (2 instances, 4 partitions; a {:?} b {:?}; b killed -9 with {parked_b} parked and {dead_b} \
         dead-lettered, its data dir deleted, never restarted): takeover {:.1} s (session timeout 6 s); survivor restored \
         {} parked events ({} parked before the SIEM recovered); acknowledged {}, delivered {}, duplicates {dups}, \
         dead letters listed by the survivor {} (partitions {dead_partitions:?}), lost 0",
        before.0,
        before.1,
        takeover.as_secs_f64(),
        parked_a.1,
        parked_a.0,
        ids.len(),
        delivered.intersection(&ids.iter().cloned().collect()).count(),
        dead.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_and_replay_through_one_instance_cover_both() {
    let dir = test_dir("scaleout-dlq");
    let broker = Kafka::single(&dir).unwrap();
    broker.create_topic(TOPIC, PARTITIONS).await.unwrap();
    // A SIEM that refuses every event for now (400: dead-lettered, batches split).
    let sim = Sim::start(&dir, "siem-sim", &[]).unwrap();
    sim.set_faults(json!({"status": 400})).await.unwrap();
    let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
    let settings = json!({"default": settings_for(&sim.hec_url())});
    let a = start(&dir, "consumer-a", &broker, &settings, &[]);
    let b = start(&dir, "consumer-b", &broker, &settings, &[]);
    wait_spread(&[&a, &b], PARTITIONS as usize).await.unwrap();
    let owned_by = (owned(&a).await, owned(&b).await);

    let ids = producer
        .post_all(&demo_events(12, 400, 91), 100)
        .await
        .unwrap();
    let per_instance = wait_for(
        "every event dead-lettered",
        Duration::from_secs(60),
        || async {
            let (x, y) = (rejected(&a).await, rejected(&b).await);
            (x + y >= ids.len() as f64).then_some((x, y))
        },
    )
    .await
    .unwrap();
    assert!(
        per_instance.0 > 0.0 && per_instance.1 > 0.0,
        "each instance dead-letters its own partitions: {per_instance:?}"
    );
    let want: HashSet<String> = ids.iter().cloned().collect();
    let (through_a, partitions) = wait_for(
        "instance a lists both instances' dead letters",
        Duration::from_secs(30),
        || async {
            let (listed_ids, partitions) = listed(&a);
            (listed_ids == want).then_some((listed_ids.len(), partitions))
        },
    )
    .await
    .unwrap();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{partitions:?}");

    sim.set_faults(json!({})).await.unwrap();
    let replay = elsctl(
        &a,
        &[
            "--output", "json", "dlq", "replay", "--yes", "--rate", "1000",
        ],
    );
    assert_eq!(replay["replayed"], json!(ids.len()), "{replay}");
    let (found, dups) = wait_arrived(&[&sim], &ids, Duration::from_secs(60)).await;
    let remaining = wait_for(
        "both instances' lists empty",
        Duration::from_secs(30),
        || async {
            let (x, y) = (listed(&a).0.len(), listed(&b).0.len());
            (x == 0 && y == 0).then_some((x, y))
        },
    )
    .await
    .unwrap();
    println!(
        "dead letters across instances (a owns {:?}, b owns {:?}): dead-lettered a {} b {}; `elsctl dlq list` on a \
         listed {through_a} from partitions {partitions:?}; `dlq replay` on a replayed {}; delivered {found} \
         (duplicates {dups}); remaining a {} b {}",
        owned_by.0,
        owned_by.1,
        per_instance.0,
        per_instance.1,
        replay["replayed"],
        remaining.0,
        remaining.1,
    );
}
