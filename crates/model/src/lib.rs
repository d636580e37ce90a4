//! The ELS data model: everything that crosses a process boundary, with no I/O.
//!
//! - [`event`]: the execution event (the vendor's base schema plus per-type metadata), typed,
//!   with unknown fields kept so newer engines never lose data on the way through.
//! - [`ingest`]: parsing request bodies (one object, a JSON array or NDJSON) into validated
//!   events, with errors that name the offending field.
//! - [`json`]: JSON as received: pass-through values kept as text (an integer beyond `u64`
//!   stays exact) and the duplicate-key check every ingest body passes.
//! - [`topic`]: an event as the consumer reads it from the topic: checked, indexed, kept as text.
//! - [`privacy`]: the outbound view of an event: hashed email, no `org_id`/`user_id` unless the
//!   org asked for them, written by copying the event's members.
//! - [`hec`]: Splunk HTTP Event Collector envelopes and response codes.
//! - [`settings`]: per-org stream settings (URL, event and flow selection, headers, limits).
//! - [`template`]: the org's custom body template, parsed once and substituted structurally.
//! - [`config`]: merging `ELS_*` environment variables over file configuration.
//! - [`error`]: the crate's one error enum.

pub mod config;
pub mod error;
pub mod event;
pub mod hec;
pub mod ingest;
pub mod json;
pub mod privacy;
pub mod settings;
pub mod template;
pub mod topic;

pub use error::ModelError;
pub use event::{EventType, ExecutionEvent};
pub use settings::OrgSettings;
