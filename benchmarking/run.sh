#!/usr/bin/env bash
# `make bench`: standings throughput through a real broker with 1 and 2
# workers. Starts `pace pipeline` per run (release build), drives it with
# pace-bench, prints a Markdown table and writes target/bench/standings.json.
set -euo pipefail
brokers=$1
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/bench
mkdir -p "$out"
participants=${PACE_BENCH_PARTICIPANTS:-2000}
seconds=${PACE_BENCH_SECONDS:-300}
: > "$out/standings.jsonl"
for workers in 1 2; do
  prefix="bench-$(date +%s)-w$workers."
  data=$(mktemp -d)
  "$root/target/release/pace" pipeline --brokers "$brokers" --topic-prefix "$prefix" \
    --workers "$workers" --data-dir "$data" --log warn &
  pid=$!
  result=$("$root/target/release/pace-bench" --brokers "$brokers" --topic-prefix "$prefix" \
    --participants "$participants" --seconds "$seconds")
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$data"
  echo "{\"workers\":$workers,\"result\":$result}" >> "$out/standings.jsonl"
done
python3 - "$out/standings.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("| workers | points | participants | end-to-end points/s | consume ceiling points/s | changelog records |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    x = r["result"]
    print(f"| {r['workers']} | {x['points']:,} | {x['participants']:,} | {x['end_to_end_points_per_s']:,.0f} | {x['consume_ceiling_points_per_s']:,.0f} | {x['changes']:,} |")
PY
