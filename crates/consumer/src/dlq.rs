//! The dead-letter store (sled): events ELS could not deliver, kept for inspection and replay.
//!
//! Records are versioned envelopes (`{"v":"1", ...}`) so later versions can read old files.
//! Every write is flushed before the caller may finish (and so commit) the event's offset.
//! sled is single-process: other tools reach the store through the consumer's admin API.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConsumerError;

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The SIEM refused it for good (4xx other than 408/429, or a 501).
    Rejected,
    /// Transient failures until the retry time ran out.
    RetriesExhausted,
    /// Over the org's limit with policy `dead_letter`.
    RateLimited,
    /// The Kafka record is not a valid event.
    InvalidEvent,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Rejected,
        Reason::RetriesExhausted,
        Reason::RateLimited,
        Reason::InvalidEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::RateLimited => "rate_limited",
            Reason::InvalidEvent => "invalid_event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Version 1 of a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterV1 {
    /// Store-assigned id (monotonic).
    #[serde(default)]
    pub id: u64,
    pub org_id: String,
    /// The event as consumed (email already hashed), or the raw payload for invalid events.
    pub event: Value,
    pub reason: Reason,
    pub attempts: u32,
    /// Last HTTP status from the SIEM, if any answered.
    pub last_status: Option<u16>,
    /// Last response body excerpt or network error (capped).
    pub last_error: String,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// Where it was consumed from.
    pub partition: i32,
    pub offset: i64,
}

/// The persisted, versioned envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum DeadLetter {
    #[serde(rename = "1")]
    V1(DeadLetterV1),
}

impl DeadLetter {
    pub fn record(&self) -> &DeadLetterV1 {
        match self {
            DeadLetter::V1(r) => r,
        }
    }

    pub fn into_record(self) -> DeadLetterV1 {
        match self {
            DeadLetter::V1(r) => r,
        }
    }
}

/// Selects dead letters for list, replay and purge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub org: Option<String>,
    pub reason: Option<Reason>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

impl Filter {
    pub fn matches(&self, r: &DeadLetterV1) -> bool {
        self.org.as_ref().is_none_or(|o| *o == r.org_id)
            && self.reason.is_none_or(|x| x == r.reason)
            && self.since.is_none_or(|t| r.last_failed_at >= t)
            && self.until.is_none_or(|t| r.last_failed_at <= t)
    }
}

/// Cap on stored error text.
pub const MAX_ERROR_BYTES: usize = 2048;

/// Cut `text` to at most `max` bytes on a char boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The sled-backed store (dead letters and parked events share one database).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    dead: sled::Tree,
    /// Records in `dead`, kept here: sled's `len()` walks the whole tree and, once sled has hit
    /// an I/O error, never finishes.
    count: Arc<AtomicUsize>,
}

/// Keys in `tree`, stopping at the first error.
pub(crate) fn count_keys(tree: &sled::Tree) -> usize {
    tree.iter().keys().take_while(Result::is_ok).count()
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, ConsumerError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        let dead = db.open_tree("dead_letters")?;
        let count = Arc::new(AtomicUsize::new(count_keys(&dead)));
        Ok(Self { db, dead, count })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Write records and flush them to disk. Only after this returns Ok may the offsets be
    /// stored.
    pub async fn put(&self, records: Vec<DeadLetterV1>) -> Result<Vec<u64>, ConsumerError> {
        let mut ids = Vec::with_capacity(records.len());
        for mut record in records {
            let id = self.db.generate_id()?;
            record.id = id;
            let bytes = serde_json::to_vec(&DeadLetter::V1(record))?;
            if self.dead.insert(id.to_be_bytes(), bytes)?.is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            ids.push(id);
        }
        self.dead.flush_async().await?;
        Ok(ids)
    }

    /// Records matching `filter`, oldest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<DeadLetterV1>, ConsumerError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for item in self.dead.iter() {
            let (_, bytes) = item?;
            let record = serde_json::from_slice::<DeadLetter>(&bytes)?.into_record();
            if filter.matches(&record) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn get(&self, id: u64) -> Result<Option<DeadLetterV1>, ConsumerError> {
        match self.dead.get(id.to_be_bytes())? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice::<DeadLetter>(&bytes)?.into_record(),
            )),
            None => Ok(None),
        }
    }

    /// Remove one record (after a replay was acknowledged, or a purge) and flush.
    pub async fn remove(&self, id: u64) -> Result<bool, ConsumerError> {
        let existed = self.dead.remove(id.to_be_bytes())?.is_some();
        if existed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        self.dead.flush_async().await?;
        Ok(existed)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let store = Store::open(&dir).unwrap();
            let ids = store
                .put(vec![
                    record("a", Reason::Rejected),
                    record("b", Reason::RateLimited),
                ])
                .await
                .unwrap();
            assert_eq!(ids.len(), 2);
        }
        let store = Store::open(&dir).unwrap();
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
    fn envelope_is_versioned() {
        let text = serde_json::to_string(&DeadLetter::V1(record("a", Reason::Rejected))).unwrap();
        assert!(text.starts_with(r#"{"v":"1""#), "{text}");
        assert_eq!(truncate("héllo", 2), "h…");
    }
}
