#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# A RocksDB write error mid-run (the WAL append fails with EFBIG under RLIMIT_FSIZE, exactly as a full
# disk fails it; SIGXFSZ is ignored so the write returns the error instead of killing the process):
# consumption stops with a clear message and a non-zero exit, the last good checkpoint is intact, and
# a restart without the fault ends bit-identical (same digest, same counts) to an uninterrupted run.
# Uses `freshet replay` (the same pipeline and checkpoint code as the Kafka daemon, and deterministic,
# so the comparison can be by digest). The faulty run publishes to a redis-server of its own: after the restart,
# Redis serves exactly the last checkpoint (freshet verify). No broker needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 40000 --days 4 --seed 23 --duplicates 0.01 2>/dev/null
lines=$(grep -c . "$fr_work/events.jsonl")
# cfg FILE STATE [REDIS]: REDIS is the "redis" object's members (default: publishing off).
cfg() {
  local redis=${3:-'"host": ""'}
  cat >"$1" <<JSON
{"checkpoint": {"dir": "$2", "every_seconds": 1, "every_samples": 3000}, "redis": {$redis}}
JSON
}
fr_private_redis
cfg "$fr_work/ref.json" "$fr_work/ref"
cfg "$fr_work/chaos.json" "$fr_work/chaos" '"host": "127.0.0.1", "port": '"$fr_redis_port"', "prefix": "chaos"'

"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/ref.json" >"$fr_work/ref.txt" 2>"$fr_work/ref.log" ||
  { cat "$fr_work/ref.log"; fr_fail "uninterrupted replay failed"; }
"$FRESHET_BIN" inspect "$fr_work/ref" >"$fr_work/ref.inspect"
wal=$(find "$fr_work/ref" -name '*.log' -size +1k -printf '%s\n' | sort -n | tail -n 1)

# Files may grow to a tenth of what the whole run writes: a few checkpoints succeed, then one fails.
limit=$((wal / 10))
set +e
(trap '' XFSZ; exec prlimit --fsize="$limit" "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/chaos.json" \
  >"$fr_work/chaos.txt" 2>"$fr_work/chaos.log")
rc=$?
set -e
tail -n 2 "$fr_work/chaos.log"
[[ $rc -ne 0 ]] || fr_fail "the run with a failing disk exited 0"
grep -q 'checkpoint not written; the daemon must stop consuming' "$fr_work/chaos.log" ||
  fr_fail "no clear message about the failed checkpoint"
grep -q 'File too large' "$fr_work/chaos.log" || fr_fail "the message does not name the cause"
"$FRESHET_BIN" inspect "$fr_work/chaos" >"$fr_work/stopped.inspect" || fr_fail "the last good checkpoint does not open"
stopped=$(fr_field consumed "$fr_work/stopped.inspect")
(( stopped > 0 && stopped < lines )) || fr_fail "expected a checkpoint part-way, consumed=$stopped of $lines"
fr_pass "write error (fsize limit $limit bytes): exit $rc, clear message, last checkpoint intact at $stopped of $lines events"

"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/chaos.json" >"$fr_work/resumed.txt" 2>"$fr_work/resumed.log" ||
  { cat "$fr_work/resumed.log"; fr_fail "the restart without the fault failed"; }
grep -q 'resuming' "$fr_work/resumed.log" || fr_fail "the restart did not resume from the checkpoint"
"$FRESHET_BIN" inspect "$fr_work/chaos" >"$fr_work/chaos.inspect"
for k in consumed rejected samples_trained samples_buffered; do
  [[ "$(fr_field "$k" "$fr_work/chaos.inspect")" == "$(fr_field "$k" "$fr_work/ref.inspect")" ]] ||
    fr_fail "$k differs: $(fr_field "$k" "$fr_work/chaos.inspect") after the fault, $(fr_field "$k" "$fr_work/ref.inspect") uninterrupted"
done
want=$(awk '/^digest/ { print $2 }' "$fr_work/ref.inspect")
got=$(awk '/^digest/ { print $2 }' "$fr_work/chaos.inspect")
[[ -n "$want" && "$want" == "$got" ]] || fr_fail "digest $got after the fault, $want uninterrupted"
fr_pass "restart without the fault: same counts and digest $got as the uninterrupted run"
fr_verify "after the write error and the restart" "$fr_work/chaos.json"
