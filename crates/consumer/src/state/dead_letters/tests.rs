//! Unit tests of the dead-letter view (no Kafka: the changelog is off).

use super::*;
use crate::state::record::{truncate, Reason};
use crate::state::StateStore;
use chrono::Utc;

/// The dead-letter view of a state store in `dir`.
fn open(dir: &std::path::Path) -> DeadLetters {
    StateStore::open(dir).unwrap().dead_letters().clone()
}

fn record(org: &str, reason: Reason) -> DeadLetterV1 {
    DeadLetterV1 {
        id: 0,
        org_id: org.into(),
        event: serde_json::json!({"event_id": "e1"}),
        reason,
        attempts: 3,
        last_status: Some(503),
        last_error: "busy".into(),
        first_failed_at: Utc::now(),
        last_failed_at: Utc::now(),
        partition: 0,
        offset: 7,
    }
}

#[tokio::test]
async fn put_list_filter_remove_survive_reopen() {
    let dir = std::env::temp_dir().join(format!("els-dlq-{}", uuid::Uuid::new_v4()));
    {
        let store = open(&dir);
        // Ids name the input offset: two records need two offsets.
        let mut b = record("b", Reason::RateLimited);
        b.offset = 8;
        let ids = store
            .put(vec![record("a", Reason::Rejected), b])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
    }
    let store = open(&dir);
    assert_eq!(store.count(), 2);
    let only_b = Filter {
        org: Some("b".into()),
        ..Filter::default()
    };
    let b = store.list(&only_b).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].reason, Reason::RateLimited);
    let rejected = Filter {
        reason: Some(Reason::Rejected),
        ..Filter::default()
    };
    assert_eq!(store.list(&rejected).unwrap()[0].org_id, "a");
    assert!(store.remove(b[0].id).await.unwrap());
    assert_eq!(store.count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ids_name_the_input_offset() {
    for (p, o) in [
        (0, 0),
        (0, 7),
        (3, 12_345),
        (255, (1 << 40) - 1),
        ((1 << 24) - 1, 1),
    ] {
        let id = dead_letter_id(p, o).unwrap();
        assert_eq!(dead_letter_origin(id), (p, o));
    }
    assert_eq!(dead_letter_id(1, 5), Some((1 << 40) | 5));
    // Ids sort by partition, then offset.
    assert!(dead_letter_id(0, (1 << 40) - 1) < dead_letter_id(1, 0));
    assert!(dead_letter_id(2, 9) < dead_letter_id(2, 10));
    for (p, o) in [(-1, 0), (0, -1), (1 << 24, 0), (0, 1 << 40)] {
        assert_eq!(dead_letter_id(p, o), None, "({p}, {o})");
    }
}

#[tokio::test]
async fn same_offset_same_id_and_the_view_follows_the_changelog() {
    let dir = std::env::temp_dir().join(format!("els-dlq-{}", uuid::Uuid::new_v4()));
    let store = open(&dir);
    let mut r = record("a", Reason::Rejected);
    r.partition = 2;
    let first = store.put(vec![r.clone()]).await.unwrap();
    // Redelivered after a crash and dead-lettered again: same id, one record.
    assert_eq!(store.put(vec![r.clone()]).await.unwrap(), first);
    assert_eq!(first, vec![dead_letter_id(2, 7).unwrap()]);
    assert_eq!(store.count(), 1);
    // Another instance's record arrives through the changelog, then its tombstone.
    let mut other = record("b", Reason::Rejected);
    other.partition = 1;
    other.id = dead_letter_id(1, 7).unwrap();
    let bytes = serde_json::to_vec(&DeadLetter::V1(other.clone())).unwrap();
    store.apply_changelog(other.id, Some(&bytes)).unwrap();
    store.apply_changelog(other.id, Some(&bytes)).unwrap();
    assert_eq!(store.count(), 2);
    assert_eq!(store.get(other.id).unwrap(), Some(other.clone()));
    assert!(store.apply_changelog(9, Some(b"garbage")).is_err());
    store.apply_changelog(other.id, None).unwrap();
    assert_eq!(store.count(), 1);
    // Rebuilding the view keeps only old records without an input offset.
    let mut legacy = record("c", Reason::Rejected);
    (legacy.partition, legacy.offset) = (-1, -1);
    store.put(vec![legacy]).await.unwrap();
    assert_eq!(store.count(), 2);
    assert_eq!(store.clear_view().unwrap(), 1);
    assert_eq!(store.count(), 1);
    let kept = store.list(&Filter::default()).unwrap();
    assert_eq!(kept[0].org_id, "c");
    assert_eq!(store.remove_many(&[kept[0].id, 12_345]).await.0, 1);
    assert_eq!(store.count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn envelope_is_versioned() {
    let text = serde_json::to_string(&DeadLetter::V1(record("a", Reason::Rejected))).unwrap();
    assert!(text.starts_with(r#"{"v":"1""#), "{text}");
    assert_eq!(truncate("héllo", 2), "h…");
}
