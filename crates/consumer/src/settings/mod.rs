//! Org stream settings: what each org streams, where, and how.
//!
//! - `store.rs`: [`SettingsStore`], every org's validated settings in memory, with each org's
//!   template, URL and headers prepared once ([`OrgRuntime`]); loaded from the settings file,
//!   fed by the topic, written through it.
//! - `topic.rs`: the compacted settings topic shared by all instances: versioned records,
//!   the admin API's writer, the follower that applies every instance's writes.
//! - `crypto.rs`: [`crypto::Keyring`]: auth header values sealed with XChaCha20-Poly1305 (org
//!   id as associated data, key ids for rotation).

pub mod crypto;
pub mod store;
pub mod topic;

pub use store::{OrgRuntime, SettingsFile, SettingsStore};
