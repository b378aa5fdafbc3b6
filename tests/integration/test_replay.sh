#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# Replay is deterministic: two replays of one file give equal checkpoint digests, a replay that
# spills the join to RocksDB gives the same, and a replay killed with SIGKILL at 20 random moments
# and restarted gives the same digest, bit for bit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 100000 --days 10 --seed 5 --duplicates 0.02
# The default fields, with admission thresholds and event-time TTLs on three of them (10 days of
# events: rows are refused, created late and evicted all along), so the exactly-once checks below
# also cover the admission filters, the clock and the evictions in the checkpoint.
# cfg FILE STATE_DIR [EXTRA]: EXTRA is more top-level members (with a leading comma).
cfg() { cat >"$1" <<JSON
{"checkpoint": {"dir": "$2", "every_seconds": 0, "every_samples": 700}, "redis": {"host": ""}${3:-},
 "fields": [
  {"name": "user_id", "kind": "categorical", "admit_after": 3, "admit_width_log2": 16, "ttl": "2d"},
  {"name": "user_age", "kind": "categorical"},
  {"name": "device", "kind": "categorical"},
  {"name": "ad_id", "kind": "categorical", "admit_after": 2, "ttl": "3d"},
  {"name": "advertiser", "kind": "categorical"},
  {"name": "category", "kind": "categorical"},
  {"name": "hour", "kind": "categorical"},
  {"name": "price", "kind": "numeric", "transform": "log1p"},
  {"name": "recent_ads", "kind": "multi", "max_len": 8, "admit_after": 2, "ttl": "1d"}]}
JSON
}
cfg "$fr_work/a.json" "$fr_work/a"
cfg "$fr_work/b.json" "$fr_work/b"
cfg "$fr_work/c.json" "$fr_work/c"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/a.json" >"$fr_work/report-a.txt" 2>"$fr_work/a.log"
rows_line=$(grep '^rows: ' "$fr_work/a.log") || fr_fail "no rows line in the replay's stderr"
evicted=$(sed -n 's/.* evicted=\([0-9]*\).*/\1/p' <<<"$rows_line")
refused=$(sed -n 's/.* not_admitted=\([0-9]*\).*/\1/p' <<<"$rows_line")
[[ "$evicted" -gt 0 && "$refused" -gt 0 ]] || fr_fail "lifecycle not exercised: $rows_line"
fr_pass "admission and eviction on: $rows_line"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/b.json" >/dev/null
da=$("$FRESHET_BIN" inspect "$fr_work/a" | awk '/^digest/ { print $2 }')
db=$("$FRESHET_BIN" inspect "$fr_work/b" | awk '/^digest/ { print $2 }')
[[ -n "$da" && "$da" == "$db" ]] || fr_fail "two replays differ: $da vs $db"
fr_pass "two replays: equal digests $da"

# Spilling (join.max_cached_entries) changes where entries live, never what is learnt.
cfg "$fr_work/s.json" "$fr_work/s" ', "join": {"max_cached_entries": 500}'
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/s.json" >"$fr_work/report-s.txt"
ds=$("$FRESHET_BIN" inspect "$fr_work/s" | awk '/^digest/ { print $2 }')
[[ "$ds" == "$da" ]] || fr_fail "a replay that spills the join ends with digest $ds, without spilling $da"
diff "$fr_work/report-a.txt" "$fr_work/report-s.txt" || fr_fail "reports differ with spilling"
fr_pass "replay with at most 500 join entries in memory: same digest"

kills=0 mid_stream=0
total=$(grep -c . "$fr_work/events.jsonl")
for i in $(seq 1 20); do
  "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/c.json" >/dev/null 2>>"$fr_work/c.log" &
  pid=$!
  sleep "0.$((RANDOM % 5 + 1))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  n=$("$FRESHET_BIN" inspect "$fr_work/c" 2>/dev/null | fr_field consumed /dev/stdin || true)
  if [[ -n "$n" && "$n" -gt 0 && "$n" -lt "$total" ]]; then mid_stream=$((mid_stream + 1)); fi
done
[[ $mid_stream -ge 10 ]] || fr_fail "only $mid_stream of 20 kills landed mid-stream"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/c.json" >"$fr_work/report-c.txt" 2>>"$fr_work/c.log"
dc=$("$FRESHET_BIN" inspect "$fr_work/c" | awk '/^digest/ { print $2 }')
[[ "$dc" == "$da" ]] || fr_fail "replay killed $kills times ends with digest $dc, uninterrupted $da"
diff "$fr_work/report-a.txt" "$fr_work/report-c.txt" || fr_fail "reports differ after kills"
fr_pass "replay killed with SIGKILL $kills times: bit-identical checkpoint ($dc)"
