//! The dead-letter view of the state store: events ELS could not deliver, kept for
//! inspection and replay (records: [`super::record`]).
//!
//! Every write is flushed (and, with the state changelog on, acknowledged by Kafka) before the
//! caller may finish (and so commit) the event's offset. sled is single-process: other tools
//! reach the dead letters through the consumer's admin API. With the changelog on, the tree is
//! a view of every instance's dead letters, kept by [`super::changelog::follower`].
//!
//! One record that does not decode (corrupt, or of a version this build does not know, e.g.
//! written by a newer instance) must not take the store down with it: lists leave it out and
//! report it (an error log the first time its id is met, [`DeadLetters::unreadable`] for
//! counts), [`DeadLetters::get`] answers an error naming it, and removal works by id without
//! reading it ([`DeadLetters::remove`], [`DeadLetters::remove_many`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::changelog::{Changelog, Key};
use super::record::{
    dead_letter_origin, dead_letter_slot, record_id, DeadLetter, DeadLetterV1, Filter,
};
use super::store::count_keys;
use crate::error::ConsumerError;
use crate::metrics::ChangelogKind;

/// The dead-letter tree of the [`super::StateStore`], with its record count.
#[derive(Clone)]
pub struct DeadLetters {
    /// The database, for ids of records outside the id scheme.
    db: sled::Db,
    tree: sled::Tree,
    /// Records in `tree`, kept here: sled's `len()` walks the whole tree and, once sled has hit
    /// an I/O error, never finishes.
    count: Arc<AtomicUsize>,
    /// The state changelog every write also goes to (`None`: local-only state).
    changelog: Option<Arc<Changelog>>,
    /// Ids of records met that do not decode (reported once each, forgotten on removal or
    /// rewrite).
    unreadable: Arc<Mutex<BTreeSet<u64>>>,
}

/// A record of the tree that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub id: u64,
    /// Why it does not decode (serde's message; events are not secret).
    pub error: String,
}

/// What a scan of the tree found: the matching records, and the records it could not read
/// (which no filter can match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub records: Vec<DeadLetterV1>,
    pub unreadable: Vec<Unreadable>,
}

/// The id a tree key stands for (keys are big-endian ids).
fn key_id(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

impl DeadLetters {
    pub(super) fn open(db: &sled::Db) -> Result<Self, ConsumerError> {
        let tree = db.open_tree("dead_letters")?;
        let count = Arc::new(AtomicUsize::new(count_keys(&tree)));
        Ok(Self {
            db: db.clone(),
            tree,
            count,
            changelog: None,
            unreadable: Arc::default(),
        })
    }

    fn unreadable_ids(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.unreadable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note that record `id` does not decode; logged the first time only (lists run often).
    fn report_unreadable(&self, id: u64, error: &serde_json::Error) {
        if self.unreadable_ids().insert(id) {
            let (partition, offset) = dead_letter_origin(id);
            tracing::error!(
                id,
                partition,
                offset,
                error = %error,
                "a dead-letter record cannot be read; lists leave it out, showing it fails, \
                 purging it by id removes it"
            );
        }
    }

    /// Note that record `id` is gone or was rewritten.
    fn forget_unreadable(&self, id: u64) {
        self.unreadable_ids().remove(&id);
    }

    /// Decode the record stored under `id`, noting it when it does not decode.
    fn decode(&self, id: u64, bytes: &[u8]) -> Result<DeadLetterV1, serde_json::Error> {
        DeadLetter::from_json(bytes)
            .map(DeadLetter::into_record)
            .inspect_err(|e| self.report_unreadable(id, e))
    }

    pub(super) fn attach_changelog(&mut self, changelog: Arc<Changelog>) {
        self.changelog = Some(changelog);
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }
    /// Write records, flush them to disk and (with the changelog on) wait until Kafka
    /// acknowledged them. Only after this returns Ok may the offsets be stored.
    pub async fn put(&self, records: Vec<DeadLetterV1>) -> Result<Vec<u64>, ConsumerError> {
        let mut ids = Vec::with_capacity(records.len());
        let mut acks = Vec::new();
        for mut record in records {
            // Outside the id scheme only if the origin is unknown (not written any more).
            let id = match record_id(&record) {
                Some(id) => id,
                None => self.db.generate_id()?,
            };
            record.id = id;
            let bytes = DeadLetter::V1(record).to_json()?;
            if let Some(changelog) = &self.changelog {
                let (partition, offset) = dead_letter_origin(id);
                match changelog.send(
                    Key::Dead {
                        partition,
                        offset,
                        slot: dead_letter_slot(id),
                    },
                    Some(&bytes),
                ) {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        changelog
                            .metrics()
                            .changelog_write(ChangelogKind::Dead, false, 1);
                        return Err(e);
                    }
                }
            }
            if self.tree.insert(id.to_be_bytes(), bytes)?.is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            self.forget_unreadable(id);
            ids.push(id);
        }
        self.tree.flush_async().await?;
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

    /// Apply a `dead/*` record of the changelog to the local view (`None`: a tombstone). A
    /// value that does not decode is kept all the same (reported, left out of lists, removable
    /// by id, which also tombstones it): dropping it would leave it in the changelog with no
    /// way to see or remove it. Returns whether the value (if any) decodes.
    pub fn apply_changelog(&self, id: u64, value: Option<&[u8]>) -> Result<bool, ConsumerError> {
        match value {
            Some(bytes) => {
                let readable = match DeadLetter::from_json(bytes) {
                    Ok(_) => {
                        self.forget_unreadable(id);
                        true
                    }
                    Err(e) => {
                        self.report_unreadable(id, &e);
                        false
                    }
                };
                if self.tree.insert(id.to_be_bytes(), bytes)?.is_none() {
                    self.count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(readable)
            }
            None => {
                if self.tree.remove(id.to_be_bytes())?.is_some() {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
                self.forget_unreadable(id);
                Ok(true)
            }
        }
    }

    /// Empty the local view before it is rebuilt from the changelog, keeping only what the
    /// changelog may not hold: records of older versions that have no input offset (they exist
    /// nowhere else), and records that do not decode (nothing tells where they came from; if
    /// the changelog has them, it rewrites them). Returns how many records were dropped.
    pub fn clear_view(&self) -> Result<usize, ConsumerError> {
        let mut dropped = 0;
        for item in self.tree.iter() {
            let (key, bytes) = item?;
            let keep = match (key_id(&key), DeadLetter::from_json(&bytes)) {
                (_, Ok(d)) => record_id(d.record()).is_none(),
                (Some(id), Err(e)) => {
                    self.report_unreadable(id, &e);
                    true
                }
                (None, Err(_)) => false,
            };
            if !keep && self.tree.remove(key)?.is_some() {
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

    /// Records matching `filter`, in id order (by partition, then offset), and the records met
    /// that do not decode (reported; see the module docs). `filter.limit` caps the records.
    pub fn scan(&self, filter: &Filter) -> Result<Listing, ConsumerError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut listing = Listing::default();
        if limit == 0 {
            return Ok(listing);
        }
        for item in self.tree.iter() {
            let (key, bytes) = item?;
            let id = key_id(&key).unwrap_or_default();
            match self.decode(id, &bytes) {
                Ok(record) if filter.matches(&record) => {
                    listing.records.push(record);
                    if listing.records.len() >= limit {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => listing.unreadable.push(Unreadable {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        Ok(listing)
    }

    /// Records matching `filter`, in id order (by partition, then offset); records that do not
    /// decode are left out (and reported, see [`DeadLetters::scan`]).
    pub fn list(&self, filter: &Filter) -> Result<Vec<DeadLetterV1>, ConsumerError> {
        Ok(self.scan(filter)?.records)
    }

    /// The record `id`; an error naming it when it does not decode.
    pub fn get(&self, id: u64) -> Result<Option<DeadLetterV1>, ConsumerError> {
        let Some(bytes) = self.tree.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        self.decode(id, &bytes).map(Some).map_err(|e| {
            ConsumerError::Encoding(serde::de::Error::custom(format!(
                "dead letter {id} cannot be read ({e}); lists leave it out, purging it by id \
                 removes it"
            )))
        })
    }

    /// Ids of the records met so far that do not decode (lists and reads find them; a full
    /// [`DeadLetters::scan`] finds all).
    pub fn unreadable(&self) -> Vec<u64> {
        self.unreadable_ids().iter().copied().collect()
    }

    /// Remove one record (after a replay was acknowledged, or a purge) and flush. With the
    /// changelog on, its tombstone is acknowledged first (it empties every instance's view).
    pub async fn remove(&self, id: u64) -> Result<bool, ConsumerError> {
        // Asked before the tombstone: once it is acknowledged, this instance's changelog
        // follower may remove the record first, and "not there" would then be wrong.
        if !self.tree.contains_key(id.to_be_bytes())? {
            return Ok(false);
        }
        if let Some(changelog) = &self.changelog {
            let (partition, offset) = dead_letter_origin(id);
            let tombstone = changelog.send(
                Key::Dead {
                    partition,
                    offset,
                    slot: dead_letter_slot(id),
                },
                None,
            );
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
        if self.tree.remove(id.to_be_bytes())?.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        self.forget_unreadable(id);
        self.tree.flush_async().await?;
        Ok(true)
    }

    /// [`DeadLetters::remove`] for many records (a purge): every tombstone is sent first, then the
    /// acknowledged ones are removed. Returns how many were removed and the last error.
    pub async fn remove_many(&self, ids: &[u64]) -> (usize, Option<ConsumerError>) {
        let mut last_error = None;
        // Those present before the tombstones (the follower may remove them first, see
        // [`DeadLetters::remove`]).
        let ids: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| matches!(self.tree.contains_key(id.to_be_bytes()), Ok(true)))
            .collect();
        let ids = &ids[..];
        let acked: Vec<u64> = match &self.changelog {
            None => ids.to_vec(),
            Some(changelog) => {
                let sends = ids.iter().map(|&id| {
                    let (partition, offset) = dead_letter_origin(id);
                    let sent = changelog.send(
                        Key::Dead {
                            partition,
                            offset,
                            slot: dead_letter_slot(id),
                        },
                        None,
                    );
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
            match self.tree.remove(id.to_be_bytes()) {
                Ok(gone) => {
                    if gone.is_some() {
                        self.count.fetch_sub(1, Ordering::Relaxed);
                    }
                    self.forget_unreadable(id);
                    removed += 1;
                }
                Err(e) => last_error = Some(e.into()),
            }
        }
        if let Err(e) = self.tree.flush_async().await {
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
