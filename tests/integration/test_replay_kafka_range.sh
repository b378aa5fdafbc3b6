#!/usr/bin/env bash
# `freshet replay --kafka --from --to` on the real broker: bad times and options are refused with exit 2 and
# what to write instead. A stream loaded with `freshet load --event-time` (each message's Kafka timestamp is its
# event's ts) is backfilled by time. A middle day reads exactly the events of that day (counted from the file by
# the same rule: from <= ts < to), the same backfill again reads and trains nothing, the next day adds exactly
# its events; a backfill of everything stopped with SIGTERM and run again ends with the digest of one never
# stopped, --drain leaves nothing pending, and the backfill of everything has the digest of the daemon (`freshet
# run`) consuming the same topics. A file replay of the same events consumes and accounts the same events, but
# its checkpoint cannot have the same digest: it stores one source (the file, by name and byte offset) where the
# backfill stores twelve partitions' offsets, and the join's event time is per source.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up

prefix="kb$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/e.jsonl" --impressions 20000 --days 4 --seed 31 2>/dev/null
lines=$(grep -c . "$fr_work/e.jsonl")
# The count rule equals the offset rule only when each partition's timestamps ascend: the file's do.
ts() { grep -o '"ts":[0-9]*' "$fr_work/e.jsonl" | cut -d: -f2; }
[[ $(ts | awk 'NR > 1 && $1 < prev { n++ } { prev = $1 } END { print n + 0 }') == 0 ]] ||
  fr_fail "the generated stream is not in ts order: counting by ts would not be the offset range"
[[ $(ts | wc -l) == "$lines" ]] || fr_fail "a line without an integer ts"
in_range() { ts | awk -v f="$1" -v t="$2" '$1 >= f && $1 < t' | wc -l; }
# Without time retention: the events are of December 2025 and so are their timestamps, which the broker's
# 168 h retention would delete at its next check.
for t in impressions clicks conversions; do
  bash "$FRESHET_SOURCE_DIR/deploy/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$FRESHET_KAFKA" \
    --create --topic "$prefix-$t" --partitions 4 --replication-factor 1 --config retention.ms=-1 >/dev/null
done
for s in range whole stopped daemon file drain; do
  fr_config "$fr_work/$s.json" "$prefix" "$fr_work/state-$s"
  sed -i 's/"every_samples": 3000/"every_samples": 500/' "$fr_work/$s.json"
done
"$FRESHET_BIN" load "$fr_work/e.jsonl" -c "$fr_work/range.json" --event-time 2>"$fr_work/load.log" ||
  { cat "$fr_work/load.log"; fr_fail "load --event-time failed"; }

consumed() { "$FRESHET_BIN" inspect "$fr_work/state-$1" | fr_field consumed /dev/stdin; }
digest() { "$FRESHET_BIN" inspect "$fr_work/state-$1" | awk '/^digest/ { print $2 }'; }
backfill() { # STATE LOG ARGS...: a backfill; prints what it read
  local s=$1 log=$2
  shift 2
  "$FRESHET_BIN" replay --kafka -c "$fr_work/$s.json" "$@" >"$fr_work/$log.txt" 2>"$fr_work/$log.log" ||
    { cat "$fr_work/$log.log"; fr_fail "backfill $* on $s failed"; }
  sed -n 's/.*kafka backfill done: read=\([0-9]*\) of.*/\1/p' "$fr_work/$log.log"
}

# Refused before anything is read, exit 2, with what to write instead.
refused() { # MESSAGE ARGS...
  local says=$1 rc=0
  shift
  "$FRESHET_BIN" replay -c "$fr_work/range.json" "$@" >/dev/null 2>"$fr_work/refused.log" || rc=$?
  [[ $rc == 2 ]] && grep -qF -- "$says" "$fr_work/refused.log" ||
    fr_fail "replay $*: exit $rc, $(cat "$fr_work/refused.log"); expected exit 2 saying \"$says\""
}
refused "this looks like seconds (2025-12-01T00:00:00Z), but TIME is in milliseconds: write 1764547200000" --kafka --from 1764547200
refused "an offset from UTC" --kafka --from 2025-12-01T06:00:00+01:00
refused "--from 2025-12-03 is not before --to 2025-12-02" --kafka --from 2025-12-03 --to 2025-12-02
refused "--kafka needs --from TIME" --kafka --to 2025-12-02
refused "add --kafka" --from 2025-12-02
refused "give a FILE or --kafka" --kafka --from 0 "$fr_work/e.jsonl"
[[ ! -e "$fr_work/state-range" ]] || fr_fail "a refused backfill created the state"
fr_pass "bad times and options: exit 2 with what to write instead, nothing read"

# A middle day, by date: 2025-12-02T00:00:00Z = 1764633600000 ms.
day2=$(in_range 1764633600000 1764720000000)
[[ $day2 -gt 1000 && $day2 -lt $((lines / 2)) ]] || fr_fail "day 2 holds $day2 of $lines events: not a middle range"
read=$(backfill range day2 --from 2025-12-02 --to 2025-12-03)
[[ $read == "$day2" && $(consumed range) == "$day2" ]] ||
  fr_fail "day 2: read $read, consumed $(consumed range), expected the file's $day2 events with 1764633600000 <= ts < 1764720000000"
fr_accounting_ok "$fr_work/day2.txt" || fr_fail "day 2: the accounting does not balance"
fr_pass "--from 2025-12-02 --to 2025-12-03: read and consumed $day2 events, the file's count for that day"

before=$(digest range)
read=$(backfill range again --from 2025-12-02 --to 2025-12-03)
[[ $read == 0 && $(consumed range) == "$day2" && $(digest range) == "$before" ]] ||
  fr_fail "day 2 again: read $read, consumed $(consumed range) (was $day2), digest $(digest range) (was $before)"
grep -q 'kafka backfill: 12 partitions: 0 to read, 0 resumed, [0-9]* with nothing in the range, [0-9]* already read' \
  "$fr_work/again.log" || fr_fail "day 2 again: not every partition said it had read the range: $(cat "$fr_work/again.log")"
diff "$fr_work/day2.txt" "$fr_work/again.txt" >/dev/null || fr_fail "day 2 again: another report"
fr_pass "the same backfill again: read 0, consumed still $day2, digest unchanged ($before)"

# The next day, written as an RFC 3339 time and as milliseconds.
day3=$(in_range 1764720000000 1764806400000)
read=$(backfill range day3 --from 2025-12-03T00:00:00Z --to 1764806400000)
[[ $read == "$day3" && $(consumed range) == $((day2 + day3)) ]] ||
  fr_fail "day 3: read $read of $day3, consumed $(consumed range), expected $((day2 + day3))"
fr_pass "then day 3: read $day3, the state has consumed each of the $((day2 + day3)) events once"

# Everything (--from 0, no --to), stopped with SIGTERM after its first checkpoints, then run again.
read=$(backfill whole whole --from 0)
[[ $read == "$lines" && $(consumed whole) == "$lines" ]] || fr_fail "whole: read $read, consumed $(consumed whole) of $lines"
fr_accounting_ok "$fr_work/whole.txt" || fr_fail "whole: the accounting does not balance"
"$FRESHET_BIN" replay --kafka -c "$fr_work/stopped.json" --from 0 >/dev/null 2>"$fr_work/stop1.log" &
pid=$!
for _ in $(seq 1 400); do
  n=$("$FRESHET_BIN" inspect "$fr_work/state-stopped" 2>/dev/null | fr_field consumed /dev/stdin || true)
  [[ -n "$n" && "$n" -gt 0 ]] && break
  sleep 0.02
done
kill -TERM "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
[[ $rc == 0 ]] || { cat "$fr_work/stop1.log"; fr_fail "SIGTERM: exit $rc, expected 0"; }
first=$(consumed stopped)
grep -q 'stop requested' "$fr_work/stop1.log" || echo "note: SIGTERM came after the backfill had finished"
read=$(backfill stopped stop2 --from 0)
[[ $((first + read)) == "$lines" && $(consumed stopped) == "$lines" ]] ||
  fr_fail "stopped at $first, then read $read: $(consumed stopped) consumed of $lines"
[[ -n "$(digest whole)" && "$(digest stopped)" == "$(digest whole)" ]] ||
  fr_fail "stopped and resumed: digest $(digest stopped), never stopped $(digest whole)"
fr_pass "--from 0 stopped with SIGTERM at $first events and run again (read $read): digest $(digest whole), as never stopped"

# --drain: at the end of the backfill every window closes and everything trains, as for a file.
read=$(backfill drain drain --from 2025-12-01T00:00:00.000Z --drain)
[[ $read == "$lines" ]] || fr_fail "--drain: read $read of $lines"
fr_accounting_ok "$fr_work/drain.txt" || fr_fail "--drain: the accounting does not balance"
awk '$2 ~ /^events=/ && !/ pending=0( |$)/ { bad = 1; print } END { exit bad }' "$fr_work/drain.txt" ||
  fr_fail "--drain left events pending"
grep -q ' buffered=0 ' "$fr_work/drain.txt" || fr_fail "--drain left samples untrained: $(grep '^samples' "$fr_work/drain.txt")"
fr_pass "--drain: every event joined or dropped, nothing pending, every sample trained"

"$FRESHET_BIN" run -c "$fr_work/daemon.json" --exit-when-idle 3 >"$fr_work/daemon.txt" 2>"$fr_work/daemon.log" ||
  { cat "$fr_work/daemon.log"; fr_fail "the daemon failed"; }
[[ "$(digest daemon)" == "$(digest whole)" ]] ||
  fr_fail "the daemon on the same topics: digest $(digest daemon), the backfill of everything $(digest whole)"
diff "$fr_work/daemon.txt" "$fr_work/whole.txt" >/dev/null || fr_fail "the daemon's report differs from the backfill's"
fr_pass "the backfill of everything has the digest and report of the daemon consuming the same topics"

"$FRESHET_BIN" replay "$fr_work/e.jsonl" -c "$fr_work/file.json" >"$fr_work/file.txt" 2>"$fr_work/file.log" ||
  { cat "$fr_work/file.log"; fr_fail "the file replay failed"; }
fr_accounting_ok "$fr_work/file.txt" || fr_fail "file replay: the accounting does not balance"
accounted() { # REPORT: consumed, and accepted + held (what was not rejected)
  sed -n 's/^accounting: consumed=\([0-9]*\) rejected=\([0-9]*\) held=\([0-9]*\) accepted=\([0-9]*\).*/\1 \2 \3+\4/p' "$1" |
    awk '{ split($3, a, "+"); print $1, $2, a[1] + a[2] }'
}
[[ "$(accounted "$fr_work/file.txt")" == "$lines 0 $lines" && "$(accounted "$fr_work/whole.txt")" == "$lines 0 $lines" ]] ||
  fr_fail "consumed rejected kept: file $(accounted "$fr_work/file.txt"), backfill $(accounted "$fr_work/whole.txt"), expected $lines 0 $lines"
echo "digests: backfill $(digest whole), file replay $(digest file) (other sources: see the header)"
fr_pass "a file replay of the same events consumes and keeps the same $lines events"
