#!/usr/bin/env bash
# Events/s through decode (JSON and Protobuf) and decode + join, samples/s through the learner, on a generated stream
# (default 1,000,000 impressions, the demo's world). Usage: bench/pipeline/run.sh [IMPRESSIONS] [CONFIG]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FRESHET_BENCH_BUILD_DIR:-$root/build}
n=${1:-1000000}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target freshet bench_stages >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/freshet-bench-pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/freshet" gen --out "$work/events.jsonl" --impressions "$n" --days 14 --seed 42 --duplicates 0.005 >/dev/null 2>&1
OPENBLAS_NUM_THREADS=1 "$build/bench_stages" "$work/events.jsonl" ${2:+"$2"}
