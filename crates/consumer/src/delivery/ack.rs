//! HEC indexer acknowledgement: with a token that has ack on, Splunk answers `200` with an
//! `ackId`, which means only "appears valid"; the events are indexed once
//! `POST /services/collector/ack` on the same data channel answers `true` for that id.
//!
//! Each org worker keeps its batches that await an ack here ([`Acks`]) and keeps sending:
//! every `poll_interval` one poll carries all of the channel's pending ids; an acked batch is
//! delivered (its offsets may advance), a batch unacked after `timeout` is sent again (same
//! `event_id`s, a new ack id). Until then its events are unfinished, so a crash re-sends
//! them. Pending events are capped per org (the worker stops taking events: they park) and
//! in all ([`AckBudget`]: reading from Kafka pauses). An ack endpoint answering code 14 (ack
//! disabled for the token) turns ack off for the worker: what was pending counts as
//! delivered on its `200`, once logged and counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use els_model::hec::AckStatus;
use tokio::time::{Duration, Instant};

use super::worker::Job;
use crate::metrics::Metrics;

/// A batch accepted with an ack id, waiting for its ack.
#[derive(Debug)]
pub struct Pending {
    pub jobs: Vec<Job>,
    /// When the request was answered `200` (for the timeout and the ack latency).
    pub accepted: Instant,
}

/// One worker's batches awaiting acks, by ack id (ids are per channel, and the worker has
/// one channel).
#[derive(Debug, Default)]
pub struct Acks {
    pending: BTreeMap<u64, Pending>,
    /// Batches whose id a later answer reused (a SIEM should never do that): re-sent on the
    /// next poll, as if timed out.
    stale: Vec<Pending>,
    events: usize,
    next_poll: Option<Instant>,
    /// The ack endpoint said ack is off for this token (code 14).
    pub disabled: bool,
    /// A `200` without `ackId` under `hec.ack: true` was logged already.
    pub warned_no_ack_id: bool,
}

/// What a poll's answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum PollAnswer {
    /// The ids answered `true`.
    Acked(Vec<u64>),
    /// Code 14: ack is disabled for this token.
    Disabled,
    /// Anything else (network error, 5xx, an auth error): ask again next time; the timeout
    /// re-sends what never gets acked.
    Failed,
}

impl PollAnswer {
    /// Read the ack endpoint's answer (`status`, body).
    pub fn read(status: u16, body: &str) -> Self {
        if status == 200 {
            return match serde_json::from_str::<AckStatus>(body.trim()) {
                Ok(acks) => PollAnswer::Acked(acks.acked().collect()),
                Err(_) => PollAnswer::Failed,
            };
        }
        match super::hec::parse_reply(body) {
            Some(reply) if reply.code == 14 => PollAnswer::Disabled,
            _ => PollAnswer::Failed,
        }
    }
}

impl Acks {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.stale.is_empty()
    }

    /// Events awaiting acks.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Ack ids awaiting acks.
    pub fn ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// When the next poll is due (`None` while nothing is pending).
    pub fn next_poll(&self) -> Option<Instant> {
        self.next_poll
    }

    /// Keep `jobs`, accepted with `ack_id`, until acked; the first pending batch schedules
    /// a poll `interval` from now.
    pub fn add(&mut self, ack_id: u64, jobs: Vec<Job>, interval: Duration, budget: &AckBudget) {
        let now = Instant::now();
        budget.add(jobs.len(), 1);
        self.events += jobs.len();
        self.next_poll.get_or_insert(now + interval);
        let batch = Pending {
            jobs,
            accepted: now,
        };
        if let Some(old) = self.pending.insert(ack_id, batch) {
            self.stale.push(old);
        }
    }

    /// Schedule the next poll `after` from now (none when nothing is pending).
    pub fn schedule(&mut self, after: Duration) {
        self.next_poll = (!self.is_empty()).then(|| Instant::now() + after);
    }

    /// Take the batches whose ids are in `acked`.
    pub fn take_acked(&mut self, acked: &[u64], budget: &AckBudget) -> Vec<Pending> {
        let taken: Vec<Pending> = acked
            .iter()
            .filter_map(|id| self.pending.remove(id))
            .collect();
        self.release(&taken, budget);
        taken
    }

    /// Take the batches accepted longer than `timeout` ago.
    pub fn take_expired(&mut self, timeout: Duration, budget: &AckBudget) -> Vec<Pending> {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.accepted) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        let mut taken = std::mem::take(&mut self.stale);
        taken.extend(expired.iter().filter_map(|id| self.pending.remove(id)));
        self.release(&taken, budget);
        taken
    }

    /// Take every pending batch.
    pub fn take_all(&mut self, budget: &AckBudget) -> Vec<Pending> {
        let mut taken = std::mem::take(&mut self.stale);
        taken.extend(std::mem::take(&mut self.pending).into_values());
        self.release(&taken, budget);
        taken
    }

    fn release(&mut self, taken: &[Pending], budget: &AckBudget) {
        let events: usize = taken.iter().map(|p| p.jobs.len()).sum();
        self.events -= events;
        budget.remove(events, taken.len());
        if self.is_empty() {
            self.next_poll = None;
        }
    }
}

/// Events and ack ids awaiting acks across all workers of a consume loop, mirrored in the
/// `els_hec_ack_pending_events` and `els_hec_acks_pending` gauges.
pub struct AckBudget {
    events: AtomicUsize,
    metrics: Metrics,
}

impl AckBudget {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            events: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Events awaiting acks in all.
    pub fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    fn add(&self, events: usize, ids: usize) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.metrics.ack_pending_events.add(events as i64);
        self.metrics.acks_pending.add(ids as i64);
    }

    fn remove(&self, events: usize, ids: usize) {
        self.events.fetch_sub(events, Ordering::Relaxed);
        self.metrics.ack_pending_events.sub(events as i64);
        self.metrics.acks_pending.sub(ids as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_answers() {
        assert_eq!(
            PollAnswer::read(200, r#"{"acks":{"3":true,"4":false,"5":true}}"#),
            PollAnswer::Acked(vec![3, 5])
        );
        assert_eq!(
            PollAnswer::read(400, r#"{"text":"ACK is disabled","code":14}"#),
            PollAnswer::Disabled
        );
        assert_eq!(
            PollAnswer::read(503, r#"{"text":"Server is busy","code":9}"#),
            PollAnswer::Failed
        );
        assert_eq!(PollAnswer::read(200, "not json"), PollAnswer::Failed);
    }
}
