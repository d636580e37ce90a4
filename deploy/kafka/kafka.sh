#!/usr/bin/env bash
# Apache Kafka for ELS (tests, local run, benchmark), from deploy/kafka/lib (see pom.xml).
#
#   deploy/kafka/kafka.sh install        fetch the pinned release from Maven Central (once)
#   deploy/kafka/kafka.sh version        print the pinned release
#   deploy/kafka/kafka.sh node [options] format the node's storage if new, then run it in the
#                                        foreground (exec java -cp ... kafka.Kafka)
#   deploy/kafka/kafka.sh tool CLASS ... run one of Kafka's tools, e.g.
#       kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# node options (KRaft, combined broker+controller, everything on 127.0.0.1):
#   --dir DIR              data directory (server.properties, logs/; kept across restarts)
#   --port P               client listener
#   --controller-port C    controller listener
#   --node-id N            default 1
#   --voters V             controller quorum, e.g. 1@127.0.0.1:9093,2@127.0.0.1:9095,...
#                          (default: this node alone)
#   --cluster-id ID        the same for every node of a cluster (default: a fixed one)
#   --set key=value        any further broker property (repeatable)
# Environment: KAFKA_HEAP (default -Xms256m -Xmx768m), JAVA (default: java on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lib="$here/lib"
version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml"; }
JAVA="${JAVA:-java}"

installed() { [ -f "$lib/kafka_2.13-$(version).jar" ] && [ -f "$lib/.complete-$(version)" ]; }

install() {
  installed && return 0
  echo "==> fetching Apache Kafka $(version) from Maven Central (deploy/kafka/pom.xml)" >&2
  command -v mvn >/dev/null 2>&1 || {
    echo "Maven (mvn) is needed to fetch Kafka: apt-get install maven" >&2; exit 1; }
  rm -rf "$lib"
  # (-q still prints colour resets; they are stripped.)
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  touch "$lib/.complete-$(version)"
}

java_run() {
  installed || install
  # Kafka's own scripts pass these: headless, IPv4 loopback, G1 with short pauses.
  exec "$JAVA" ${KAFKA_HEAP:--Xms256m -Xmx768m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    -cp "$lib/*" "$@"
}

node() {
  local dir="" port="" cport="" id=1 voters="" cluster="ZWxzLWthZmthLWxvY2FsMQ" extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) dir="$2"; shift 2;;
      --port) port="$2"; shift 2;;
      --controller-port) cport="$2"; shift 2;;
      --node-id) id="$2"; shift 2;;
      --voters) voters="$2"; shift 2;;
      --cluster-id) cluster="$2"; shift 2;;
      --set) extra+=("$2"); shift 2;;
      *) echo "kafka.sh node: unknown option $1" >&2; exit 2;;
    esac
  done
  [ -n "$dir" ] && [ -n "$port" ] && [ -n "$cport" ] || {
    echo "kafka.sh node: --dir, --port and --controller-port are required" >&2; exit 2; }
  [ -n "$voters" ] || voters="$id@127.0.0.1:$cport"
  local nodes; nodes=$(echo "$voters" | tr ',' '\n' | grep -c .)
  local rf=$(( nodes >= 3 ? 3 : 1 )) isr=$(( nodes >= 3 ? 2 : 1 ))
  mkdir -p "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/logs
# ELS creates its topics; a typo'd topic name must not appear silently.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# A group forms as soon as its first member joins (tests and demos start one at a time).
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=1000
group.min.session.timeout.ms=1000
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
num.network.threads=2
num.io.threads=4
PROPS
  local kv
  for kv in "${extra[@]}"; do echo "$kv" >>"$dir/server.properties"; done
  installed || install
  if [ ! -f "$dir/logs/meta.properties" ]; then
    "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$here/log4j2.yaml" -cp "$lib/*" \
      kafka.tools.StorageTool format --ignore-formatted -t "$cluster" -c "$dir/server.properties" >/dev/null
  fi
  java_run kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
  install) install;;
  version) version;;
  node) shift; node "$@";;
  tool) shift; java_run "$@";;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2;;
esac
