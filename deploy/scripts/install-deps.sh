#!/usr/bin/env bash
# Install what the tests and the local run need, skipping what is already there:
#   - Apache Kafka (pinned in deploy/kafka/pom.xml) from Maven Central, with Maven and a
#     Java 17+ runtime from Debian when missing
#   - Prometheus and promtool, and docker-compose (for `docker-compose config`), from Debian
#   - kcat from Debian and confluent-kafka from PyPI (the raw-producer test: plain Kafka
#     clients other than ELS's own write to the events topic)
#   - Chromium, chromium-driver and Node.js from Debian, playwright-core from npm (browser test)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
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

# Apache Kafka itself: jars from Maven Central into deploy/kafka/lib (skipped when present).
"$root/deploy/kafka/kafka.sh" install

# confluent-kafka, schemathesis and the official Elasticsearch and Datadog clients (PyPI) in
# a venv of their own, pinned in tests/python/requirements.txt.
venv="$root/tests/python/.venv"
if [ ! -x "$venv/bin/python" ] \
  || ! "$venv/bin/python" -c 'import confluent_kafka, schemathesis, elasticsearch, datadog_api_client' 2>/dev/null; then
  echo "==> installing confluent-kafka (raw-producer test), schemathesis (OpenAPI test), elasticsearch and datadog-api-client (siem-sim test) from PyPI, pinned in tests/python"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/python/requirements.txt"
fi

browser_dir="$root/tests/browser"
if [ ! -d "$browser_dir/node_modules" ]; then
  echo "==> installing playwright-core for the browser test (npm, pinned in tests/browser)"
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1   # it drives Debian's /usr/bin/chromium
  if [ -f "$browser_dir/package-lock.json" ]; then
    (cd "$browser_dir" && npm ci --no-audit --no-fund)
  else
    (cd "$browser_dir" && npm install --no-audit --no-fund)
  fi
fi
