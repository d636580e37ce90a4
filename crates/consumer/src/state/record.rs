//! Dead-letter records: the versioned envelope persisted in sled and the state topic, why an
//! event was dead-lettered, the filter of list/replay/purge, and the id scheme.
//!
//! Ids name the input offset ([`dead_letter_id`]), so the same event dead-lettered again after
//! a crash gets the same id, and an id means the same record on every instance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The SIEM rejected it for good (4xx other than 408/429, or a 501), or the SSRF guard
    /// refused its destination: [`crate::delivery::retry::Outcome::Rejected`].
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
