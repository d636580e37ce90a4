//! The state store: one sled database on the instance's disk holding the dead letters
//! ([`DeadLetters`]), the parked events (the `parked` tree, used by
//! [`crate::delivery::park`]) and a `meta` tree, plus the state changelog every record also
//! goes to, and the store's health as the engine sees it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::changelog::Changelog;
use super::dead_letters::DeadLetters;
use crate::error::ConsumerError;

/// The sled database (dead letters and parked events share it).
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
    dead_letters: DeadLetters,
    /// The state changelog every write also goes to (`None`: local-only state).
    changelog: Option<Arc<Changelog>>,
}

/// Keys in `tree`, stopping at the first error.
pub(crate) fn count_keys(tree: &sled::Tree) -> usize {
    tree.iter().keys().take_while(Result::is_ok).count()
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, ConsumerError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        let dead_letters = DeadLetters::open(&db)?;
        Ok(Self {
            db,
            dead_letters,
            changelog: None,
        })
    }

    /// Write every change to `changelog` too (before anything is stored).
    pub fn attach_changelog(&mut self, changelog: Arc<Changelog>) {
        self.dead_letters.attach_changelog(changelog.clone());
        self.changelog = Some(changelog);
    }

    pub fn changelog(&self) -> Option<&Arc<Changelog>> {
        self.changelog.as_ref()
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// The tree of parked events (its layout: [`crate::delivery::park`]).
    pub fn parked_tree(&self) -> Result<sled::Tree, ConsumerError> {
        Ok(self.db.open_tree("parked")?)
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// Whether the store accepts writes. Readiness reports a failing store; liveness fails when
/// it has failed for long, since sled keeps an I/O error sticky and only a restart recovers.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Set while the store refuses writes.
    failing: AtomicBool,
    /// When the store started failing (ms since the epoch; 0 = healthy).
    failing_since: AtomicU64,
}

impl StoreHealth {
    /// Record a failed write; true when it is the first of a run of failures.
    pub fn failed(&self) -> bool {
        let now = chrono::Utc::now().timestamp_millis().max(1) as u64;
        let _ = self
            .failing_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        !self.failing.swap(true, Ordering::Relaxed)
    }

    pub fn ok(&self) {
        self.failing.store(false, Ordering::Relaxed);
        self.failing_since.store(0, Ordering::Relaxed);
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// How long the store has been failing.
    pub fn failing_for(&self) -> Option<Duration> {
        let since = self.failing_since.load(Ordering::Relaxed);
        (since > 0).then(|| {
            let now = chrono::Utc::now().timestamp_millis().max(1) as u64;
            Duration::from_millis(now.saturating_sub(since))
        })
    }
}
