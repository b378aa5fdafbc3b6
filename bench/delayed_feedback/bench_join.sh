#!/usr/bin/env bash
# Joiner throughput and memory with N pending clicks (default 10 million). Standalone: the join
# links without the rest of the daemon.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${TMPDIR:-/tmp}/freshet-bench-join
cc -std=c17 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/daemon" -I"$root/learner" \
    "$root/bench/delayed_feedback/bench_join.c" "$root/daemon/fr_join.c" -o "$out"
"$out" "${1:-10000000}"
