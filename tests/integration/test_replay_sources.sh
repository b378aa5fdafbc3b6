#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# Which file a replay resumes: daily files with one base name backfill one state, each from its start
# (before, day 2 resumed at day 1's byte offset and most of it was skipped); a log that grew resumes
# where it stopped and ends bit-identical to one replay of the whole file; a truncated or rewritten
# file is refused with the reason, the state untouched. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$FRESHET_BIN" gen --out "$fr_work/all.jsonl" --impressions 16000 --days 2 --seed 53 2>/dev/null
total=$(grep -c . "$fr_work/all.jsonl")
half=$((total / 2))
mkdir -p "$fr_work/day1" "$fr_work/day2"
head -n "$half" "$fr_work/all.jsonl" >"$fr_work/day1/events.jsonl"
tail -n +$((half + 1)) "$fr_work/all.jsonl" >"$fr_work/day2/events.jsonl"
cfg() {
  cat >"$1" <<JSON
{"checkpoint": {"dir": "$2", "every_seconds": 0, "every_samples": 1000}, "redis": {"host": ""}}
JSON
}
consumed() { "$FRESHET_BIN" inspect "$1" | fr_field consumed /dev/stdin; }
digest() { "$FRESHET_BIN" inspect "$1" | awk '/^digest/ { print $2 }'; }
replay() { "$FRESHET_BIN" replay "$1" -c "$2" >/dev/null 2>>"$fr_work/replay.log"; }

# Backfill: two files named events.jsonl, one state.
cfg "$fr_work/b.json" "$fr_work/b"
replay "$fr_work/day1/events.jsonl" "$fr_work/b.json" || fr_fail "day 1 failed"
[[ $(consumed "$fr_work/b") == "$half" ]] || fr_fail "day 1: consumed $(consumed "$fr_work/b"), expected $half"
"$FRESHET_BIN" replay "$fr_work/day2/events.jsonl" -c "$fr_work/b.json" >/dev/null 2>"$fr_work/day2.log" ||
  fr_fail "day 2 failed: $(tail -n 2 "$fr_work/day2.log")"
! grep -q resuming "$fr_work/day2.log" || fr_fail "day 2 resumed: $(grep resuming "$fr_work/day2.log")"
[[ $(consumed "$fr_work/b") == "$total" ]] ||
  fr_fail "backfill of day 1 and day 2: consumed $(consumed "$fr_work/b") of $total lines (day 2 cut)"
[[ $("$FRESHET_BIN" inspect "$fr_work/b" | grep -c '^offset file:events.jsonl@') == 2 ]] ||
  fr_fail "expected two sources named after events.jsonl: $("$FRESHET_BIN" inspect "$fr_work/b" | grep '^offset')"
"$FRESHET_BIN" replay "$fr_work/day2/events.jsonl" -c "$fr_work/b.json" >/dev/null 2>"$fr_work/again.log"
grep -q "resuming .*day2/events.jsonl at byte $(stat -c %s "$fr_work/day2/events.jsonl")" "$fr_work/again.log" ||
  fr_fail "day 2 again did not resume at its end: $(cat "$fr_work/again.log")"
[[ $(consumed "$fr_work/b") == "$total" ]] || fr_fail "day 2 again consumed something"
fr_pass "backfill: day1/events.jsonl then day2/events.jsonl into one state, all $total lines; day 2 again resumes at its end"

# A log that grew: half of it, then all of it at the same path, ends like one replay of all of it.
log="$fr_work/log/events.jsonl"
mkdir -p "$fr_work/log"
cp "$fr_work/all.jsonl" "$log"
cfg "$fr_work/w.json" "$fr_work/w"
replay "$log" "$fr_work/w.json" || fr_fail "whole-log replay failed"
cp "$fr_work/day1/events.jsonl" "$log"
cfg "$fr_work/g.json" "$fr_work/g"
replay "$log" "$fr_work/g.json" || fr_fail "first half failed"
cat "$fr_work/day2/events.jsonl" >>"$log"
"$FRESHET_BIN" replay "$log" -c "$fr_work/g.json" >/dev/null 2>"$fr_work/grown.log" || fr_fail "the grown log failed"
grep -q "resuming .* at byte $(stat -c %s "$fr_work/day1/events.jsonl")" "$fr_work/grown.log" ||
  fr_fail "the grown log did not resume where it stopped: $(grep -m1 freshet "$fr_work/grown.log")"
[[ $(consumed "$fr_work/g") == "$total" ]] || fr_fail "grown log: consumed $(consumed "$fr_work/g") of $total"
[[ -n "$(digest "$fr_work/w")" && "$(digest "$fr_work/g")" == "$(digest "$fr_work/w")" ]] ||
  fr_fail "grown log: digest $(digest "$fr_work/g"), one replay of the whole log $(digest "$fr_work/w")"
fr_pass "a log that grew resumes where it stopped: same digest $(digest "$fr_work/g") as one replay of all of it"

# Truncated, rewritten: refused, the state unchanged.
before=$(digest "$fr_work/g")
refused() {
  local what=$1 expect=$2
  if "$FRESHET_BIN" replay "$log" -c "$fr_work/g.json" >/dev/null 2>"$fr_work/refused.log"; then
    fr_fail "$what: the replay ran: $(grep -m1 freshet "$fr_work/refused.log")"
  fi
  grep -q -- "$expect" "$fr_work/refused.log" || fr_fail "$what: no \"$expect\" in: $(cat "$fr_work/refused.log")"
  [[ "$(digest "$fr_work/g")" == "$before" ]] || fr_fail "$what: the state changed"
  fr_pass "$what: refused ($(grep -o -- "$expect[^;]*" "$fr_work/refused.log" | head -n 1))"
}
truncate -s $(($(stat -c %s "$log") / 2)) "$log"
refused "log truncated to half" "shorter than the"
"$FRESHET_BIN" gen --out "$log" --impressions 20000 --days 2 --seed 54 2>/dev/null
refused "log rewritten (another stream, longer)" "changed since it was replayed"
