//! State that stands for finished offsets: the local sled store and the compacted changelog
//! topic that lets it outlive the instance.
//!
//! - `store.rs`: [`StateStore`], the one sled database (dead letters, parked events, meta),
//!   with the changelog attached; [`StoreHealth`], failing writes as readiness and liveness
//!   see them.
//! - `dead_letters.rs`: [`DeadLetters`], the dead-letter view: put (flushed and acknowledged
//!   before an offset may finish), list, get, remove, purge, the cluster-wide view's updates;
//!   a record that does not decode is reported and left out, never fatal to the rest.
//! - `record.rs`: the versioned dead-letter record ([`DeadLetter`], [`DeadLetterV1`]), read
//!   whatever the event's depth, its [`Reason`], the [`Filter`] of list/replay/purge, ids that
//!   name the input offset.
//! - `changelog.rs`: the state topic's producer, keys and parked-record encoding;
//!   `changelog/restore.rs` reads assigned partitions' parked events back,
//!   `changelog/follower.rs` keeps every instance's dead letters in view,
//!   `changelog/adopt.rs` hands state written without the changelog over once.

pub mod changelog;
pub mod dead_letters;
pub mod record;
pub mod store;

pub use dead_letters::{DeadLetters, Listing, Unreadable};
pub use record::{DeadLetter, DeadLetterV1, Filter, Reason};
pub use store::{StateStore, StoreHealth};
