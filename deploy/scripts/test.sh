#!/usr/bin/env bash
# The one command that runs every check: installs the broker and Prometheus when missing,
# then formatting, lints, unit tests and end-to-end tests across real processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

deploy/scripts/install-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> building binaries for the end-to-end tests"
cargo build --workspace --bins
echo "==> cargo test"
# End-to-end tests start several processes each; two at a time suits a 2-core machine.
cargo test --workspace -- --test-threads="${ELS_TEST_THREADS:-2}"
