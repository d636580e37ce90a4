//! Partition ownership as rebalance callbacks tell it. The callbacks run inside the consumer's
//! poll, so they only record what changed; the consume loop applies the changes (forget
//! revoked partitions, restore assigned ones' parked events) before it handles the message
//! that poll returned.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

/// One rebalance callback's news.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// What the consume loop must apply, in this order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Partitions revoked at some point since the last call.
    pub revoked: Vec<i32>,
    /// Partitions assigned since the last call and still owned: their state is restored.
    pub assigned: Vec<i32>,
}

#[derive(Default)]
pub struct Ownership {
    assigned: Mutex<BTreeSet<i32>>,
    changes: Mutex<Vec<Change>>,
    /// Set with `changes`, so the consume loop checks a flag per message, not a lock.
    any_change: AtomicBool,
}

impl Ownership {
    pub fn assigned(&self) -> Vec<i32> {
        self.assigned
            .lock()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The changes since the last call (`None`: nothing happened).
    pub fn take_changes(&self) -> Option<Changes> {
        if !self.any_change.swap(false, Ordering::AcqRel) {
            return None;
        }
        let changes = self
            .changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let owned = self.assigned();
        Some(summarize(changes, &owned))
    }

    fn record(&self, change: Change) {
        let Ok(mut a) = self.assigned.lock() else {
            return;
        };
        match &change {
            Change::Assigned(parts) => a.extend(parts),
            Change::Revoked(parts) => {
                for p in parts {
                    a.remove(p);
                }
            }
        }
        if let Ok(mut c) = self.changes.lock() {
            c.push(change);
        }
        self.any_change.store(true, Ordering::Release);
    }
}

/// Every partition revoked, and the partitions assigned that are still `owned`.
fn summarize(changes: Vec<Change>, owned: &[i32]) -> Changes {
    let (mut revoked, mut assigned) = (BTreeSet::new(), BTreeSet::new());
    for change in changes {
        match change {
            Change::Revoked(parts) => revoked.extend(parts),
            Change::Assigned(parts) => assigned.extend(parts),
        }
    }
    assigned.retain(|p| owned.contains(p));
    Changes {
        revoked: revoked.into_iter().collect(),
        assigned: assigned.into_iter().collect(),
    }
}

/// The group consumer's rdkafka context: records what each rebalance assigns and revokes.
pub struct RebalanceContext {
    pub ownership: Arc<Ownership>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions revoked");
            self.ownership.record(Change::Revoked(parts));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions assigned");
            self.ownership.record(Change::Assigned(parts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_revocations_first_and_restore_only_what_is_still_owned() {
        let o = Ownership::default();
        assert_eq!(o.take_changes(), None);
        o.record(Change::Assigned(vec![0, 1, 2]));
        o.record(Change::Revoked(vec![1]));
        o.record(Change::Revoked(vec![2]));
        o.record(Change::Assigned(vec![2, 3]));
        let changes = o.take_changes().unwrap();
        assert_eq!(changes.revoked, [1, 2]);
        assert_eq!(changes.assigned, [0, 2, 3]);
        assert_eq!(o.assigned(), [0, 2, 3]);
        assert_eq!(o.take_changes(), None);
    }
}
