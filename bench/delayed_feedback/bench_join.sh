#!/usr/bin/env bash
# Joiner throughput and memory with N pending clicks (default 10 million), without spilling and,
# with MAX_CACHED > 0, spilling to a RocksDB checkpoint (join.max_cached_entries).
# Usage: bash bench/delayed_feedback/bench_join.sh [N] [MAX_CACHED]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build="${FRESHET_BENCH_BUILD_DIR:-/tmp/freshet-bench-build}"
out="$build/bench_join"
ckpt="${TMPDIR:-/tmp}/freshet-bench-join-ckpt"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFRESHET_SANITIZE=OFF >/dev/null
cmake --build "$build" -j2 --target fr_store fr_stream >/dev/null
# shellcheck disable=SC2046
cc -std=c17 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/stream" -I"$root/learner" -I"$root/store" \
    "$root/bench/delayed_feedback/bench_join.c" -o "$out" \
    "$build/libfr_stream.a" "$build/libfr_store.a" "$build/libfr_serving.a" "$build/libfr_stream.a" \
    "$build/libfr_learner.a" \
    $(pkg-config --libs rocksdb jansson openblas libxxhash) -lpthread -lm
rm -rf "$ckpt"
"$out" "${1:-10000000}" "${2:-0}" "$ckpt"
rm -rf "$ckpt"
