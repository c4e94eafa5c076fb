#!/usr/bin/env bash
# Real Apache Kafka for tests and local runs: one KRaft node on 127.0.0.1.
#
#   kafka.sh fetch   resolve the broker's jars from Maven Central (pom.xml beside this file)
#   kafka.sh up      fetch if needed, format storage, start, wait until it answers
#   kafka.sh down    stop it (SIGTERM, then SIGKILL after 30 s) and delete its data
#   kafka.sh stop    stop it the same way and keep its data (`up` brings it back)
#   kafka.sh status  say whether it runs
#
# Environment: PACE_KAFKA_PORT (default 19092; the controller uses port+1),
# PACE_KAFKA_DIR (default target/kafka under the workspace).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${PACE_KAFKA_PORT:-19092}
cport=$((port + 1))
dir=${PACE_KAFKA_DIR:-$root/target/kafka}
libs=$dir/libs
data=$dir/data-$port
log=$dir/broker-$port.log
pidf=$dir/broker-$port.pid
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")

say() { printf 'kafka: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$libs/.complete-$version" ]; then return; fi
  command -v mvn >/dev/null || { say "mvn not found (apt-get install maven)"; exit 1; }
  say "fetching Apache Kafka $version from Maven Central"
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  touch "$libs/.complete-$version"
}

running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

up() {
  fetch
  if running; then say "already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; return; fi
  mkdir -p "$data"
  cat > "$dir/server-$port.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=67108864
PROPS
  cat > "$dir/log4j2.properties" <<'LOG'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
LOG
  local java=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$libs/*")
  if [ ! -f "$data/meta.properties" ]; then
    local id
    id=$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server-$port.properties" >/dev/null
  fi
  say "starting Apache Kafka $version (KRaft) on 127.0.0.1:$port; log in $log"
  nohup "${java[@]}" kafka.Kafka "$dir/server-$port.properties" >"$log" 2>&1 &
  echo $! >"$pidf"
  for _ in $(seq 1 240); do
    if ! running; then say "broker exited during start-up:"; tail -n 40 "$log" >&2; exit 1; fi
    if answers && grep -q "Kafka Server started" "$log"; then
      grep -m1 -o "Kafka version: .*" "$log" | sed 's/^/kafka: broker says /' >&2 || true
      say "up on 127.0.0.1:$port"
      return
    fi
    sleep 0.5
  done
  say "broker did not answer within 120 s:"; tail -n 40 "$log" >&2; down; exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped broker on 127.0.0.1:$port"
  fi
  rm -f "$pidf"
}

down() {
  stop
  rm -rf "$data"
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidf"))"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 fetch|up|down|stop|status" >&2; exit 2 ;;
esac
