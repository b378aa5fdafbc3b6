#!/usr/bin/env bash
# The daemon killed with SIGKILL mid-stream and restarted ends with exactly the counts of an
# uninterrupted run over the same topics.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up

prefix="kr$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 60000 --days 10 --seed 23 --duplicates 0.01
fr_topics "$prefix"
fr_config "$fr_work/a.json" "$prefix" "$fr_work/state-a"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/a.json"
"$FRESHET_BIN" run -c "$fr_work/a.json" --exit-when-idle 4 >"$fr_work/report-a.txt" 2>"$fr_work/a.log" ||
  { cat "$fr_work/a.log"; fr_fail "uninterrupted run failed"; }

fr_config "$fr_work/b.json" "$prefix" "$fr_work/state-b"
kills=0
for delay in 1.5 2.5 2; do
  "$FRESHET_BIN" run -c "$fr_work/b.json" >>"$fr_work/b.out" 2>>"$fr_work/b.log" &
  pid=$!
  sleep "$delay"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
done
"$FRESHET_BIN" run -c "$fr_work/b.json" --exit-when-idle 4 >"$fr_work/report-b.txt" 2>>"$fr_work/b.log" ||
  { cat "$fr_work/b.log"; fr_fail "restarted run failed"; }
[[ $kills -ge 1 ]] || fr_fail "the daemon finished before it could be killed; make the stream longer"

# Everything but the metrics (which depend on the order partitions interleave) must match exactly.
counts() { grep -v '^  \(ctr\|cvr\|ctcvr\|task\) ' "$1" | grep -v '^progressive'; }
if ! diff <(counts "$fr_work/report-a.txt") <(counts "$fr_work/report-b.txt"); then
  fr_fail "counts after $kills kills differ from the uninterrupted run"
fi
fr_accounting_ok "$fr_work/report-b.txt" || fr_fail "accounting does not balance after restarts"
fr_pass "$kills SIGKILLs and restarts: counts identical to the uninterrupted run"
