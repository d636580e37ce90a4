//! Unit tests of the park tree (no Kafka: the changelog is off).

use super::*;

fn event(org: &str, n: u32) -> TopicEvent {
    let event = els_model::ingest::parse_event(serde_json::json!({
        "event_type": "FLOW_COMPLETE",
        "execution_id": format!("0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c{n:04x}"),
        "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "f1", "flow_name": "F",
        "org_id": org, "org_name": "Acme", "org_hostname": "acme.example.com",
        "user_id": "u1", "user_email": "bob@example.com"
    }))
    .unwrap();
    TopicEvent::from_event(&event).unwrap()
}

fn key(org: &str) -> StreamKey {
    StreamKey::new(org, els_model::settings::DEFAULT_STREAM)
}

fn open() -> (Park, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("els-park-{}", uuid::Uuid::new_v4()));
    let store = StateStore::open(&dir).unwrap();
    (Park::open(&store).unwrap(), dir)
}

fn origins(jobs: &[Job]) -> Vec<(i32, i64)> {
    jobs.iter()
        .map(|j| match j.origin {
            Origin::Parked(ref at) => (at.partition, at.offset),
            Origin::Kafka { .. } => panic!("not parked"),
        })
        .collect()
}

#[test]
fn keys_sort_by_offset_within_an_org_and_round_trip() {
    let keys = [
        park_key("a", 0, 9),
        park_key("a", 0, 10),
        park_key("a", 0, 256),
        park_key("a", 1, 0),
        park_key("ab", 0, 0),
        park_key("b", 0, 1),
    ];
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    assert!(!keys[4].starts_with(&prefix("a")));
    assert_eq!(parse_key(&keys[2]), Some(("a", Some((0, 256)))));
    // Another stream of org `a` keeps its own records, outside the prefix of `a`'s default.
    let lake = StreamKey::new("a", "lake");
    assert!(!park_key(lake.as_str(), 0, 9).starts_with(&prefix("a")));
    assert_eq!(
        parse_key(&park_key(lake.as_str(), 0, 9)),
        Some((lake.as_str(), Some((0, 9))))
    );
    let mut legacy = prefix("a");
    legacy.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(parse_key(&legacy), Some(("a", None)));
}

#[tokio::test]
async fn taken_in_offset_order_with_their_origin() {
    let (mut park, dir) = open();
    for offset in [12, 3, 7] {
        park.park(&key("a"), &event("a", offset as u32), 2, offset)
            .unwrap();
    }
    let flushed = park.flush().await;
    assert_eq!(flushed.done.len(), 3);
    assert!(park.has_waiting("a"));
    let jobs = park.take("a", 2).unwrap();
    assert_eq!(origins(&jobs), [(2, 3), (2, 7)]);
    assert_eq!(park.waiting_total(), 1);
    let Origin::Parked(at) = &jobs[0].origin else {
        unreachable!()
    };
    park.complete(&at.key, 2, 3).unwrap();
    assert_eq!(park.stored(), 2);
    assert_eq!(origins(&park.take("a", 5).unwrap()), [(2, 12)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn revoked_partitions_are_dropped_and_recounted() {
    let (mut park, dir) = open();
    for offset in 0..3 {
        park.park(&key("a"), &event("a", offset as u32), 0, offset)
            .unwrap();
        park.park(&key("b"), &event("b", offset as u32), 1, offset)
            .unwrap();
    }
    park.flush().await;
    park.park(&key("b"), &event("b", 9), 1, 9).unwrap();
    park.park(&key("a"), &event("a", 9), 0, 9).unwrap();
    // One of b's events is with its worker.
    assert_eq!(park.take("b", 1).unwrap().len(), 1);
    assert_eq!((park.stored(), park.waiting_total()), (8, 7));

    assert_eq!(park.drop_partitions(&[1]).unwrap(), 4);
    assert_eq!((park.stored(), park.waiting_total()), (4, 4));
    assert!(!park.has_waiting("b") && park.has_waiting("a"));
    assert_eq!(park.orgs_waiting(), ["a"]);
    // b's unfinished offset is forgotten, a's is finished by the flush.
    let done = park.flush().await.done;
    assert_eq!(
        done,
        [Done {
            origin: Origin::Kafka {
                partition: 0,
                offset: 9
            }
        }]
    );
    // A's cursor survives: what its worker holds is not handed over twice.
    assert_eq!(origins(&park.take("a", 2).unwrap()), [(0, 0), (0, 1)]);
    park.drop_partitions(&[7]).unwrap();
    assert_eq!(origins(&park.take("a", 9).unwrap()), [(0, 2), (0, 9)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn restored_records_wait_in_offset_order() {
    let (mut park, dir) = open();
    let restored = |offset: i64| Restored {
        partition: 3,
        offset,
        stream: "c".into(),
        event: event("c", offset as u32).json().to_string(),
    };
    park.restore(vec![restored(40), restored(4)]).unwrap();
    assert_eq!((park.stored(), park.waiting_total()), (2, 2));
    assert!(park.has_waiting("c"));
    assert_eq!(origins(&park.take("c", 9).unwrap()), [(3, 4), (3, 40)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_offset_parked_behind_the_cursor_is_still_handed_over() {
    let (mut park, dir) = open();
    for offset in [10, 11, 12] {
        park.park(&key("a"), &event("a", offset as u32), 0, offset)
            .unwrap();
    }
    assert_eq!(origins(&park.take("a", 2).unwrap()), [(0, 10), (0, 11)]);
    // After a rebalance Kafka delivers an older offset again (it was in a worker's queue,
    // never finished): it lands behind the cursor and goes first, nothing is handed twice.
    park.park(&key("a"), &event("a", 4), 0, 4).unwrap();
    assert_eq!(park.waiting_total(), 2);
    assert!(park.has_waiting("a"));
    assert_eq!(origins(&park.take("a", 1).unwrap()), [(0, 4)]);
    assert_eq!(origins(&park.take("a", 9).unwrap()), [(0, 12)]);
    assert!(park.take("a", 9).unwrap().is_empty());
    assert_eq!(park.stored(), 4);
    let _ = std::fs::remove_dir_all(dir);
}
