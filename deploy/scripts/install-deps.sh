#!/usr/bin/env bash
# Install what the tests and the local run need, skipping what is already there:
#   - tansu, the Kafka-compatible broker (Rust, Apache-2.0), pinned, from crates.io
#   - Prometheus and promtool, and docker-compose (for `docker-compose config`), from Debian
#   - Chromium, chromium-driver and Node.js from Debian, playwright-core from npm (browser test)
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v tansu >/dev/null 2>&1 || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "==> installing tansu $TANSU_VERSION (takes ~10 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# The settings console's browser test (tests/it/console.rs): Debian's Chromium and its driver,
# Node.js for the playwright-core script in tests/browser.
[ -x /usr/bin/chromium ] || need_apt+=(chromium chromium-driver)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} from Debian"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

browser_dir="$(cd "$(dirname "$0")/../.." && pwd)/tests/browser"
if [ ! -d "$browser_dir/node_modules" ]; then
  echo "==> installing playwright-core for the browser test (npm, pinned in tests/browser)"
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1   # it drives Debian's /usr/bin/chromium
  if [ -f "$browser_dir/package-lock.json" ]; then
    (cd "$browser_dir" && npm ci --no-audit --no-fund)
  else
    (cd "$browser_dir" && npm install --no-audit --no-fund)
  fi
fi
