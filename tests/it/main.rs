//! End-to-end tests across real processes (one test binary). Each test starts its own broker
//! on a free port, so tests are independent. Build the binaries first:
//! `cargo build --workspace --bins`.

mod delivery;
mod faults;
mod observability;
mod pipeline;
mod settings;
