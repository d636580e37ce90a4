#!/usr/bin/env bash
# Run the whole ELS pipeline on this machine without Docker:
#   Apache Kafka (one KRaft node, deploy/kafka) -> els-producer (+ demo traffic)
#   -> els-consumer -> siem-sim
# Everything listens on 127.0.0.1; Kafka's log, ELS's state and all logs live in .els-run/.
#
#   deploy/scripts/run-local.sh            # until Ctrl-C
#   deploy/scripts/run-local.sh --for 60   # stop by itself after 60 s
#
# Environment: LOCAL_DIR (state dir), LOCAL_RATE (demo events/s, default 50),
# LOCAL_ORGS (default 10), LOCAL_{BROKER,SIM,PRODUCER,ADMIN}_PORT, LOCAL_CONTROLLER_PORT
# (Kafka's controller listener, default broker port + 1), LOCAL_PROFILE=release,
# LOCAL_BIN_DIR (use prebuilt binaries from this directory instead of building).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"

DURATION=""
if [ "${1:-}" = "--for" ]; then DURATION="${2:?--for needs seconds}"; fi

RUN_DIR="${LOCAL_DIR:-$ROOT/.els-run}"
BROKER_PORT="${LOCAL_BROKER_PORT:-9092}"
CONTROLLER_PORT="${LOCAL_CONTROLLER_PORT:-$((BROKER_PORT + 1))}"
SIM_PORT="${LOCAL_SIM_PORT:-8088}"
PRODUCER_PORT="${LOCAL_PRODUCER_PORT:-8080}"
ADMIN_PORT="${LOCAL_ADMIN_PORT:-9090}"
RATE="${LOCAL_RATE:-50}"
ORGS="${LOCAL_ORGS:-10}"
mkdir -p "$RUN_DIR/logs"

deploy/kafka/kafka.sh install
if [ -z "${LOCAL_BIN_DIR:-}" ]; then
  PROFILE="${LOCAL_PROFILE:-dev}"
  echo "==> building ELS ($PROFILE profile)"
  cargo build --profile "$PROFILE" -p els-producer -p els-consumer -p elsctl -p siem-sim
  [ "$PROFILE" = "dev" ] && BIN="$ROOT/target/debug" || BIN="$ROOT/target/$PROFILE"
else
  BIN="$LOCAL_BIN_DIR"
fi

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  echo "==> stopping"
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; sleep 0.5; done
  wait 2>/dev/null || true
  exit 0
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "port $1 did not open; see $RUN_DIR/logs" >&2
  exit 1
}

echo "==> broker (Apache Kafka $(deploy/kafka/kafka.sh version), KRaft, data in $RUN_DIR/kafka) on 127.0.0.1:$BROKER_PORT"
deploy/kafka/kafka.sh node --dir "$RUN_DIR/kafka" --port "$BROKER_PORT" \
  --controller-port "$CONTROLLER_PORT" >"$RUN_DIR/logs/broker.log" 2>&1 &
PIDS+=($!)
wait_port "$BROKER_PORT"
# Kafka's own topic tool; --if-not-exists keeps a second run's topic and its records.
deploy/kafka/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$BROKER_PORT" \
  --create --if-not-exists --topic els.events --partitions 3 --replication-factor 1 \
  >>"$RUN_DIR/logs/broker.log" 2>&1

echo "==> siem-sim (Splunk HEC) on 127.0.0.1:$SIM_PORT"
"$BIN/siem-sim" --listen "127.0.0.1:$SIM_PORT" >"$RUN_DIR/logs/siem-sim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT"

SETTINGS="$RUN_DIR/settings.json"
sed "s/127.0.0.1:8088/127.0.0.1:$SIM_PORT/" deploy/local/settings.json >"$SETTINGS"
ADMIN_TOKEN_FILE="$RUN_DIR/admin-token"
[ -s "$ADMIN_TOKEN_FILE" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ADMIN_TOKEN_FILE"
ADMIN_TOKEN=$(cat "$ADMIN_TOKEN_FILE")
# Key for encrypting auth headers at rest in the settings topic (kept in the state dir).
MASTER_KEY_FILE="$RUN_DIR/master.key"
[ -s "$MASTER_KEY_FILE" ] || echo "local:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$MASTER_KEY_FILE"

echo "==> els-consumer (admin API and /metrics on 127.0.0.1:$ADMIN_PORT)"
ELS_BROKERS="127.0.0.1:$BROKER_PORT" ELS_SETTINGS_FILE="$SETTINGS" ELS_DATA_DIR="$RUN_DIR/consumer-data" \
ELS_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" ELS_ADMIN_TOKEN="$ADMIN_TOKEN" \
ELS_MASTER_KEY_FILE="$MASTER_KEY_FILE" ELS_SSRF_ALLOW=127.0.0.1 \
  "$BIN/els-consumer" >"$RUN_DIR/logs/consumer.log" 2>&1 &
PIDS+=($!)
wait_port "$ADMIN_PORT"

echo "==> els-producer (ingest API on 127.0.0.1:$PRODUCER_PORT)"
ELS_BROKERS="127.0.0.1:$BROKER_PORT" ELS_LISTEN="127.0.0.1:$PRODUCER_PORT" \
  "$BIN/els-producer" serve >"$RUN_DIR/logs/producer.log" 2>&1 &
PIDS+=($!)
wait_port "$PRODUCER_PORT"

echo "==> demo traffic: $RATE events/s across $ORGS orgs"
"$BIN/els-producer" generate --target "http://127.0.0.1:$PRODUCER_PORT" --rate "$RATE" --orgs "$ORGS" \
  >"$RUN_DIR/logs/generator.log" 2>&1 &
PIDS+=($!)

cat <<INFO

ELS is running. Where to look:
  events at the SIEM:   curl -s http://127.0.0.1:$SIM_PORT/sim/stats
  last events:          curl -s 'http://127.0.0.1:$SIM_PORT/sim/events?limit=3'
  consumer metrics:     curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep ^els_
  producer metrics:     curl -s http://127.0.0.1:$PRODUCER_PORT/metrics
  post your own event:  curl -s -XPOST -H 'content-type: application/json' http://127.0.0.1:$PRODUCER_PORT/v1/events -d @event.json
  settings console:     http://127.0.0.1:$ADMIN_PORT/console  (admin token: cat $ADMIN_TOKEN_FILE)
  dead letters:         ELS_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT ELS_ADMIN_TOKEN=\$(cat $ADMIN_TOKEN_FILE) $BIN/elsctl dlq list
  raw Kafka (kcat):      kcat -b 127.0.0.1:$BROKER_PORT -L
  logs:                 $RUN_DIR/logs/
INFO

stats() { curl -s "http://127.0.0.1:$SIM_PORT/sim/stats" 2>/dev/null || echo '{}'; }
if [ -n "$DURATION" ]; then
  end=$((SECONDS + DURATION))
  while [ $SECONDS -lt $end ]; do sleep 5; echo "siem-sim: $(stats)"; done
else
  while true; do sleep 10; echo "siem-sim: $(stats)"; done
fi
