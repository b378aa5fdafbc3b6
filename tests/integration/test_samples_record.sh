#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# `freshet replay --samples-out` (what bench/peers replays through other learners) records every
# sample Freshet trains or scores, in its order, with the score its progressive metrics used: the
# record's scored samples, recomputed, give the report's counts and log loss per task; every trained
# sample is there; the record is the same bytes on a second replay; a bad path is refused before any
# work. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$FRESHET_BIN" gen --out "$fr_work/e.jsonl" --impressions 15000 --days 3 --seed 31 2>/dev/null
cfg() { # NAME
  echo "{\"checkpoint\": {\"dir\": \"$fr_work/state-$1\", \"every_seconds\": 0, \"every_samples\": 0},
         \"redis\": {\"host\": \"\"}}" >"$fr_work/$1.json"
}
for run in a b; do
  cfg $run
  "$FRESHET_BIN" replay "$fr_work/e.jsonl" -c "$fr_work/$run.json" --drain --samples-out "$fr_work/$run.bin" \
    >"$fr_work/$run.txt" 2>"$fr_work/$run.log" || { cat "$fr_work/$run.log"; fr_fail "replay --samples-out failed"; }
done
cmp -s "$fr_work/a.bin" "$fr_work/b.bin" || fr_fail "two replays of one file wrote different samples records"

python3 - "$fr_work/a.bin" "$fr_work/a.txt" <<'PY' || fr_fail "the samples record disagrees with the replay's report"
import math, re, struct, sys
data = open(sys.argv[1], "rb").read()
report = open(sys.argv[2]).read()
assert data[:16] == b"FRESHET-SAMPLES\n", "magic"
version, n_cat, n_num, n_multi, multi_len = struct.unpack_from("<5I", data, 16)
assert version == 1 and n_cat >= 1, (version, n_cat)
head = struct.Struct("<BBBIQQq3f3B3f3f")
size = head.size + 8 * n_cat + 4 * n_num + 8 * n_multi * multi_len + n_multi
assert (len(data) - 36) % size == 0, "records are not whole"
trained = scored_only = 0
n = [0, 0, 0]; ll = [0.0, 0.0, 0.0]; wsum = [0.0, 0.0, 0.0]
last_step = 0
for off in range(36, len(data), size):
    op, flags, kind, scen, step, key, ts, *rest = head.unpack_from(data, off)
    score, has, label, weight = rest[0:3], rest[3:6], rest[6:9], rest[9:12]
    assert step >= last_step, "steps go back"
    last_step = step
    assert op in (1, 2), op
    trained += op == 1
    scored_only += op == 2
    assert op == 1 or kind == 7, "only MATURED samples are scored without training"
    assert key != 0, "every sample names its impression"
    if not flags & 1:
        continue
    for t in range(3):
        if has[t]:
            w = weight[t] if weight[t] > 0 else 1.0
            p = min(max(score[t], 1e-7), 1 - 1e-7)
            assert 0 < score[t] < 1, ("a scored sample's score", score[t])
            n[t] += 1
            ll[t] -= w * (label[t] * math.log(p) + (1 - label[t]) * math.log(1 - p))
            wsum[t] += w
m = re.search(r"samples: trained=(\d+)", report)
assert m and int(m.group(1)) == trained, ("trained", m and m.group(1), trained)
m = re.search(r"matured=(\d+)", report)
assert m and int(m.group(1)) == scored_only, ("matured", m and m.group(1), scored_only)
for t, name in enumerate(("ctr", "cvr", "ctcvr")):
    row = re.search(rf"^\s+{name}\s+all\s+(\d+)\s+\S+\s+(\S+)", report, re.M)
    assert row, name
    assert int(row.group(1)) == n[t], (name, "samples", row.group(1), n[t])
    assert abs(float(row.group(2)) - ll[t] / wsum[t]) < 1e-3, (name, "log loss", row.group(2), ll[t] / wsum[t])
print(f"record: {trained} trained, {scored_only} scored only; scored per task {n}")
PY

cfg c
if "$FRESHET_BIN" replay "$fr_work/e.jsonl" -c "$fr_work/c.json" --samples-out "$fr_work/no/such/dir/x.bin" \
    >/dev/null 2>"$fr_work/c.log"; then fr_fail "an unwritable --samples-out was accepted"; fi
grep -q "cannot create the samples record" "$fr_work/c.log" || fr_fail "no clear message for a bad --samples-out"
echo "ok: samples record"
