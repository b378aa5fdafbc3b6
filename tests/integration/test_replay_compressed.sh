#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# `freshet replay` reads gzip- and zstd-compressed logs (found by their magic bytes) as it reads the plain
# one: the same report and the same checkpoint (offsets count uncompressed bytes), the oracle policy's
# lookahead included; a compressed replay killed with SIGKILL resumes to the result of one never killed; a
# truncated or damaged compressed file is a read error that names the file and exits 1, keeping what came
# before it checkpointed, never a silent end of input. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for tool in gzip zstd; do command -v "$tool" >/dev/null || fr_fail "$tool is missing (Debian: gzip, zstd)"; done
"$FRESHET_BIN" gen --out "$fr_work/e.jsonl" --impressions 12000 --days 3 --seed 23 2>/dev/null
gzip -k "$fr_work/e.jsonl"
zstd -q -k "$fr_work/e.jsonl"
cfg() { # NAME [EVERY_SAMPLES] [POLICY]
  echo "{\"checkpoint\": {\"dir\": \"$fr_work/state-$1\", \"every_seconds\": 0, \"every_samples\": ${2:-0}},
         \"redis\": {\"host\": \"\"}, \"join\": {\"policy\": \"${3:-esdfm}\"}}" >"$fr_work/$1.json"
}
replay() { # NAME FILE
  "$FRESHET_BIN" replay "$2" -c "$fr_work/$1.json" >"$fr_work/$1.txt" 2>"$fr_work/$1.log"
}
same_state() { # A B: inspect equal but for the directory, the source's name and the digest (the name is the path)
  diff <("$FRESHET_BIN" inspect "$fr_work/state-$1" | grep -v '^checkpoint \|^offset \|^digest ') \
       <("$FRESHET_BIN" inspect "$fr_work/state-$2" | grep -v '^checkpoint \|^offset \|^digest ') >/dev/null &&
    [[ "$("$FRESHET_BIN" inspect "$fr_work/state-$1" | sed -n 's/^offset .* next=//p')" == \
       "$("$FRESHET_BIN" inspect "$fr_work/state-$2" | sed -n 's/^offset .* next=//p')" ]]
}
for p in esdfm oracle; do
  for k in plain gz zst; do
    f="$fr_work/e.jsonl"; [[ $k != plain ]] && f="$f.$k"
    cfg "$k-$p" 0 "$p"
    replay "$k-$p" "$f" || { cat "$fr_work/$k-$p.log"; fr_fail "replay of the $k file under $p failed"; }
  done
  for k in gz zst; do
    diff "$fr_work/plain-$p.txt" "$fr_work/$k-$p.txt" >/dev/null || fr_fail "$k under $p: another report than the plain file's"
    same_state "plain-$p" "$k-$p" || fr_fail "$k under $p: another checkpoint than the plain file's"
  done
done
fr_pass "gzip and zstd logs give the plain log's report and checkpoint (policies esdfm and oracle)"

# killed with SIGKILL after its first checkpoints, then resumed: the result of one never killed
cfg zst-ref 800
replay zst-ref "$fr_work/e.jsonl.zst" || fr_fail "reference replay failed"
cfg zst-kill 800
"$FRESHET_BIN" replay "$fr_work/e.jsonl.zst" -c "$fr_work/zst-kill.json" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  n=$("$FRESHET_BIN" inspect "$fr_work/state-zst-kill" 2>/dev/null | sed -n 's/^offset .* next=\([0-9]*\).*/\1/p' || true)
  [[ -n "$n" && "$n" -gt 0 ]] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
replay zst-kill "$fr_work/e.jsonl.zst" || { cat "$fr_work/zst-kill.log"; fr_fail "the resumed replay failed"; }
grep -q 'resuming .* at byte' "$fr_work/zst-kill.log" || echo "note: the kill came after the replay had finished"
[[ "$("$FRESHET_BIN" inspect "$fr_work/state-zst-kill" | grep '^digest')" == "$("$FRESHET_BIN" inspect "$fr_work/state-zst-ref" | grep '^digest')" ]] ||
  fr_fail "a killed and resumed zstd replay differs from one never killed"
fr_pass "a zstd replay killed with SIGKILL and resumed ($(grep -o 'resuming .*' "$fr_work/zst-kill.log" || echo 'not killed mid-way')) equals one never killed"

# a truncated zstd file and a damaged gzip file: a read error, named, exit 1, what came before kept
size=$(stat -c %s "$fr_work/e.jsonl.zst")
head -c $((size / 2)) "$fr_work/e.jsonl.zst" >"$fr_work/cut.jsonl.zst"
cp "$fr_work/e.jsonl.gz" "$fr_work/bad.jsonl.gz"
python3 -c "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0xff; open(p, 'wb').write(b)" "$fr_work/bad.jsonl.gz"
for k in cut.jsonl.zst bad.jsonl.gz; do
  cfg "$k"
  if replay "$k" "$fr_work/$k"; then fr_fail "$k: replay exited 0"; else rc=$?; fi
  [[ $rc == 1 ]] || fr_fail "$k: exit $rc, expected 1"
  grep -q "cannot read .*$k (.*) after byte [0-9]*" "$fr_work/$k.log" || { cat "$fr_work/$k.log"; fr_fail "$k: no message naming the file"; }
  kept=$("$FRESHET_BIN" inspect "$fr_work/state-$k" | sed -n 's/^offset .* next=//p')
  [[ -n "$kept" && "$kept" -gt 0 ]] || fr_fail "$k: nothing of what came before was checkpointed"
done
fr_pass "a truncated zstd and a damaged gzip log: exit 1, the file named, what came before checkpointed"
