#!/usr/bin/env bash
# Runs one fuzz target for FRESHET_FUZZ_SECONDS (default 6) from its seed corpus.
# Usage: run_one.sh TARGET SEED_DIR WORK_DIR
# New inputs go to WORK_DIR/corpus (never into the seed directory of the source tree), a crash,
# leak or timeout to WORK_DIR/artifacts/; the exit status is libFuzzer's (0: nothing found).
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 TARGET SEED_DIR WORK_DIR" >&2
  exit 2
fi
bin=$1 seeds=$2 work=$3
mkdir -p "$work/corpus" "$work/artifacts"
# -rss_limit_mb / -malloc_limit_mb: a decoder that allocates what a hostile length asks for is a
# finding, not a machine that swaps. -timeout: one input taking 60 s is a hang (every input runs in
# milliseconds; a busy machine has stalled a calloc for 25 s).
exec "$bin" -max_total_time="${FRESHET_FUZZ_SECONDS:-6}" -print_final_stats=1 -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -timeout=60 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
