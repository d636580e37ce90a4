//! [`AuditLog`]: every change made through the admin API (settings, test events, replays,
//! purges, tokens; any route the table marks as audited) as an [`AuditEntry`] (token id,
//! action, org, time, status, outcome) in the audit topic, which every instance follows, so
//! `GET /v1/audit` on any instance lists every instance's actions. The newest
//! [`KEEP`] entries are held in memory for that route; the topic is the full record.
//!
//! Without the audit topic, entries are kept in this instance's memory only (and logged).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use els_api::AuditEntry;

use super::token::Principal;
use super::topic::TopicWriter;

/// Entries kept in memory for `GET /v1/audit`.
pub const KEEP: usize = 10_000;

#[derive(Clone, Default)]
pub struct AuditLog {
    entries: Arc<Mutex<VecDeque<AuditEntry>>>,
    writer: Arc<OnceLock<TopicWriter>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Record to the topic from now on (the follower brings entries back into memory).
    pub fn attach_writer(&self, writer: TopicWriter) {
        let _ = self.writer.set(writer);
    }

    /// Keep an entry read from the topic.
    pub fn keep(&self, entry: AuditEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= KEEP {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Apply one topic record; unreadable ones are skipped.
    pub fn apply_payload(&self, payload: Option<&[u8]>) {
        match payload.map(serde_json::from_slice::<AuditEntry>) {
            Some(Ok(entry)) => self.keep(entry),
            Some(Err(_)) => tracing::warn!("skipping an unreadable audit record"),
            None => {}
        }
    }

    /// Record `entry`: logged, written to the topic (awaited) or, without one, kept here.
    /// A failed write is logged, never turned into a failure of the action it records (the
    /// action has already happened).
    pub async fn record(&self, entry: AuditEntry) {
        tracing::info!(
            token_id = %entry.token_id,
            action = %entry.action,
            org_id = entry.org.as_deref().unwrap_or(""),
            status = entry.status,
            outcome = %entry.outcome,
            "audit"
        );
        match self.writer.get() {
            None => self.keep(entry),
            Some(writer) => {
                let key = entry.org.clone().unwrap_or_default();
                match serde_json::to_vec(&entry) {
                    Ok(payload) => {
                        if let Err(e) = writer.write(&key, Some(&payload)).await {
                            tracing::error!(error = %e, action = %entry.action, "audit record not written");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "audit record not encoded"),
                }
            }
        }
    }

    /// Newest first: entries `who` may see (a super admin all, others their orgs'), of `org`
    /// if given, at most `limit`.
    pub fn list(&self, who: &Principal, org: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .rev()
            .filter(|e| match (&e.org, who.scope()) {
                (_, None) => true,
                (Some(o), Some(orgs)) => orgs.contains(o),
                (None, Some(_)) => false,
            })
            .filter(|e| org.is_none_or(|o| e.org.as_deref() == Some(o)))
            .take(limit)
            .cloned()
            .collect()
    }
}
