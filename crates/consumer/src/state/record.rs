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

/// Bits of a dead-letter id that hold the offset; the partition is above them, and the
/// stream's slot above that.
pub const OFFSET_BITS: u32 = 40;
/// Bits of the partition (partitions below 65,536).
pub const PARTITION_BITS: u32 = 16;
const SLOT_SHIFT: u32 = OFFSET_BITS + PARTITION_BITS;

/// The id of the dead letter of input offset (`partition`, `offset`) for the stream of slot
/// `slot` ([`els_model::settings::stream_slot`]: 0 for the stream `default`):
/// `(slot << 56) | (partition << 40) | offset`, so ids sort by stream, partition, then
/// offset, are the same on every instance, and each stream's copy of an event has its own
/// record. Slot 0 gives the ids of the versions before streams existed. `None` outside the
/// scheme (negative, partition >= 2^16, offset >= 2^40).
pub fn dead_letter_id_in(slot: u8, partition: i32, offset: i64) -> Option<u64> {
    let p = u64::try_from(partition)
        .ok()
        .filter(|p| *p < 1 << PARTITION_BITS)?;
    let o = u64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some((u64::from(slot) << SLOT_SHIFT) | (p << OFFSET_BITS) | o)
}

/// The id of the stream `default`'s dead letter of (`partition`, `offset`).
pub fn dead_letter_id(partition: i32, offset: i64) -> Option<u64> {
    dead_letter_id_in(0, partition, offset)
}

/// The id of a record: its stream's slot and its input offset.
pub fn record_id(record: &DeadLetterV1) -> Option<u64> {
    let slot = els_model::settings::stream_slot(&record.stream);
    dead_letter_id_in(slot, record.partition, record.offset)
}

/// The (partition, offset) a dead-letter id names (the inverse of [`dead_letter_id_in`]).
pub fn dead_letter_origin(id: u64) -> (i32, i64) {
    (
        ((id >> OFFSET_BITS) & ((1 << PARTITION_BITS) - 1)) as i32,
        (id & ((1 << OFFSET_BITS) - 1)) as i64,
    )
}

/// The stream slot a dead-letter id names.
pub fn dead_letter_slot(id: u64) -> u8 {
    (id >> SLOT_SHIFT) as u8
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
    pub stream: Option<String>,
    pub reason: Option<Reason>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

impl Filter {
    pub fn matches(&self, r: &DeadLetterV1) -> bool {
        self.org.as_ref().is_none_or(|o| *o == r.org_id)
            && self.stream.as_ref().is_none_or(|s| *s == r.stream)
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
