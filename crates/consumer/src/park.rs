//! Parking: when an org's in-memory queue is full, its further events are written to sled and
//! fed back as the queue drains. Memory stays bounded whatever the org's SIEM does, and the
//! partition keeps flowing for every other org.
//!
//! A parked event's offset counts as finished once the park write is flushed; the parked
//! record itself is removed only after the event was delivered or dead-lettered, so a crash
//! at any point re-delivers it (at least once) rather than losing it. Once an org has parked
//! events, its new events park behind them, keeping the org's order.

use std::collections::{BTreeMap, HashMap};

use els_model::topic::TopicEvent;

use crate::dlq::Store;
use crate::error::ConsumerError;
use crate::worker::{Done, Job, Origin};

pub struct Park {
    tree: sled::Tree,
    db: sled::Db,
    /// Per org: parked events not yet handed to the worker, and the last key handed over.
    waiting: HashMap<String, OrgPark>,
    /// Kafka offsets parked since the last flush: finished once flushed.
    unflushed: Vec<Done>,
    /// Records in the tree (counted here: sled's `len()` walks the tree).
    stored: usize,
}

#[derive(Default)]
struct OrgPark {
    waiting: usize,
    cursor: Option<Vec<u8>>,
}

fn prefix(org: &str) -> Vec<u8> {
    let mut p = org.as_bytes().to_vec();
    p.push(0);
    p
}

impl Park {
    /// Open the park tree and pick up events parked by an earlier run.
    pub fn open(store: &Store) -> Result<Self, ConsumerError> {
        let tree = store.db().open_tree("parked")?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for item in tree.iter() {
            let (key, _) = item?;
            let org_end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let org = String::from_utf8_lossy(&key[..org_end]).into_owned();
            *counts.entry(org).or_default() += 1;
        }
        let waiting = counts
            .into_iter()
            .map(|(org, n)| {
                (
                    org,
                    OrgPark {
                        waiting: n,
                        cursor: None,
                    },
                )
            })
            .collect();
        let stored = crate::dlq::count_keys(&tree);
        Ok(Self {
            tree,
            db: store.db().clone(),
            waiting,
            unflushed: Vec::new(),
            stored,
        })
    }

    /// Whether the org has parked events still to hand over (new events must queue behind).
    pub fn has_waiting(&self, org: &str) -> bool {
        self.waiting.get(org).is_some_and(|p| p.waiting > 0)
    }

    /// Events parked and not yet handed to a worker, all orgs.
    pub fn waiting_total(&self) -> usize {
        self.waiting.values().map(|p| p.waiting).sum()
    }

    /// Park a job consumed from Kafka (not yet durable: see [`Park::flush`]).
    pub fn park(&mut self, job: Job) -> Result<(), ConsumerError> {
        let mut key = prefix(job.event.org_id());
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.tree.insert(key, job.event.json().as_bytes())?;
        self.stored += 1;
        self.waiting
            .entry(job.event.org_id().to_string())
            .or_default()
            .waiting += 1;
        if let Origin::Kafka { partition, offset } = job.origin {
            self.unflushed.push(Done {
                origin: Origin::Kafka { partition, offset },
            });
        }
        Ok(())
    }

    /// Flush parked records; returns the Kafka offsets that are now safely finished.
    pub async fn flush(&mut self) -> Result<Vec<Done>, ConsumerError> {
        if self.unflushed.is_empty() {
            return Ok(Vec::new());
        }
        self.tree.flush_async().await?;
        Ok(std::mem::take(&mut self.unflushed))
    }

    /// Orgs with events waiting to be handed over.
    pub fn orgs_waiting(&self) -> Vec<String> {
        self.waiting
            .iter()
            .filter(|(_, p)| p.waiting > 0)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Up to `n` of the org's parked events, oldest first, as jobs whose completion removes
    /// the parked record.
    pub fn take(&mut self, org: &str, n: usize) -> Result<Vec<Job>, ConsumerError> {
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
        let mut jobs = Vec::new();
        for item in iter.take(n) {
            let (key, value) = item?;
            if !key.starts_with(&pfx) {
                break;
            }
            entry.cursor = Some(key.to_vec());
            entry.waiting = entry.waiting.saturating_sub(1);
            match TopicEvent::parse(&value) {
                Ok(event) => jobs.push(Job {
                    event: Box::new(event),
                    origin: Origin::Parked { key: key.to_vec() },
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

    /// A parked event was delivered or dead-lettered: forget it.
    pub fn complete(&mut self, key: &[u8]) -> Result<(), ConsumerError> {
        if self.tree.remove(key)?.is_some() {
            self.stored = self.stored.saturating_sub(1);
        }
        Ok(())
    }

    /// Records in the park tree (waiting or handed over and not yet finished).
    pub fn stored(&self) -> usize {
        self.stored
    }
}
