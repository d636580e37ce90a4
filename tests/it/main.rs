//! End-to-end tests across real processes (one test binary). Each test starts its own broker
//! on a free port, so tests are independent. Build the binaries first:
//! `cargo build --workspace --bins`.

// The tests print their figures (events, duplicates, latencies) on purpose.
#![allow(clippy::print_stdout)]

mod console;
mod delivery;
mod deploy_files;
mod destinations;
mod event_types;
mod failover;
mod faults;
mod hardening;
mod hardening_consumer;
mod hec;
mod observability;
mod openapi;
mod pipeline;
mod scaleout;
mod settings;
mod streams;
mod tokens;
