//! Stream health: the state of each org's stream, why it is in it, what it holds, and the
//! lifecycle notices of its changes.
//!
//! | route | request | answer |
//! | --- | --- | --- |
//! | `GET /v1/orgs/{org}/status` | | [`StreamStatus`] |
//! | `GET /v1/status` | query [`StatusQuery`] | [`StatusList`] |
//! | `POST /v1/orgs/{org}/pause` | body empty or `{}` | [`StreamStatus`] (`paused_by_user`) |
//! | `POST /v1/orgs/{org}/resume` | body empty or `{}` | [`StreamStatus`] |
//! | `GET /v1/orgs/{org}/stream-events` | query `limit` | [`NoticeList`] |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The state of one org's stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Events flow.
    Active,
    /// The SIEM answers with transient errors; deliveries are being retried.
    Failing,
    /// A configuration-type error (401/403, HEC codes 1-4, 7, 10, 11, 14, 404/410), or
    /// failing longer than the pause threshold: events are held in the park store and one
    /// probe goes out per probe interval.
    Paused,
    /// A probe is on its way while paused.
    Probing,
    /// Paused on purpose (API, `elsctl pause`, the console); held until resumed.
    PausedByUser,
    /// `enabled: false`: the org's events are not streamed (counted as filtered).
    Disabled,
}

impl StreamState {
    pub const ALL: [StreamState; 6] = [
        StreamState::Active,
        StreamState::Failing,
        StreamState::Paused,
        StreamState::Probing,
        StreamState::PausedByUser,
        StreamState::Disabled,
    ];

    /// The wire name, e.g. `paused_by_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Active => "active",
            StreamState::Failing => "failing",
            StreamState::Paused => "paused",
            StreamState::Probing => "probing",
            StreamState::PausedByUser => "paused_by_user",
            StreamState::Disabled => "disabled",
        }
    }

    /// Whether the stream's events are held (parked) rather than sent.
    pub fn holds(self) -> bool {
        matches!(
            self,
            StreamState::Paused | StreamState::Probing | StreamState::PausedByUser
        )
    }
}

impl std::str::FromStr for StreamState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state `{s}`; one of {}",
                    StreamState::ALL.map(StreamState::as_str).join(", ")
                )
            })
    }
}

/// Why a stream left `active`: the SIEM's answer (or the failure) that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusReason {
    /// The SIEM's HTTP status; `None` for network errors (and user or settings actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Splunk HEC's `code` and `text`, when the answer carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hec_code: Option<i64>,
    /// A short explanation (the HEC text, the error, "paused by user", ...).
    pub text: String,
}

/// `GET /v1/orgs/{org}/status` (the stream `default`) and
/// `GET /v1/orgs/{org}/streams/{stream}/status`: one stream's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamStatus {
    pub org: String,
    /// The stream's id within its org (`default` for settings from before streams).
    #[serde(default = "default_stream")]
    pub stream: String,
    pub state: StreamState,
    /// When the stream entered `state`.
    pub since: DateTime<Utc>,
    /// Why (absent while active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
    /// The last delivery the SIEM accepted, if this instance has seen one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// Events held in the park store (paused, or parked behind a full queue) and their bytes.
    pub held_events: u64,
    pub held_bytes: u64,
    /// Over the last hour: events delivered, and events that failed an attempt (retried,
    /// held or dead-lettered).
    pub delivered_last_hour: u64,
    pub failed_last_hour: u64,
}

/// `GET /v1/status` query: filter by state and org id prefix; page with `after` (the `next`
/// of the previous page) and `limit` (default 100, at most 1000). Streams sort by org id,
/// then stream id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StreamState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /v1/status`: a page of streams, and how many there are by state (all pages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusList {
    pub items: Vec<StreamStatus>,
    /// Streams matching the query (all pages).
    pub matched: usize,
    /// Streams by state, over all orgs (not only this page).
    pub by_state: std::collections::BTreeMap<String, usize>,
    /// The `after` of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A lifecycle notice: one state change of a stream (also in the `els.stream-events` topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamNotice {
    pub org: String,
    /// The stream's id (notices written before streams existed are the stream `default`'s).
    #[serde(default = "default_stream")]
    pub stream: String,
    pub from: StreamState,
    pub to: StreamState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
    pub at: DateTime<Utc>,
}

fn default_stream() -> String {
    els_model::settings::DEFAULT_STREAM.to_string()
}

/// `GET /v1/orgs/{org}/stream-events`: the org's recent notices (all its streams), oldest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NoticeList {
    pub items: Vec<StreamNotice>,
}

/// `GET /v1/orgs/{org}/stream-events` query: the newest `limit` notices (default 100, at
/// most 1000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NoticeQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_and_status_keep_their_wire_names() {
        for state in StreamState::ALL {
            let text = serde_json::to_value(state).unwrap();
            assert_eq!(text, json!(state.as_str()));
            assert_eq!(state.as_str().parse::<StreamState>(), Ok(state));
        }
        assert!("stopped"
            .parse::<StreamState>()
            .unwrap_err()
            .contains("paused_by_user"));
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let status = StreamStatus {
            org: "org-1".into(),
            stream: "default".into(),
            state: StreamState::Paused,
            since: at,
            reason: Some(StatusReason {
                status: Some(403),
                hec_code: Some(4),
                text: "Invalid token".into(),
            }),
            last_success: None,
            held_events: 500,
            held_bytes: 210_000,
            delivered_last_hour: 10,
            failed_last_hour: 501,
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(
            value,
            json!({"org": "org-1", "stream": "default", "state": "paused", "since": "2026-12-01T10:00:00Z",
                   "reason": {"status": 403, "hec_code": 4, "text": "Invalid token"},
                   "held_events": 500, "held_bytes": 210000,
                   "delivered_last_hour": 10, "failed_last_hour": 501})
        );
        assert_eq!(
            serde_json::from_value::<StreamStatus>(value).unwrap(),
            status
        );
    }
}
