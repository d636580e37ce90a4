//! Parking: when an org's in-memory queue is full, its further events are written to sled and
//! fed back as the queue drains. Memory stays bounded whatever the org's SIEM does, and the
//! partition keeps flowing for every other org.
//!
//! A parked event's offset counts as finished once the park write is flushed and, with the
//! state changelog on, Kafka acknowledged its `park/{p}/{o}` record ([`Park::flush`]); the
//! parked record itself is removed (with a tombstone) only after the event was delivered or
//! dead-lettered, so a crash at any point re-delivers it (at least once) rather than losing
//! it. Once an org has parked events, its new events park behind them, keeping the org's
//! order.
//!
//! Keys are `stream \0 be_u32(partition) be_u64(offset)`, `stream` being the encoded
//! [`StreamKey`] (the bare org id for the stream `default`, as before streams existed): a
//! stream's records sort in offset order (an org is on one partition: the topic is keyed by
//! org). Each stream of an org parks its own copy of an event. With the changelog on, the local
//! tree only mirrors the assigned partitions: it is emptied at start, a partition's records
//! are restored from the changelog when it is assigned and dropped when it is revoked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use els_model::topic::TopicEvent;
use futures::FutureExt;
use rdkafka::producer::DeliveryFuture;

use super::worker::{Done, Job, Origin, ParkedAt};
use crate::error::ConsumerError;
use crate::metrics::ChangelogKind;
use crate::state::changelog::{self, restore::Restored, Changelog, Key};
use crate::state::store::count_keys;
use crate::state::StateStore;
use crate::streams::{Held, StreamKey};

pub struct Park {
    tree: sled::Tree,
    /// Per stream (encoded key): parked events not yet handed to the worker, and the last
    /// key handed over.
    waiting: HashMap<String, OrgPark>,
    /// Kafka offsets parked and not yet finished (see [`Park::flush`]).
    unflushed: Vec<Unflushed>,
    /// Tombstones of completed records, awaited only to count them.
    tombstones: Vec<DeliveryFuture>,
    /// Records in the tree (counted here: sled's `len()` walks the tree).
    stored: usize,
    changelog: Option<Arc<Changelog>>,
    /// Events and bytes stored per org, for stream health (held events, the hold quota).
    held: Arc<Held>,
}

/// A parked offset on its way to finished.
struct Unflushed {
    partition: i32,
    offset: i64,
    /// Covered by a completed sled flush.
    synced: bool,
    /// The changelog write's acknowledgement (`None`: no changelog).
    ack: Option<DeliveryFuture>,
}

#[derive(Default)]
struct OrgPark {
    /// Records not yet handed over: those after `cursor`, plus `behind`.
    waiting: usize,
    /// The last key handed over in key order.
    cursor: Option<Vec<u8>>,
    /// Keys parked behind the cursor (a lower offset consumed again after a rebalance, while
    /// later records were already handed over): handed over first.
    behind: BTreeSet<Vec<u8>>,
}

/// What a flush finished, and what failed.
#[derive(Default)]
pub struct Flushed {
    /// Offsets now safely finished.
    pub done: Vec<Done>,
    /// Offsets whose changelog write failed: they stay unfinished (redelivered after a restart).
    pub failed: usize,
    pub error: Option<ConsumerError>,
}

fn prefix(stream: &str) -> Vec<u8> {
    let mut p = stream.as_bytes().to_vec();
    p.push(0);
    p
}

/// The park tree key of the event at (`partition`, `offset`) of `stream` (an encoded
/// [`StreamKey`]).
pub fn park_key(stream: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut key = prefix(stream);
    key.extend_from_slice(&(partition as u32).to_be_bytes());
    key.extend_from_slice(&(offset as u64).to_be_bytes());
    key
}

/// (encoded stream key, (partition, offset)) of a park key; the origin is `None` for keys
/// written by older versions (`org \0 be_u64(sled id)`).
pub fn parse_key(key: &[u8]) -> Option<(&str, Option<(i32, i64)>)> {
    let end = key.iter().position(|b| *b == 0)?;
    let org = std::str::from_utf8(&key[..end]).ok()?;
    let rest = &key[end + 1..];
    if rest.len() != 12 {
        return Some((org, None));
    }
    let p = u32::from_be_bytes(rest[..4].try_into().ok()?);
    let o = u64::from_be_bytes(rest[4..].try_into().ok()?);
    Some((org, Some((p as i32, o as i64))))
}

impl Park {
    /// Open the park tree. With the changelog on it starts empty (the changelog is the truth:
    /// what was parked but never acknowledged there never had its offset finished and will be
    /// redelivered by Kafka); without, events parked by an earlier run are picked up.
    pub fn open(store: &StateStore) -> Result<Self, ConsumerError> {
        let tree = store.parked_tree()?;
        let changelog = store.changelog().cloned();
        if changelog.is_some() {
            let stale = count_keys(&tree);
            tree.clear()?;
            tree.flush()?;
            if stale > 0 {
                tracing::info!(
                    records = stale,
                    "cleared the local park tree; assigned partitions restore it"
                );
            }
        }
        let mut park = Self {
            tree,
            waiting: HashMap::new(),
            unflushed: Vec::new(),
            tombstones: Vec::new(),
            stored: 0,
            changelog,
            held: Arc::new(Held::default()),
        };
        park.recount_all()?;
        Ok(park)
    }

    /// Keep `held` counting this store's events and bytes per org.
    pub fn count_into(&mut self, held: Arc<Held>) -> Result<(), ConsumerError> {
        self.held = held;
        self.recount_all()
    }

    /// Rebuild every count from the tree (cursors reset).
    fn recount_all(&mut self) -> Result<(), ConsumerError> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        self.held.clear();
        for item in self.tree.iter() {
            let (key, value) = item?;
            let org = parse_key(&key).map(|(org, _)| org).unwrap_or_default();
            *counts.entry(org.to_string()).or_default() += 1;
            self.held.add(org, 1, value.len() as i64);
        }
        self.stored = counts.values().sum();
        self.waiting = counts
            .into_iter()
            .map(|(org, n)| {
                let park = OrgPark {
                    waiting: n,
                    ..OrgPark::default()
                };
                (org, park)
            })
            .collect();
        Ok(())
    }

    /// Recount the org's records not yet handed over (those after its cursor).
    fn recount(&mut self, org: &str) {
        let pfx = prefix(org);
        let entry = self.waiting.entry(org.to_string()).or_default();
        let after = match &entry.cursor {
            Some(cursor) => {
                let mut start = cursor.clone();
                start.push(0);
                self.tree.range(start..)
            }
            None => self.tree.range(pfx.clone()..),
        };
        let tree = &self.tree;
        entry
            .behind
            .retain(|k| tree.contains_key(k).unwrap_or(false));
        entry.waiting = entry.behind.len()
            + after
                .keys()
                .take_while(|k| k.as_ref().is_ok_and(|k| k.starts_with(&pfx)))
                .count();
        if entry.waiting == 0 && self.tree.scan_prefix(&pfx).next().is_none() {
            self.waiting.remove(org);
        }
    }

    /// Whether the org has parked events still to hand over (new events must queue behind).
    pub fn has_waiting(&self, org: &str) -> bool {
        self.waiting.get(org).is_some_and(|p| p.waiting > 0)
    }

    /// Events parked and not yet handed to a worker, all orgs.
    pub fn waiting_total(&self) -> usize {
        self.waiting.values().map(|p| p.waiting).sum()
    }

    /// Park the copy for `stream` of an event consumed from Kafka at (`partition`,
    /// `offset`); not yet finished, see [`Park::flush`]. With the changelog on, its record is
    /// produced now.
    pub fn park(
        &mut self,
        stream: &StreamKey,
        event: &TopicEvent,
        partition: i32,
        offset: i64,
    ) -> Result<(), ConsumerError> {
        let org = stream.as_str();
        let ack = match &self.changelog {
            None => None,
            Some(c) => {
                let value = changelog::encode_parked(stream, event.json());
                let slot = els_model::settings::stream_slot(stream.stream());
                match c.send(
                    Key::Park {
                        partition,
                        offset,
                        slot,
                    },
                    Some(&value),
                ) {
                    Ok(ack) => Some(ack),
                    Err(e) => {
                        c.metrics().changelog_write(ChangelogKind::Park, false, 1);
                        return Err(e);
                    }
                }
            }
        };
        let key = park_key(org, partition, offset);
        // Already there: the same offset consumed again (it was never finished).
        if self.tree.insert(&key, event.json().as_bytes())?.is_none() {
            self.stored += 1;
            self.held.add(org, 1, event.len() as i64);
            let entry = self.waiting.entry(org.to_string()).or_default();
            entry.waiting += 1;
            if entry.cursor.as_ref().is_some_and(|c| key < *c) {
                entry.behind.insert(key);
            }
        }
        self.unflushed.push(Unflushed {
            partition,
            offset,
            synced: false,
            ack,
        });
        Ok(())
    }

    /// Flush parked records; returns the Kafka offsets that are now safely finished: flushed
    /// to disk and (with the changelog on) acknowledged by Kafka. Acknowledgements still on
    /// their way are not waited for: their offsets come with a later flush.
    pub async fn flush(&mut self) -> Flushed {
        self.reap_tombstones();
        let mut out = Flushed::default();
        if self.unflushed.iter().any(|u| !u.synced) {
            if let Err(e) = self.tree.flush_async().await {
                out.error = Some(e.into());
                return out;
            }
            for u in &mut self.unflushed {
                u.synced = true;
            }
        }
        let mut pending = Vec::new();
        for mut u in std::mem::take(&mut self.unflushed) {
            let acked = match u.ack.as_mut() {
                None => Some(Ok(())),
                Some(ack) => ack.now_or_never().map(changelog::outcome),
            };
            match acked {
                None => pending.push(u),
                Some(Ok(())) => {
                    self.count_write(ChangelogKind::Park, true);
                    out.done.push(Done {
                        origin: Origin::Kafka {
                            partition: u.partition,
                            offset: u.offset,
                        },
                    });
                }
                Some(Err(e)) => {
                    self.count_write(ChangelogKind::Park, false);
                    out.failed += 1;
                    out.error = Some(e);
                }
            }
        }
        self.unflushed = pending;
        out
    }

    /// Flush until every parked offset is finished or failed, or `timeout` (shutdown).
    pub async fn drain(&mut self, timeout: std::time::Duration) -> Flushed {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut all = Flushed::default();
        loop {
            let Flushed {
                done,
                failed,
                error,
            } = self.flush().await;
            all.done.extend(done);
            all.failed += failed;
            let sled_failed = error.is_some() && failed == 0;
            all.error = error.or(all.error);
            if self.unflushed.is_empty() || sled_failed || tokio::time::Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn count_write(&self, kind: ChangelogKind, ok: bool) {
        if let Some(c) = &self.changelog {
            c.metrics().changelog_write(kind, ok, 1);
        }
    }

    fn reap_tombstones(&mut self) {
        let mut pending = Vec::new();
        for mut ack in std::mem::take(&mut self.tombstones) {
            match (&mut ack).now_or_never() {
                None => pending.push(ack),
                Some(result) => {
                    self.count_write(ChangelogKind::Tombstone, changelog::outcome(result).is_ok())
                }
            }
        }
        self.tombstones = pending;
    }

    /// Orgs with events waiting to be handed over.
    pub fn orgs_waiting(&self) -> Vec<String> {
        self.waiting
            .iter()
            .filter(|(_, p)| p.waiting > 0)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Up to `n` of the stream's parked events, oldest first, as jobs whose completion
    /// removes the parked record.
    pub fn take(&mut self, org: &str, n: usize) -> Result<Vec<Job>, ConsumerError> {
        let stream = StreamKey::from_encoded(org);
        let entry = self.waiting.entry(org.to_string()).or_default();
        let pfx = prefix(org);
        let iter = match &entry.cursor {
            Some(cursor) => {
                let mut start = cursor.clone();
                start.push(0);
                self.tree.range(start..)
            }
            None => self.tree.range(pfx.clone()..),
        };
        let mut records = Vec::new();
        while records.len() < n {
            let Some(key) = entry.behind.pop_first() else {
                break;
            };
            if let Some(value) = self.tree.get(&key)? {
                records.push((sled::IVec::from(key), value));
            }
        }
        for item in iter.take(n - records.len()) {
            let (key, value) = item?;
            if !key.starts_with(&pfx) {
                break;
            }
            entry.cursor = Some(key.to_vec());
            records.push((key, value));
        }
        let mut jobs = Vec::new();
        for (key, value) in records {
            entry.waiting = entry.waiting.saturating_sub(1);
            let (partition, offset) = parse_key(&key).and_then(|(_, o)| o).unwrap_or((-1, -1));
            match TopicEvent::parse(&value) {
                Ok(event) => jobs.push(Job {
                    event: Box::new(event),
                    stream: stream.clone(),
                    origin: Origin::Parked(Box::new(ParkedAt {
                        key: key.to_vec(),
                        partition,
                        offset,
                    })),
                }),
                // Written by us from a valid event; unreadable means corruption: keep it
                // visible in the tree for an operator rather than dropping it.
                Err(e) => tracing::error!(error = %e, "unreadable parked record left in place"),
            }
        }
        if jobs.is_empty() {
            entry.waiting = 0;
        }
        Ok(jobs)
    }

    /// A parked event was delivered or dead-lettered: forget it here and (fire-and-forget) in
    /// the changelog; a lost tombstone only causes a duplicate delivery later. The tombstone
    /// is written even when the partition was revoked meanwhile: the event is done.
    pub fn complete(
        &mut self,
        key: &[u8],
        partition: i32,
        offset: i64,
    ) -> Result<(), ConsumerError> {
        if let Some(c) = &self.changelog {
            if partition >= 0 {
                let stream = parse_key(key).map(|(s, _)| s).unwrap_or_default();
                let slot = els_model::settings::stream_slot(crate::streams::key::split(stream).1);
                match c.send(
                    Key::Park {
                        partition,
                        offset,
                        slot,
                    },
                    None,
                ) {
                    Ok(ack) => self.tombstones.push(ack),
                    Err(_) => c
                        .metrics()
                        .changelog_write(ChangelogKind::Tombstone, false, 1),
                }
            }
        }
        if let Some(old) = self.tree.remove(key)? {
            self.stored = self.stored.saturating_sub(1);
            let org = parse_key(key).map(|(org, _)| org).unwrap_or_default();
            self.held.add(org, -1, -(old.len() as i64));
        }
        Ok(())
    }

    /// A worker gave back a parked event it had been handed (its stream paused): it waits
    /// again, first in line.
    pub fn give_back(&mut self, org: &str, key: Vec<u8>) {
        if !matches!(self.tree.contains_key(&key), Ok(true)) {
            return;
        }
        let entry = self.waiting.entry(org.to_string()).or_default();
        if entry.behind.insert(key) {
            entry.waiting += 1;
        }
    }

    /// Events and bytes the org has in this store.
    pub fn held(&self, org: &str) -> (u64, u64) {
        self.held.of(org)
    }

    /// Partitions were revoked: drop their records from the local tree only (the new owner
    /// restores them from the changelog) and forget their unfinished offsets. Returns how
    /// many records were dropped.
    pub fn drop_partitions(&mut self, partitions: &[i32]) -> Result<usize, ConsumerError> {
        self.unflushed
            .retain(|u| !partitions.contains(&u.partition));
        let mut keys = Vec::new();
        let mut orgs = HashSet::new();
        for item in self.tree.iter() {
            let (key, _) = item?;
            if let Some((org, Some((p, _)))) = parse_key(&key) {
                if partitions.contains(&p) {
                    orgs.insert(org.to_string());
                    keys.push(key);
                }
            }
        }
        for key in &keys {
            if let Some(old) = self.tree.remove(key)? {
                self.stored = self.stored.saturating_sub(1);
                let org = parse_key(key).map(|(org, _)| org).unwrap_or_default();
                self.held.add(org, -1, -(old.len() as i64));
            }
        }
        for org in orgs {
            self.recount(&org);
        }
        Ok(keys.len())
    }

    /// Insert records restored from the changelog; their orgs' cursors start over.
    pub fn restore(&mut self, records: Vec<Restored>) -> Result<(), ConsumerError> {
        let mut orgs = HashSet::new();
        for r in records {
            let key = park_key(&r.stream, r.partition, r.offset);
            if self.tree.insert(key, r.event.as_bytes())?.is_none() {
                self.stored += 1;
                self.held.add(&r.stream, 1, r.event.len() as i64);
            }
            orgs.insert(r.stream);
        }
        for org in orgs {
            let entry = self.waiting.entry(org.clone()).or_default();
            entry.cursor = None;
            entry.behind.clear();
            self.recount(&org);
        }
        Ok(())
    }

    /// Records in the park tree (waiting or handed over and not yet finished).
    pub fn stored(&self) -> usize {
        self.stored
    }

    pub fn changelog(&self) -> Option<&Arc<Changelog>> {
        self.changelog.as_ref()
    }
}

#[cfg(test)]
mod tests;
