#!/usr/bin/env bash
# Model benchmark (a script, not a timed test): every architecture trained on the same generated
# stream by `freshet replay`, progressive AUC / log loss per task and scenario next to the
# generator's truth (`freshet truth`), then the learner's speed against the sgemm rate
# (bench_models.c). Needs no Kafka and no Redis.
# Usage: bench/models/run.sh [IMPRESSIONS] [SEED]      (defaults 300000 and 42)
# Output: the raw tables, then a markdown summary (bench/models/README.md has one, with comments).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
n="${1:-300000}" seed="${2:-42}"
build="${FRESHET_BENCH_BUILD_DIR:-/tmp/freshet-bench-build}"
work="$(mktemp -d "${TMPDIR:-/tmp}/freshet-bench-models.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFRESHET_SANITIZE=OFF >/dev/null
cmake --build "$build" -j2 --target freshet fr_daemon >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c17 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/base" -I"$root/store" -I"$root/learner" -I"$root/daemon" \
  -I"$root/stream" "$root/bench/models/bench_models.c" -o "$build/bench_models" "$build/libfr_daemon.a" \
  "$build/libfr_stream.a" "$build/libfr_sim.a" "$build/libfr_store.a" "$build/libfr_serving.a" \
  "$build/libfr_stream.a" \
  "$build/libfr_learner.a" $(pkg-config --libs rocksdb hiredis jansson openblas libxxhash rdkafka) -lpthread -lm
export OPENBLAS_NUM_THREADS=1
fr="$build/freshet"

# name|model section
configs=(
  'shared_bottom|{"architecture": "shared_bottom"}'
  'mmoe|{"architecture": "mmoe"}'
  'mmoe_seed2|{"architecture": "mmoe", "seed": 2}'
  'ple|{"architecture": "ple"}'
  'taml|{"architecture": "taml"}'
  'taml_learner_loss|{"architecture": "taml", "learner_loss": 1}'
  'mmoe_dffi|{"architecture": "mmoe", "scenario_dim": 72, "dffi_layers": 1}'
  'mmoe_dfub|{"architecture": "mmoe", "dfub_heads": 2, "dfub_target": "ad_id", "dfub_history": "recent_ads"}'
  'taml_dffm|{"architecture": "taml", "n_scenario_experts": 1, "scenario_dim": 72, "dffi_layers": 1, "dfub_heads": 2, "dfub_target": "ad_id", "dfub_history": "recent_ads"}'
  'taml_dffm_causal|{"architecture": "taml", "n_scenario_experts": 1, "scenario_dim": 72, "dffi_layers": 1, "dfub_heads": 2, "dfub_target": "ad_id", "dfub_history": "recent_ads", "causal_adv": 0.1, "causal_orth": 0.1}'
  'mmoe_ftrl|{"architecture": "mmoe", "emb_optimizer": "ftrl"}'
)
if [[ -n "${FRESHET_BENCH_EXTRA:-}" ]]; then
  while IFS= read -r line; do [[ -n "$line" ]] && configs+=("$line"); done <<<"$FRESHET_BENCH_EXTRA"
fi

echo "== $(nproc) cores, $(date -u +%FT%TZ), $n impressions, seed $seed, users 1000, ads 200, 10 days"
"$fr" gen --out "$work/events.jsonl" --truth "$work/truth.tsv" --impressions "$n" --seed "$seed" --days 10 \
  --users 1000 --ads 200 >/dev/null 2>&1
"$fr" truth "$work/truth.tsv" | tee "$work/truth.txt"

for entry in "${configs[@]}"; do
  name="${entry%%|*}" model="${entry#*|}"
  cat >"$work/$name.json" <<JSON
{"checkpoint": {"dir": "$work/state-$name", "every_seconds": 0, "every_samples": 0},
 "redis": {"host": ""}, "model": $model}
JSON
  start=$(date +%s.%N)
  "$fr" replay "$work/events.jsonl" -c "$work/$name.json" --no-publish >"$work/$name.out" 2>&1
  end=$(date +%s.%N)
  "$build/bench_models" "$work/$name.json" 200000 >"$work/$name.speed"
  echo "== $name: $model (replay $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s)"
  grep -A 20 '^progressive' "$work/$name.out" | grep -E '^ +(task|ctr|cvr|ctcvr) '
  cat "$work/$name.speed"
done

# Markdown summary: AUC per task and scenario (log loss for "all"), the truth first.
scen="all video browser music third_party"
row() { # FILE: the metrics table -> "auc auc ... | ll ll ll"
  awk -v scen="$scen" '
    $1 ~ /^(ctr|cvr|ctcvr)$/ && NF >= 5 { auc[$1 "/" $2] = $4; ll[$1 "/" $2] = $5 }
    END {
      n = split(scen, s, " "); out = ""
      split("ctr ctcvr cvr", t, " ")
      for (i = 1; i <= 3; i++) for (j = 1; j <= n; j++) out = out " | " auc[t[i] "/" s[j]]
      for (i = 1; i <= 3; i++) out = out " | " ll[t[i] "/all"]
      print out
    }' "$1"
}
echo
echo "| config | CTR AUC all | video | browser | music | third_party (cold) | CTCVR AUC all | video | browser | music | third_party (cold) | CVR AUC all | video | browser | music | third_party (cold) | CTR LL | CTCVR LL | CVR LL | dense params | FLOPs/ex | learner ex/s | dense GFLOP/s | sgemm GFLOP/s | share |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
echo "| truth (Bayes) $(row "$work/truth.txt") | | | | | | |"
for entry in "${configs[@]}"; do
  name="${entry%%|*}"
  sp="$work/$name.speed"
  f() { grep -o "$1=[0-9.]*" "$sp" | cut -d= -f2; }
  echo "| $name $(row "$work/$name.out") | $(f params) | $(f flops_per_example) | $(f examples_per_s) | $(f dense_gflops) | $(f sgemm_1024_gflops) | $(f share_of_peak) |"
done
