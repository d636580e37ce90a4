//! `els-api`: the contract of the consumer's admin API, one definition of every request and
//! response body, used by the server (`els-consumer`'s `admin` room) and its clients
//! (`elsctl`; the browser console reads the same JSON). Plain serde types, no I/O.
//!
//! | route | request | answer |
//! | --- | --- | --- |
//! | `GET /metrics` | | Prometheus text |
//! | `GET /healthz` | | `ok` (text); 503 [`Liveness`] |
//! | `GET /readyz` | | [`Readiness`] (200 ready, else 503) |
//! | `GET /v1/dead-letters` | query [`DeadLetterQuery`] | [`DeadLetterList`] |
//! | `DELETE /v1/dead-letters` | query [`DeadLetterQuery`] | [`PurgeResult`] |
//! | `POST /v1/dead-letters/replay` | body [`DeadLetterQuery`] (optional) | [`ReplayResult`] (200; 502 when some failed) |
//! | `GET /v1/dead-letters/{id}` | | [`DeadLetterV1`] |
//! | `GET /v1/orgs` | | [`OrgList`] |
//! | `GET /v1/orgs/{org}/settings` | | [`OrgSettings`], auth header values [`REDACTED`] |
//! | `PUT /v1/orgs/{org}/settings` | body [`OrgSettings`] | [`OrgSettings`], redacted |
//! | `DELETE /v1/orgs/{org}/settings` | | [`SettingsDeleted`] |
//! | `POST /v1/orgs/{org}/test` | body empty or [`TestEventRequest`] | [`TestEventResult`] |
//! | `GET /v1/orgs/{org}/status` | | [`StreamStatus`] |
//! | `GET /v1/status` | query [`StatusQuery`] | [`StatusList`] |
//! | `POST /v1/orgs/{org}/pause`, `/resume` | body empty or `{}` | [`StreamStatus`] |
//! | `GET /v1/orgs/{org}/stream-events` | query `limit` | [`NoticeList`] |
//! | `GET /console/api/dead-letters` | query [`OrgQuery`] | [`DeadLetterSummary`] |
//! | `GET /v1/whoami` | | [`WhoAmI`] |
//! | `GET /v1/tokens` | | [`TokenList`] |
//! | `POST /v1/tokens` | body [`CreateToken`] | [`CreatedToken`] (201) |
//! | `DELETE /v1/tokens/{id}` | | [`TokenInfo`] |
//! | `GET /v1/audit` | query [`AuditQuery`] | [`AuditList`] |
//! | any route, any error | | [`ErrorBody`] |
//!
//! Modules: [`dead_letters`] (records, [`Reason`], filters, list/purge/replay answers, the
//! console's summary), [`openapi`] (the OpenAPI 3.1 document built from these types), [`tokens`] (roles, tokens, whoami), [`audit`], [`settings`] (org list, delete answer; settings documents are
//! [`els_model`]'s [`OrgSettings`]), [`test_event`], [`health`], [`error`].
//!
//! The JSON of every answer is pinned by the round-trip tests in `tests.rs`: renaming a field
//! or a [`Reason`] value, or making an optional field required, breaks them.

pub mod audit;
pub mod dead_letters;
pub mod error;
pub mod health;
pub mod openapi;
pub mod settings;
pub mod status;
pub mod test_event;
pub mod tokens;

#[cfg(test)]
mod tests;

pub use audit::{AuditEntry, AuditList, AuditQuery};
pub use dead_letters::{
    DeadLetterList, DeadLetterQuery, DeadLetterSummary, DeadLetterV1, LatestFailure, OrgQuery,
    PurgeResult, Reason, ReplayResult,
};
pub use error::{ErrorBody, FieldError};
pub use health::{Liveness, Readiness};
pub use settings::{OrgList, OrgSettings, SettingsDeleted, StreamEntry, StreamList, REDACTED};
pub use status::{
    NoticeList, NoticeQuery, StatusList, StatusQuery, StatusReason, StreamNotice, StreamState,
    StreamStatus,
};
pub use test_event::{TestEventRequest, TestEventResult};
pub use tokens::{CreateToken, CreatedToken, Role, TokenInfo, TokenList, WhoAmI};
