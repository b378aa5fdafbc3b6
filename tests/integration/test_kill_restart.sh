#!/usr/bin/env bash
# The daemon killed with SIGKILL mid-stream and restarted ends with exactly the counts of an
# uninterrupted run over the same topics, and Redis then serves exactly its last checkpoint.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up

prefix="kr$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 150000 --days 10 --seed 23 --duplicates 0.01
fr_topics "$prefix"
fr_config "$fr_work/a.json" "$prefix" "$fr_work/state-a"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/a.json"
"$FRESHET_BIN" run -c "$fr_work/a.json" --exit-when-idle 4 >"$fr_work/report-a.txt" 2>"$fr_work/a.log" ||
  { cat "$fr_work/a.log"; fr_fail "uninterrupted run failed"; }

fr_config "$fr_work/b.json" "$prefix" "$fr_work/state-b" "$prefix" # publishes: verified after the kills
fr_cleanup_hooks+=("redis-cli -p $FRESHET_REDIS_PORT --scan --pattern '$prefix:*' | xargs -r redis-cli -p $FRESHET_REDIS_PORT unlink >/dev/null")
kills=0 mid_stream=0
total=$(grep -c . "$fr_work/events.jsonl")
checkpointed() { "$FRESHET_BIN" inspect "$fr_work/state-b" 2>/dev/null | fr_field consumed /dev/stdin || true; }
for round in 1 2 3; do
  before=$(checkpointed)
  "$FRESHET_BIN" run -c "$fr_work/b.json" >>"$fr_work/b.out" 2>>"$fr_work/b.log" &
  pid=$!
  # Kill at a random moment after this incarnation has checkpointed progress of its own.
  for _ in $(seq 1 300); do
    now=$(checkpointed)
    [[ -n "$now" && "$now" != "${before:-}" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep "0.$((RANDOM % 10))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  done_so_far=$(checkpointed)
  echo "round $round: killed with ${done_so_far:-0} of $total events checkpointed"
  if [[ -n "$done_so_far" && "$done_so_far" -gt 0 && "$done_so_far" -lt "$total" ]]; then mid_stream=$((mid_stream + 1)); fi
done
# SIGTERM: the daemon finishes the message in hand, checkpoints and exits 0.
before=$(checkpointed)
"$FRESHET_BIN" run -c "$fr_work/b.json" >>"$fr_work/b.out" 2>"$fr_work/term.log" &
pid=$!
for _ in $(seq 1 300); do
  now=$(checkpointed)
  [[ -n "$now" && "$now" != "${before:-}" ]] && break
  sleep 0.1
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc == 0 ]] || { cat "$fr_work/term.log"; fr_fail "SIGTERM: exit code $rc, expected 0"; }
grep -q 'stop requested' "$fr_work/term.log" || fr_fail "SIGTERM: the daemon did not say it was stopping"
fr_pass "SIGTERM: clean stop with exit 0 at $(checkpointed) of $total events"

"$FRESHET_BIN" run -c "$fr_work/b.json" --exit-when-idle 4 >"$fr_work/report-b.txt" 2>>"$fr_work/b.log" ||
  { cat "$fr_work/b.log"; fr_fail "restarted run failed"; }
[[ $mid_stream -ge 2 ]] || fr_fail "only $mid_stream kills landed mid-stream; make the stream longer"

if ! diff "$fr_work/report-a.txt" "$fr_work/report-b.txt"; then
  fr_fail "counts or metrics after $kills kills differ from the uninterrupted run"
fi
fr_accounting_ok "$fr_work/report-b.txt" || fr_fail "accounting does not balance after restarts"
fr_pass "$kills SIGKILLs and restarts: counts and progressive metrics identical to the uninterrupted run"
fr_verify "after $kills SIGKILLs and restarts" "$fr_work/b.json"
# Samples are emitted in (deadline, id) order whatever the interleaving of partitions, and batches
# are cut by count, so even the parameters agree bit for bit.
da=$("$FRESHET_BIN" inspect "$fr_work/state-a" | awk '/^digest/ { print $2 }')
db=$("$FRESHET_BIN" inspect "$fr_work/state-b" | awk '/^digest/ { print $2 }')
[[ -n "$da" && "$da" == "$db" ]] || fr_fail "checkpoint digests differ: $da vs $db"
fr_pass "bit-identical checkpoints ($da)"
