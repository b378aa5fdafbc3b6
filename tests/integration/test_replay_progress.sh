#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# `freshet replay` on a terminal (a pseudo-terminal from script(1)) redraws one progress line in place (bytes
# done, events/s, ETA, event time between the file's first and last events); with its output in a file it
# writes no carriage return, and the report is the same either way. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v script >/dev/null || { echo "SKIP: script(1) not found" >&2; exit 77; }
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 60000 --days 4 --seed 17 2>/dev/null
cfg() { echo "{\"checkpoint\": {\"dir\": \"$fr_work/$1\", \"every_seconds\": 0, \"every_samples\": 0}, \"redis\": {\"host\": \"\"}}" >"$fr_work/$1.json"; }
cfg tty
cfg file
script -qefc "'$FRESHET_BIN' replay '$fr_work/events.jsonl' -c '$fr_work/tty.json' >'$fr_work/tty.report'" /dev/null \
  >"$fr_work/tty.txt" || fr_fail "replay on a terminal failed"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/file.json" >"$fr_work/file.report" 2>"$fr_work/file.txt" ||
  fr_fail "replay failed"
tr '\r' '\n' <"$fr_work/tty.txt" | sed 's/\x1b\[K//g' | grep -E '^ *[0-9.]+% [0-9.]+/[0-9.]+ MB  [0-9]+ events/s  ETA [0-9:?]+  event time 20[0-9-]+ [0-9:]+ UTC \([0-9.]+ of [0-9.]+ days\)' \
  >"$fr_work/progress.txt" || { cat -v "$fr_work/tty.txt" | head; fr_fail "no progress line on the terminal"; }
grep -q '100.0%' "$fr_work/progress.txt" || fr_fail "the last progress line does not say 100%"
grep -q $'\r' "$fr_work/file.txt" && fr_fail "carriage returns in a log file"
diff "$fr_work/tty.report" "$fr_work/file.report" >/dev/null || fr_fail "the report differs with and without a terminal"
fr_pass "a terminal gets $(wc -l <"$fr_work/progress.txt") progress redraws, ending: $(tail -n 1 "$fr_work/progress.txt"); a log file none"
