#!/usr/bin/env bash
# Serving benchmark (a script, not a timed test): publishes a model of ~100 000 users and 5 000 ads
# to the Redis of the local stack (deploy/stack.sh up), then scores requests through the public
# serving API (include/freshet_serving.h): one candidate at a time and as one batch per request
# (freshet_serving_score_batch), printing request latency p50 / p99, impressions/s and row lookups/s,
# and the Redis memory the rows take (INFO memory used_memory per row) and how their hashes are encoded.
# Usage: bench/serving/run.sh [REDIS_HOST] [REDIS_PORT] [USERS]  (USERS: 100000 by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
host="${1:-127.0.0.1}" port="${2:-${FRESHET_REDIS_PORT:-16379}}" users="${3:-100000}"
build="${FRESHET_BENCH_BUILD_DIR:-/tmp/freshet-bench-build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFRESHET_SANITIZE=OFF >/dev/null
cmake --build "$build" -j2 --target fr_store >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c17 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/base" -I"$root/store" -I"$root/stream" -I"$root/learner" \
  -I"$root/include" "$root/bench/serving/bench_serving.c" -o "$build/bench_serving" "$build/libfr_store.a" \
  "$build/libfr_serving.a" "$build/libfr_stream.a" "$build/libfr_learner.a" \
  $(pkg-config --libs rocksdb hiredis jansson openblas libxxhash) -lpthread -lm
export OPENBLAS_NUM_THREADS=1
echo "== $(nproc) cores, $(redis-server --version | awk '{print $3}'), $(date -u +%FT%TZ), redis $host:$port"
"$build/bench_serving" "$host" "$port" "$users"
redis-cli -h "$host" -p "$port" --scan --pattern 'freshet-servebench*' | xargs -r redis-cli -h "$host" -p "$port" unlink >/dev/null
