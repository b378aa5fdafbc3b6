#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# Damage to a real checkpoint directory's write-ahead log is refused with a message that names it,
# by `freshet inspect` and by the daemon's path (`freshet replay`), and never opens as an older
# checkpoint; a kill -9 at random moments (which can tear the last write) always restarts cleanly
# and ends bit-identical to an uninterrupted run. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 20000 --days 2 --seed 31 2>/dev/null
# A checkpoint every 250 samples writes enough (about 110 MB) for the default family's memtable to be
# flushed once, which closes a log: format 3's metrics are a tenth of format 2's raw structs, and at
# 500 samples the run stayed in one log.
cfg() {
  cat >"$1" <<JSON
{"checkpoint": {"dir": "$2", "every_seconds": 0, "every_samples": 250}, "redis": {"host": ""}}
JSON
}
cfg "$fr_work/ref.json" "$fr_work/ref"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/ref.json" >/dev/null 2>"$fr_work/ref.log" ||
  { cat "$fr_work/ref.log"; fr_fail "uninterrupted replay failed"; }
"$FRESHET_BIN" inspect "$fr_work/ref" >"$fr_work/ref.inspect"
want=$(awk '/^digest/ { print $2 }' "$fr_work/ref.inspect")
# The newest write-ahead log (the live one) and the oldest (closed when one family's memtable was
# flushed, kept for the other's rows): NNNNNN.log in creation order.
wal_of() { find "$1" -maxdepth 1 -name '[0-9]*.log' | sort | if [[ $2 == newest ]]; then tail -n 1; else head -n 1; fi; }
[[ $(find "$fr_work/ref" -maxdepth 1 -name '[0-9]*.log' | wc -l) -ge 2 ]] ||
  fr_fail "expected a closed and a live write-ahead log in the reference directory: $(ls "$fr_work/ref")"

# damage NAME EXPECTED COMMAND [oldest]: COMMAND damages "$w" (the live log, or the oldest one) or
# "$d" (the directory) of a copy.
damage() {
  local name=$1 expect=$2 cmd=$3 d="$fr_work/v-$RANDOM$RANDOM" w size before after
  cp -a "$fr_work/ref" "$d"
  w=$(wal_of "$d" "${4:-newest}")
  size=$(stat -c %s "$w")
  eval "$cmd"
  before=$(cd "$d" && find . -type f ! -name LOG ! -name 'LOG.old*' -print0 | sort -z | xargs -0 md5sum)
  if "$FRESHET_BIN" inspect "$d" >"$d.inspect" 2>&1; then
    fr_fail "WAL $name: inspect opened it: $(grep -E '^(consumed|digest)' "$d.inspect" | tr '\n' ' ')"
  fi
  grep -q -- "$expect" "$d.inspect" || fr_fail "WAL $name: inspect does not say \"$expect\": $(cat "$d.inspect")"
  cfg "$d.json" "$d"
  for attempt in 1 2; do
    if "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$d.json" >/dev/null 2>"$d.replay"; then
      fr_fail "WAL $name: replay (attempt $attempt) started: $(grep -m1 resuming "$d.replay")"
    fi
    grep -q -- "$expect" "$d.replay" || fr_fail "WAL $name: replay does not say \"$expect\": $(tail -n 3 "$d.replay")"
  done
  if [[ $expect != "lost committed checkpoints" ]]; then
    # refused before RocksDB wrote anything: the evidence is left as it was
    after=$(cd "$d" && find . -type f ! -name LOG ! -name 'LOG.old*' -print0 | sort -z | xargs -0 md5sum)
    [[ "$before" == "$after" ]] || fr_fail "WAL $name: the refused directory was modified"
  fi
  fr_pass "WAL $name: refused ($(grep -m1 -o "$expect[^(]*" "$d.replay" | cut -c1-110))"
}
damage "byte flipped mid-log" "Corruption" 'printf "\xff" | dd of="$w" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null'
damage "byte flipped in the last record" "Corruption" 'printf "\x5a" | dd of="$w" bs=1 seek=$((size - 30)) conv=notrunc 2>/dev/null'
# (a block that is not already zeros: the metrics and batch blobs hold long runs of them)
nonzero_block() {
  local b=$(($2 / 4096 / 3))
  while [[ $(dd if="$1" bs=4096 skip=$b count=1 2>/dev/null | tr -d '\0' | wc -c) -lt 64 ]]; do b=$((b + 1)); done
  echo $b
}
damage "4 KiB zeroed" "Corruption" 'dd if=/dev/zero of="$w" bs=4096 seek=$(nonzero_block "$w" $size) count=1 conv=notrunc 2>/dev/null'
damage "cut to half" "lost committed checkpoints" 'truncate -s $((size / 2)) "$w"'
damage "last 100 bytes cut" "lost committed checkpoints" 'truncate -s $((size - 100)) "$w"'
damage "cut to 0 bytes" "lost committed checkpoints" 'truncate -s 0 "$w"'
damage "deleted" "lost committed checkpoints" 'rm "$w"'
damage "closed log cut short" "Size mismatch" 'truncate -s $((size - 100)) "$w"' oldest
damage "closed log deleted" "Missing WAL" 'rm "$w"' oldest
damage "commit record damaged" "FRESHET-COMMITTED is damaged" 'printf "\x00" | dd of="$d/FRESHET-COMMITTED" bs=1 seek=5 conv=notrunc 2>/dev/null'

# kill -9 at random moments, several of them inside a commit: each restart opens, and the end
# state is the uninterrupted run's.
cfg "$fr_work/k.json" "$fr_work/k"
kills=0
for i in $(seq 1 8); do
  "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/k.json" >/dev/null 2>>"$fr_work/k.log" &
  pid=$!
  sleep "0.$((RANDOM % 9 + 1))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  if [[ -d "$fr_work/k" ]] && ! "$FRESHET_BIN" inspect "$fr_work/k" >"$fr_work/k.inspect" 2>&1; then
    grep -q 'holds no checkpoint' "$fr_work/k.inspect" || fr_fail "after kill -9 number $i: $(cat "$fr_work/k.inspect")"
  fi
done
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/k.json" >/dev/null 2>>"$fr_work/k.log" ||
  { tail -n 5 "$fr_work/k.log"; fr_fail "the restart after $kills kills failed"; }
got=$("$FRESHET_BIN" inspect "$fr_work/k" | awk '/^digest/ { print $2 }')
[[ -n "$want" && "$got" == "$want" ]] || fr_fail "after $kills kills: digest $got, uninterrupted $want"
fr_pass "kill -9 $kills times: every restart opened, same digest $got as the uninterrupted run"
