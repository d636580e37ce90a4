//! Unit tests of the dead-letter view (no Kafka: the changelog is off).

use super::*;
use crate::state::record::{dead_letter_id, dead_letter_id_in, dead_letter_slot, truncate, Reason};
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
        stream: "default".into(),
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
        ((1 << 16) - 1, 1),
    ] {
        let id = dead_letter_id(p, o).unwrap();
        assert_eq!(dead_letter_origin(id), (p, o));
        // Each stream's copy has its own id, naming the same offset.
        let other = dead_letter_id_in(200, p, o).unwrap();
        assert_ne!(other, id);
        assert_eq!(dead_letter_origin(other), (p, o));
        assert_eq!((dead_letter_slot(id), dead_letter_slot(other)), (0, 200));
    }
    assert_eq!(dead_letter_id(1, 5), Some((1 << 40) | 5));
    // Ids sort by partition, then offset.
    assert!(dead_letter_id(0, (1 << 40) - 1) < dead_letter_id(1, 0));
    assert!(dead_letter_id(2, 9) < dead_letter_id(2, 10));
    for (p, o) in [(-1, 0), (0, -1), (1 << 16, 0), (0, 1 << 40)] {
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
    let bytes = DeadLetter::V1(other.clone()).to_json().unwrap();
    store.apply_changelog(other.id, Some(&bytes)).unwrap();
    store.apply_changelog(other.id, Some(&bytes)).unwrap();
    assert_eq!(store.count(), 2);
    assert_eq!(store.get(other.id).unwrap(), Some(other.clone()));
    // A value that does not decode is kept (reported, removable), not an error of the view.
    assert!(!store.apply_changelog(9, Some(b"garbage")).unwrap());
    assert_eq!((store.count(), store.unreadable()), (3, vec![9]));
    assert!(store.apply_changelog(9, None).unwrap());
    assert_eq!((store.count(), store.unreadable()), (2, vec![]));
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
    let envelope = DeadLetter::V1(record("a", Reason::Rejected));
    let bytes = envelope.to_json().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(r#"{"v":"1""#), "{text}");
    assert_eq!(DeadLetter::from_json(&bytes).unwrap(), envelope);
    // The tag may come anywhere; unknown versions and garbage are errors, not panics.
    let untagged = text.replacen(r#""v":"1","#, "", 1);
    let moved = format!(r#"{},"v":"1"}}"#, &untagged[..untagged.len() - 1]);
    assert!(DeadLetter::from_json(moved.as_bytes()).is_ok(), "{moved}");
    let future = text.replacen(r#""v":"1""#, r#""v":"9""#, 1);
    let err = DeadLetter::from_json(future.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown dead-letter record version"),
        "{err}"
    );
    assert!(DeadLetter::from_json(b"garbage").is_err());
    assert_eq!(truncate("héllo", 2), "h…");
}

/// The text of an event whose `nest` is `depth` arrays deep (the event itself one level more).
fn nested_event(depth: usize) -> String {
    format!(
        r#"{{"event_id":"e-deep","nest":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[tokio::test]
async fn an_event_at_the_depth_limit_is_listed_shown_replayed_and_purged() {
    // The deepest event serde_json parses (127 levels): ingest accepts it, the SIEM refuses it.
    let text = nested_event(126);
    assert!(serde_json::from_str::<serde_json::Value>(&nested_event(127)).is_err());
    let dir = std::env::temp_dir().join(format!("els-dlq-{}", uuid::Uuid::new_v4()));
    let store = open(&dir);
    let mut deep = record("deep", Reason::Rejected);
    deep.event = serde_json::from_str(&text).unwrap();
    let mut plain = record("plain", Reason::Rejected);
    plain.offset = 8;
    let ids = store.put(vec![deep.clone(), plain]).await.unwrap();
    // The stored record is one level deeper than the event: past a plain reader's limit.
    let stored = store.tree().get(ids[0].to_be_bytes()).unwrap().unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&stored).is_err());

    let listed = store.list(&Filter::default()).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].event, deep.event);
    let shown = store.get(ids[0]).unwrap().unwrap();
    assert_eq!((shown.id, &shown.org_id), (ids[0], &deep.org_id));
    // Replay publishes the event's JSON: the same text as consumed.
    assert_eq!(serde_json::to_string(&shown.event).unwrap(), text);
    assert!(store.unreadable().is_empty());
    let only_deep = Filter {
        org: Some("deep".into()),
        ..Filter::default()
    };
    let purge: Vec<u64> = store
        .list(&only_deep)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(store.remove_many(&purge).await.0, 1);
    assert_eq!(store.count(), 1);
    assert_eq!(store.get(ids[0]).unwrap(), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn one_unreadable_record_does_not_take_the_store_down() {
    let dir = std::env::temp_dir().join(format!("els-dlq-{}", uuid::Uuid::new_v4()));
    let store = open(&dir);
    let mut good = record("a", Reason::Rejected);
    good.offset = 1;
    let mut later = record("a", Reason::Rejected);
    later.offset = 9;
    store.put(vec![good, later]).await.unwrap();
    // Corrupt bytes and a record of a version this build does not know, between them.
    let (corrupt, future) = (dead_letter_id(0, 3).unwrap(), dead_letter_id(0, 5).unwrap());
    store
        .apply_changelog(corrupt, Some(b"{\"v\":\"1\",\"org_id\":"))
        .unwrap();
    store
        .apply_changelog(future, Some(br#"{"v":"2","org_id":"a"}"#))
        .unwrap();
    assert_eq!(store.count(), 4);

    let listing = store.scan(&Filter::default()).unwrap();
    let offsets: Vec<i64> = listing.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![1, 9], "the readable rest, in order");
    let bad: Vec<u64> = listing.unreadable.iter().map(|u| u.id).collect();
    assert_eq!(bad, vec![corrupt, future]);
    assert!(
        listing.unreadable[1].error.contains("version"),
        "{listing:?}"
    );
    assert_eq!(store.list(&Filter::default()).unwrap().len(), 2);
    assert_eq!(store.unreadable(), vec![corrupt, future]);
    // A filter cannot match what cannot be read.
    let only_a = Filter {
        org: Some("a".into()),
        ..Filter::default()
    };
    assert_eq!(store.list(&only_a).unwrap().len(), 2);

    let err = store.get(corrupt).unwrap_err().to_string();
    assert!(
        err.contains(&format!("dead letter {corrupt} cannot be read")),
        "{err}"
    );
    assert!(store.get(dead_letter_id(0, 9).unwrap()).unwrap().is_some());
    // Removal goes by id, without reading the record.
    assert!(store.remove(future).await.unwrap());
    assert_eq!(store.remove_many(&[corrupt]).await.0, 1);
    assert_eq!((store.count(), store.unreadable()), (2, vec![]));
    assert!(store
        .scan(&Filter::default())
        .unwrap()
        .unreadable
        .is_empty());

    // Rebuilding the view keeps a record it cannot place (the changelog may not have it).
    store.apply_changelog(corrupt, Some(b"garbage")).unwrap();
    assert_eq!(store.clear_view().unwrap(), 2);
    assert_eq!((store.count(), store.unreadable()), (1, vec![corrupt]));
    let _ = std::fs::remove_dir_all(dir);
}
