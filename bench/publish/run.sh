#!/usr/bin/env bash
# Publish and checkpoint benchmark (a script, not a timed test). Builds Freshet without sanitizers,
# then, against the Redis of the local stack (deploy/stack.sh up):
#   1. redis-benchmark -P 64 -t hset (as shipped, and with 100 000 distinct fields of 52-byte values, the
#      size of a dim-8 row), then full pushes of ~100 000 rows by fr_publish and by the publisher thread;
#   2. checkpoint time (encode + RocksDB commit with fsync) against the number of dirty rows.
# Usage: bench/publish/run.sh [REDIS_HOST] [REDIS_PORT]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
host="${1:-127.0.0.1}" port="${2:-${FRESHET_REDIS_PORT:-16379}}"
build="${FRESHET_BENCH_BUILD_DIR:-/tmp/freshet-bench-build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFRESHET_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fr_store >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c17 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/base" -I"$root/store" -I"$root/stream" -I"$root/learner" \
  -I"$root/include" "$root/bench/publish/bench_publish.c" -o "$build/bench_publish" "$build/libfr_store.a" \
  "$build/libfr_serving.a" "$build/libfr_stream.a" "$build/libfr_learner.a" \
  $(pkg-config --libs rocksdb hiredis jansson openblas libxxhash) -lpthread -lm
export OPENBLAS_NUM_THREADS=1
echo "== $(nproc) cores, $(redis-server --version | awk '{print $3}'), $(date -u +%FT%TZ)"
echo "== redis-benchmark -P 64 -t hset -n 200000 (one field, 3-byte value)"
redis-benchmark -h "$host" -p "$port" -P 64 -t hset -n 200000 -q
echo "== redis-benchmark -P 64 -t hset -n 200000 -r 100000 -d 52 (distinct fields, row-sized values)"
redis-benchmark -h "$host" -p "$port" -P 64 -t hset -n 200000 -r 100000 -d 52 -q
echo "== freshet"
"$build/bench_publish" "$host" "$port" "${TMPDIR:-/tmp}/freshet-bench-ckpt"
redis-cli -h "$host" -p "$port" --scan --pattern 'freshet-bench*' | xargs -r redis-cli -h "$host" -p "$port" unlink >/dev/null
redis-cli -h "$host" -p "$port" del myhash >/dev/null
rm -rf "${TMPDIR:-/tmp}/freshet-bench-ckpt"
