//! The dead-letter store (sled): events ELS could not deliver, kept for inspection and replay.
//!
//! Records are versioned envelopes (`{"v":"1", ...}`) so later versions can read old files.
//! Every write is flushed (and, with the state changelog on, acknowledged by Kafka) before the
//! caller may finish (and so commit) the event's offset. sled is single-process: other tools
//! reach the store through the consumer's admin API.
//!
//! Ids name the input offset ([`dead_letter_id`]), so the same event dead-lettered again after
//! a crash gets the same id, and an id means the same record on every instance. With the
//! changelog on, the tree is a view of every instance's dead letters, kept by
//! [`crate::changelog::follower`].

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::changelog::{Changelog, Key};
use crate::error::ConsumerError;
use crate::metrics::ChangelogKind;

/// Bits of a dead-letter id that hold the offset; the partition is above them.
pub const OFFSET_BITS: u32 = 40;

/// The id of the dead letter of input offset (`partition`, `offset`):
/// `(partition << 40) | offset`, so ids sort by partition, then offset, and are the same on
/// every instance. `None` outside the scheme (negative, partition >= 2^24, offset >= 2^40).
pub fn dead_letter_id(partition: i32, offset: i64) -> Option<u64> {
    let p = u64::try_from(partition)
        .ok()
        .filter(|p| *p < 1 << (64 - OFFSET_BITS))?;
    let o = u64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some((p << OFFSET_BITS) | o)
}

/// The (partition, offset) a dead-letter id names (the inverse of [`dead_letter_id`]).
pub fn dead_letter_origin(id: u64) -> (i32, i64) {
    (
        (id >> OFFSET_BITS) as i32,
        (id & ((1 << OFFSET_BITS) - 1)) as i64,
    )
}

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
    /// `(partition << 40) | offset` ([`dead_letter_id`]); records of older versions have a
    /// store-assigned number.
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

impl DeadLetterV1 {
    /// The dead letter of a Kafka record at (`partition`, `offset`) that is not a valid event:
    /// the payload as JSON if it is JSON, else as text.
    pub fn invalid_event(partition: i32, offset: i64, payload: &[u8], error: String) -> Self {
        let raw = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        let now = Utc::now();
        Self {
            id: 0,
            org_id: raw
                .get("org_id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            event: raw,
            reason: Reason::InvalidEvent,
            attempts: 0,
            last_status: None,
            last_error: error,
            first_failed_at: now,
            last_failed_at: now,
            partition,
            offset,
        }
    }
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
    /// The state changelog every write also goes to (`None`: local-only state).
    changelog: Option<Arc<Changelog>>,
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
        Ok(Self {
            db,
            dead,
            count,
            changelog: None,
        })
    }

    /// Write every change to `changelog` too (before anything is stored).
    pub fn attach_changelog(&mut self, changelog: Arc<Changelog>) {
        self.changelog = Some(changelog);
    }

    pub fn changelog(&self) -> Option<&Arc<Changelog>> {
        self.changelog.as_ref()
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.dead
    }

    /// Write records, flush them to disk and (with the changelog on) wait until Kafka
    /// acknowledged them. Only after this returns Ok may the offsets be stored.
    pub async fn put(&self, records: Vec<DeadLetterV1>) -> Result<Vec<u64>, ConsumerError> {
        let mut ids = Vec::with_capacity(records.len());
        let mut acks = Vec::new();
        for mut record in records {
            // Outside the id scheme only if the origin is unknown (not written any more).
            let id = match dead_letter_id(record.partition, record.offset) {
                Some(id) => id,
                None => self.db.generate_id()?,
            };
            record.id = id;
            let bytes = serde_json::to_vec(&DeadLetter::V1(record))?;
            if let Some(changelog) = &self.changelog {
                let (partition, offset) = dead_letter_origin(id);
                match changelog.send(Key::Dead { partition, offset }, Some(&bytes)) {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        changelog
                            .metrics()
                            .changelog_write(ChangelogKind::Dead, false, 1);
                        return Err(e);
                    }
                }
            }
            if self.dead.insert(id.to_be_bytes(), bytes)?.is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            ids.push(id);
        }
        self.dead.flush_async().await?;
        if let Some(changelog) = &self.changelog {
            let acked = futures::future::join_all(
                acks.into_iter()
                    .map(|ack| changelog.acked(ChangelogKind::Dead, ack)),
            )
            .await;
            acked.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        Ok(ids)
    }

    /// Apply a `dead/*` record of the changelog to the local view (`None`: a tombstone).
    pub fn apply_changelog(&self, id: u64, value: Option<&[u8]>) -> Result<(), ConsumerError> {
        match value {
            Some(bytes) => {
                // Validated here so `list` never meets an unreadable record.
                serde_json::from_slice::<DeadLetter>(bytes)?;
                if self.dead.insert(id.to_be_bytes(), bytes)?.is_none() {
                    self.count.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                if self.dead.remove(id.to_be_bytes())?.is_some() {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Empty the local view before it is rebuilt from the changelog, keeping only records of
    /// older versions that have no input offset (they exist nowhere else). Returns how many
    /// records were dropped.
    pub fn clear_view(&self) -> Result<usize, ConsumerError> {
        let mut dropped = 0;
        for item in self.dead.iter() {
            let (key, bytes) = item?;
            let keep = serde_json::from_slice::<DeadLetter>(&bytes)
                .map(|d| dead_letter_id(d.record().partition, d.record().offset).is_none())
                .unwrap_or(false);
            if !keep && self.dead.remove(key)?.is_some() {
                self.count.fetch_sub(1, Ordering::Relaxed);
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Wait up to `timeout` until the view holds every instance's dead letters (true at once
    /// without a changelog).
    pub async fn wait_synced(&self, timeout: std::time::Duration) -> bool {
        match &self.changelog {
            Some(changelog) => changelog.wait_synced(timeout).await,
            None => true,
        }
    }

    /// Records matching `filter`, in id order (by partition, then offset).
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

    /// Remove one record (after a replay was acknowledged, or a purge) and flush. With the
    /// changelog on, its tombstone is acknowledged first (it empties every instance's view).
    pub async fn remove(&self, id: u64) -> Result<bool, ConsumerError> {
        if let Some(changelog) = &self.changelog {
            let (partition, offset) = dead_letter_origin(id);
            let tombstone = changelog.send(Key::Dead { partition, offset }, None);
            match tombstone {
                Ok(ack) => changelog.acked(ChangelogKind::Tombstone, ack).await?,
                Err(e) => {
                    changelog
                        .metrics()
                        .changelog_write(ChangelogKind::Tombstone, false, 1);
                    return Err(e);
                }
            }
        }
        let existed = self.dead.remove(id.to_be_bytes())?.is_some();
        if existed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        self.dead.flush_async().await?;
        Ok(existed)
    }

    /// [`Store::remove`] for many records (a purge): every tombstone is sent first, then the
    /// acknowledged ones are removed. Returns how many were removed and the last error.
    pub async fn remove_many(&self, ids: &[u64]) -> (usize, Option<ConsumerError>) {
        let mut last_error = None;
        let acked: Vec<u64> = match &self.changelog {
            None => ids.to_vec(),
            Some(changelog) => {
                let sends = ids.iter().map(|&id| {
                    let (partition, offset) = dead_letter_origin(id);
                    let sent = changelog.send(Key::Dead { partition, offset }, None);
                    async move {
                        match sent {
                            Ok(ack) => changelog.acked(ChangelogKind::Tombstone, ack).await,
                            Err(e) => {
                                let m = changelog.metrics();
                                m.changelog_write(ChangelogKind::Tombstone, false, 1);
                                Err(e)
                            }
                        }
                        .map(|()| id)
                    }
                });
                let mut acked = Vec::new();
                for outcome in futures::future::join_all(sends).await {
                    match outcome {
                        Ok(id) => acked.push(id),
                        Err(e) => last_error = Some(e),
                    }
                }
                acked
            }
        };
        let mut removed = 0;
        for id in acked {
            match self.dead.remove(id.to_be_bytes()) {
                Ok(Some(_)) => {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                }
                Ok(None) => {}
                Err(e) => last_error = Some(e.into()),
            }
        }
        if let Err(e) = self.dead.flush_async().await {
            last_error = Some(e.into());
        }
        (removed, last_error)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
