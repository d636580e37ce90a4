//! The dead-letter view of the state store: events ELS could not deliver, kept for
//! inspection and replay (records: [`super::record`]).
//!
//! Every write is flushed (and, with the state changelog on, acknowledged by Kafka) before the
//! caller may finish (and so commit) the event's offset. sled is single-process: other tools
//! reach the dead letters through the consumer's admin API. With the changelog on, the tree is
//! a view of every instance's dead letters, kept by [`super::changelog::follower`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::changelog::{Changelog, Key};
use super::record::{dead_letter_id, dead_letter_origin, DeadLetter, DeadLetterV1, Filter};
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
        })
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
            if self.tree.insert(id.to_be_bytes(), bytes)?.is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
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

    /// Apply a `dead/*` record of the changelog to the local view (`None`: a tombstone).
    pub fn apply_changelog(&self, id: u64, value: Option<&[u8]>) -> Result<(), ConsumerError> {
        match value {
            Some(bytes) => {
                // Validated here so `list` never meets an unreadable record.
                serde_json::from_slice::<DeadLetter>(bytes)?;
                if self.tree.insert(id.to_be_bytes(), bytes)?.is_none() {
                    self.count.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                if self.tree.remove(id.to_be_bytes())?.is_some() {
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
        for item in self.tree.iter() {
            let (key, bytes) = item?;
            let keep = serde_json::from_slice::<DeadLetter>(&bytes)
                .map(|d| dead_letter_id(d.record().partition, d.record().offset).is_none())
                .unwrap_or(false);
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

    /// Records matching `filter`, in id order (by partition, then offset).
    pub fn list(&self, filter: &Filter) -> Result<Vec<DeadLetterV1>, ConsumerError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for item in self.tree.iter() {
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
        match self.tree.get(id.to_be_bytes())? {
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
        let existed = self.tree.remove(id.to_be_bytes())?.is_some();
        if existed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        self.tree.flush_async().await?;
        Ok(existed)
    }

    /// [`DeadLetters::remove`] for many records (a purge): every tombstone is sent first, then the
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
            match self.tree.remove(id.to_be_bytes()) {
                Ok(Some(_)) => {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                }
                Ok(None) => {}
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
