//! Dead-letter records: the versioned envelope persisted in sled and the state topic, why an
//! event was dead-lettered, the filter of list/replay/purge, and the id scheme.
//!
//! Ids name the input offset ([`dead_letter_id`]), so the same event dead-lettered again after
//! a crash gets the same id, and an id means the same record on every instance.
//!
//! Records are read with [`DeadLetter::from_json`], never through serde's internally tagged
//! enum: that buffers the whole record, and serde_json's recursion limit (128 levels) counts
//! the record's own level on top of the event's, so an event nested close to the limit (which
//! ingest accepts) made its record unreadable, and with it every listing. The reader skims the
//! version tag and the event without recursion and parses the event on its own, at the depth
//! it had when it was first parsed, so any record ELS writes reads back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

pub use els_api::dead_letters::{DeadLetterV1, Reason};

/// The persisted, versioned envelope: `{"v":"1", ..record fields}`. Written with serde's
/// internal tag; read with [`DeadLetter::from_json`] (see the module docs for why it does not
/// implement `Deserialize`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "v")]
pub enum DeadLetter {
    #[serde(rename = "1")]
    V1(DeadLetterV1),
}

/// Only the version tag of a record; every other field is skimmed (no recursion).
#[derive(Deserialize)]
struct Version {
    v: String,
}

impl DeadLetter {
    /// Decode a persisted record, whatever its event: the version tag first, then the
    /// record of that version (whose event is parsed on its own).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let Version { v } = serde_json::from_slice(bytes)?;
        match v.as_str() {
            "1" => Ok(DeadLetter::V1(serde_json::from_slice(bytes)?)),
            other => Err(serde::de::Error::custom(format!(
                "unknown dead-letter record version {other:?}"
            ))),
        }
    }

    /// The persisted form (what [`DeadLetter::from_json`] reads).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

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
