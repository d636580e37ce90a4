//! The dead-letter routes' types: the record ([`DeadLetterV1`], also what the consumer stores),
//! why it was dead-lettered ([`Reason`]), the filters ([`DeadLetterQuery`]) and the answers of
//! list, purge and replay; the console's per-org [`DeadLetterSummary`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Why an event was dead-lettered; on the wire in snake_case (`retries_exhausted`).
///
/// Variants are declared in the alphabetical order of their names, so maps keyed by reason
/// (`by_reason`) list them alphabetically; [`Reason::ALL`] is the order shown to people.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The Kafka record is not a valid event.
    InvalidEvent,
    /// Arrived while the org's stream was paused and its held events had reached the org's
    /// quota (events or bytes). (Declared here: reasons sort by name.)
    QuotaExceeded,
    /// Over the org's limit with policy `dead_letter`.
    RateLimited,
    /// The SIEM rejected it for good (4xx other than 408/429, or a 501), or the SSRF guard
    /// refused its destination.
    Rejected,
    /// Transient failures until the retry time ran out.
    RetriesExhausted,
    /// A single event the SIEM still answered `413 Payload Too Large`: over its request limit.
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Rejected,
        Reason::RetriesExhausted,
        Reason::RateLimited,
        Reason::InvalidEvent,
        Reason::TooLarge,
        Reason::QuotaExceeded,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::RateLimited => "rate_limited",
            Reason::InvalidEvent => "invalid_event",
            Reason::TooLarge => "too_large",
            Reason::QuotaExceeded => "quota_exceeded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// One line for operators (`elsctl --help`).
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Rejected => {
                "The SIEM refused it for good (4xx other than 408/429, or 501), or the SSRF \
                 guard refused its destination"
            }
            Reason::RetriesExhausted => "Transient failures until the retry time ran out",
            Reason::RateLimited => "Over the org's limit with policy `dead_letter`",
            Reason::InvalidEvent => "The Kafka record was not a valid event",
            Reason::TooLarge => "A single event over the SIEM's request size limit (413)",
            Reason::QuotaExceeded => {
                "Arrived while the stream was paused and its held events were at the org's quota"
            }
        }
    }
}

/// Version 1 of a dead letter: `GET /v1/dead-letters/{id}`, the items of [`DeadLetterList`],
/// and the record the consumer persists (inside its versioned envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterV1 {
    /// `(partition << 40) | offset` (the consumer's id scheme); records of older versions
    /// have a store-assigned number.
    #[serde(default)]
    pub id: u64,
    pub org_id: String,
    /// The org's stream that could not deliver it (`default` for records written before
    /// streams existed); a replay goes to this stream only.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The event as consumed (email already hashed), or the raw payload for invalid events.
    /// Read on its own ([`event_on_its_own`]), so the record adds no level to its depth.
    #[serde(deserialize_with = "event_on_its_own")]
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

fn default_stream() -> String {
    els_model::settings::DEFAULT_STREAM.to_string()
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
            stream: default_stream(),
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

/// Read the event of a record as raw JSON text (skimmed without recursion), then parse that
/// text as a document of its own: the nesting of the record around it (the consumer's
/// versioned envelope, a list answer's `items`) does not count towards serde_json's recursion
/// limit, so an event nested close to that limit (which ingest accepts) still reads back.
fn event_on_its_own<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    serde_json::from_str(raw.get()).map_err(|e| {
        serde::de::Error::custom(format!(
            "field `event`: {e} ({:?} error, {} bytes)",
            e.classify(),
            raw.get().len()
        ))
    })
}

/// Which dead letters list, purge and replay act on: the query string of `GET` and `DELETE
/// /v1/dead-letters`, the (optional) JSON body of `POST /v1/dead-letters/replay`. Absent
/// fields are left out. The server checks the values and names the bad one (`reason`,
/// `since`, `until`) in its [`crate::ErrorBody`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Only this stream's (with `org`, one stream of the org).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A [`Reason`] spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339; compared with `last_failed_at` (at or after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// RFC 3339; compared with `last_failed_at` (at or before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// At most this many, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Replay only: events per second (the server's default is 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
}

/// `GET /v1/dead-letters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    /// Dead letters of all orgs.
    pub total: usize,
    /// How many matched the filters (the length of `items`).
    pub matched: usize,
    /// `matched` split by reason.
    pub by_reason: BTreeMap<Reason, usize>,
    pub items: Vec<DeadLetterV1>,
}

/// `DELETE /v1/dead-letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgeResult {
    pub purged: usize,
    /// Dead letters left, all orgs.
    pub remaining: usize,
}

/// `POST /v1/dead-letters/replay`: status 200 when every match was re-published, 502 (same
/// body) when some failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    pub matched: usize,
    /// Re-published and removed.
    pub replayed: usize,
    /// Not re-published (or not removed); they stay.
    pub failed: usize,
    /// The last failure's text, `null` when none failed.
    pub last_error: Option<String>,
    /// Dead letters left, all orgs.
    pub remaining: usize,
}

/// `?org=` of `GET /console/api/dead-letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrgQuery {
    pub org: String,
}

/// `GET /console/api/dead-letters?org=`: one org's dead letters at a glance, what the
/// console's dead-letter panel shows (without shipping every record to the browser).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterSummary {
    pub org: String,
    /// Dead letters of this org.
    pub count: usize,
    /// `count` split by reason.
    pub by_reason: BTreeMap<Reason, usize>,
    /// The most recent failure, so the panel can say why without listing records.
    pub latest: Option<LatestFailure>,
    /// Dead letters of all orgs.
    pub total: usize,
}

/// The most recent failure of a [`DeadLetterSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatestFailure {
    pub reason: Reason,
    pub attempts: u32,
    pub last_status: Option<u16>,
    /// An excerpt of the SIEM's answer or the network error (the full text is in
    /// `GET /v1/dead-letters/{id}`).
    pub last_error: String,
    pub last_failed_at: DateTime<Utc>,
}
