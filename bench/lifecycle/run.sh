#!/usr/bin/env bash
# Embedding lifecycle benchmark (a script, not a timed test). Builds Freshet without sanitizers, then
# prints: memory per row; checkpoint time against dirty rows (1k..1M) without and with admission
# filters; redis-benchmark -P 64 HSET next to fr_publish's rows/s (bench/publish); freshness under
# a steady paced load at two checkpoint cadences. Uses the Redis of the local stack (keys under
# freshet-lcbench*, removed at the end) and a scratch RocksDB directory. Method: README.md.
# Usage: bench/lifecycle/run.sh [REDIS_HOST] [REDIS_PORT]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
host="${1:-127.0.0.1}" port="${2:-${FRESHET_REDIS_PORT:-16379}}"
build="${FRESHET_BENCH_BUILD_DIR:-/tmp/freshet-bench-lifecycle-build}"
scratch="${TMPDIR:-/tmp}/freshet-bench-lifecycle"
rate="${FRESHET_BENCH_RATE:-20000}" seconds="${FRESHET_BENCH_SECONDS:-20}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFRESHET_SANITIZE=OFF >/dev/null
cmake --build "$build" -j2 --target fr_store >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c17 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/base" -I"$root/store" -I"$root/stream" -I"$root/learner" \
  -I"$root/include" "$root/bench/lifecycle/bench_lifecycle.c" -o "$build/bench_lifecycle" "$build/libfr_store.a" \
  "$build/libfr_serving.a" "$build/libfr_stream.a" "$build/libfr_learner.a" \
  $(pkg-config --libs rocksdb hiredis jansson openblas libxxhash) -lpthread -lm
export OPENBLAS_NUM_THREADS=1
cleanup() {
  redis-cli -h "$host" -p "$port" --scan --pattern 'freshet-lcbench*' | xargs -r redis-cli -h "$host" -p "$port" unlink >/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT
echo "== $(nproc) cores, $(redis-server --version | awk '{print $3}'), $(date -u +%FT%TZ)"
echo "== memory per row"
"$build/bench_lifecycle" memory
echo "== checkpoint time against dirty rows (model of 1M rows, dim 8, 9 tables; 3 runs each)"
"$build/bench_lifecycle" ckpt "$scratch"
echo "== push rows/s next to redis-benchmark (same run)"
echo -n "redis-benchmark -P 64 -t hset -n 200000: "
redis-benchmark -h "$host" -p "$port" -P 64 -t hset -n 200000 -q | tr '\r' '\n' | grep 'requests per second'
echo -n "redis-benchmark -P 64 -t hset -n 200000 -r 100000 -d 52: "
redis-benchmark -h "$host" -p "$port" -P 64 -t hset -n 200000 -r 100000 -d 52 -q | tr '\r' '\n' | grep 'requests per second' 
redis-cli -h "$host" -p "$port" del myhash >/dev/null
FRESHET_BENCH_BUILD_DIR="$build" bash "$root/bench/publish/run.sh" "$host" "$port" | grep -E '^(push|pubq)'
echo "== freshness: $rate samples/s for $seconds s, checkpoint + hand-over every 1 s, then every 5 s"
"$build/bench_lifecycle" fresh "$host" "$port" "$scratch" "$rate" "$seconds" 1
"$build/bench_lifecycle" fresh "$host" "$port" "$scratch" "$rate" "$seconds" 5
