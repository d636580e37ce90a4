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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# A hard bound, so a hung test fails the run instead of stalling it.
timeout --kill-after=30s 40m cargo test --workspace -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last lines are the doc-test summaries).
grep -E '^test result:' "$log" | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
  END { printf "tests: %d passed, %d failed\n", p, f }'
exit "$status"
