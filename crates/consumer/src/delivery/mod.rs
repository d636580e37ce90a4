//! The delivery engine: one event's way from Kafka to the org's SIEM, or to a dead letter.
//!
//! - `consume.rs`: the consume loop: read, parse, filter, hand to the org's queue (or park),
//!   turn completions into stored offsets, drain at shutdown.
//! - `watermark.rs`: per-partition contiguous watermarks: an offset is stored only when it
//!   and every lower one are finished.
//! - `rebalance.rs`: [`rebalance::RebalanceContext`] records what the group assigns and
//!   revokes ([`rebalance::Ownership`]), for the loop to apply.
//! - `lag.rs`: consumer lag per owned partition, for its gauge.
//! - `dispatch.rs`: per-org bounded queues and their workers; a full queue hands the job back.
//! - `queue.rs`: a stream's bounded queue, whose memory follows what it holds.
//! - `route.rs`: an event goes to its org's queue, or is parked (queue full, or the org has
//!   parked events: new ones wait behind them); parked events go back as queues drain.
//! - `park.rs`: a full org's events spill to sled (and the state changelog) and come back in
//!   offset order as its queue drains.
//! - `worker.rs`: one worker per active org: batching by count, bytes and linger, HEC batch
//!   splitting, dead letters; [`worker::Engine`] is what a loop's workers share.
//! - `ack.rs`: HEC indexer acknowledgement: batches accepted with an `ackId` wait (unfinished)
//!   until `/services/collector/ack` confirms them, and are re-sent after the timeout.
//! - `limits.rs`: the org's `max_events` limit (governor): delay or dead-letter the excess.
//! - `elastic.rs`: Elasticsearch `_bulk`: NDJSON bodies (`create`/`index` with `_id` = event
//!   id) and per-item answers (stored, duplicate, re-send, rejected), as data.
//! - `hec.rs`: what a permanent HEC answer means for its batch, as data (`decide`): one
//!   decision for whole-request errors, code 6's named event, halving 400s and 413s; the HEC
//!   data channel header.
//! - `retry.rs`: the retry policy as data (`classify`) and the retry loop with backoff.
//! - `oauth.rs`: OAuth2 client credentials: [`oauth::TokenCache`] fetches, caches and renews
//!   bearer tokens (single flight per credentials); its errors tell configuration from
//!   transient failures.
//! - `request.rs`: request bodies: HEC envelopes, one templated event, or batches (NDJSON,
//!   JSON arrays, Datadog entries, `_bulk` items) within the stream's caps.
//! - `batched.rs`: delivery to batched non-HEC streams: split on 400/413/422, Elasticsearch's
//!   per-item answers (only failed items re-sent, mapping errors dead-lettered alone).
//! - `siem.rs`: [`siem::SiemClient`], the HTTP client towards SIEMs: headers, gzip, capped
//!   answers, classification, request metrics; the engine reaches it through the
//!   [`siem::Deliver`] trait (`Services::deliver`).
//! - `ssrf.rs`: the SSRF guard on destinations (resolver filter, IP literal check,
//!   allow-list).
//! - `tests/`: the engine's unit tests, without processes: workers, limits, HEC splitting and
//!   park order against a fake SIEM ([`siem::Deliver`]) with paused time.

pub mod ack;
pub mod batched;
pub mod consume;
pub mod dispatch;
pub mod elastic;
pub mod hec;
pub mod lag;
pub mod limits;
pub mod oauth;
pub mod park;
pub mod queue;
pub mod rebalance;
pub mod request;
pub mod retry;
pub mod route;
pub mod siem;
pub mod ssrf;
pub mod watermark;
pub mod worker;

pub use siem::{Deliver, SiemClient};

#[cfg(test)]
mod tests;
