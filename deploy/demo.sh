#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: install what is missing, build, start a local
# Kafka broker and Redis, generate about a million impressions with known truth, load them into
# Kafka, run the daemon until it has consumed them, print what it learned next to the truth,
# and read the model back from Redis.
#   FRESHET_DEMO_IMPRESSIONS (default 1000000), FRESHET_DEMO_KEEP_STACK=1 leaves Kafka and Redis up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
impressions="${FRESHET_DEMO_IMPRESSIONS:-1000000}"
run_dir="${FRESHET_RUN_DIR:-$root/.run}"
demo="$run_dir/demo-$(date +%Y%m%d-%H%M%S)"
step() { printf '\n== %s\n' "$*"; }

step "installing what is missing"
bash "$root/deploy/install-deps.sh"
step "building"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target freshet freshetd
bin="$root/build/freshet"

step "starting Kafka and Redis"
t0=$(date +%s)
FRESHET_SKIP_INSTALL=1 bash "$root/deploy/stack.sh" up
echo "local stack up in $(( $(date +%s) - t0 )) s"
if [[ "${FRESHET_DEMO_KEEP_STACK:-0}" != 1 ]]; then trap 'FRESHET_SKIP_INSTALL=1 bash "$root/deploy/stack.sh" down' EXIT; fi

mkdir -p "$demo"
prefix="demo$(date +%s)"
FRESHET_TOPICS="$prefix-impressions,$prefix-clicks,$prefix-conversions" bash "$root/deploy/kafka.sh" create-topics
cat >"$demo/config.json" <<JSON
{
  "kafka": {"brokers": "127.0.0.1:${FRESHET_KAFKA_PORT:-19092}", "group_id": "$prefix",
            "topics": {"impressions": "$prefix-impressions", "clicks": "$prefix-clicks", "conversions": "$prefix-conversions"}},
  "checkpoint": {"dir": "$demo/state", "every_seconds": 10, "every_samples": 200000},
  "redis": {"host": "127.0.0.1", "port": ${FRESHET_REDIS_PORT:-16379}, "prefix": "$prefix", "keep_versions": 5},
  "status_every_seconds": 5,
  "metrics": {"listen": "127.0.0.1:${FRESHET_METRICS_PORT:-19464}"}
}
JSON

step "generating $impressions impressions (14 days of event time, known truth)"
"$bin" gen --out "$demo/events.jsonl" --truth "$demo/truth.tsv" --impressions "$impressions" --days 14 --seed 42 --duplicates 0.005
step "loading them into Kafka (key = impression id)"
"$bin" load "$demo/events.jsonl" -c "$demo/config.json"
step "running the daemon until it has consumed everything (meanwhile: curl -s http://127.0.0.1:${FRESHET_METRICS_PORT:-19464}/metrics)"
"$bin" run -c "$demo/config.json" --exit-when-idle 5 | tee "$demo/report.txt"
step "the generator's truth (the best any model can do on this stream)"
"$bin" truth "$demo/truth.tsv" -c "$demo/config.json" | tee "$demo/truth.txt"
step "the checkpoint"
"$bin" inspect "$demo/state"
step "reading the model back from Redis and scoring with it"
"$bin" pull -c "$demo/config.json" --events "$demo/events.jsonl" --limit 5 --state "$demo/state"
echo
echo "everything is in $demo"
