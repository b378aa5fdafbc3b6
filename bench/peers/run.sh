#!/usr/bin/env bash
# Freshet against Vowpal Wabbit and a PyTorch MMoE+ESMM on the same generated stream, given the
# same information: `freshet replay --samples-out` records every sample as Freshet's join released
# it (with the default policy's loss weights) and the score Freshet's progressive metrics gave it;
# bench/peers/peers.py replays that record through each peer on Freshet's own mini-batch schedule
# and scores the same samples with the same code. Not a test: takes minutes. See README.md here.
#
#   bash bench/peers/run.sh [IMPRESSIONS] [DAYS]        (defaults 300000 and 7)
# Env: PEERS_SEED (7), PEERS_CONFIG (conf/freshet.example.json), PEERS_GEN_ARGS (extra `freshet gen`
# options, e.g. "--realistic"), PEERS_WORK (a directory to keep; default a temporary one), PEERS_VENV,
# FRESHET_BENCH_BUILD_DIR (build-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-300000}
days=${2:-7}
build=${FRESHET_BENCH_BUILD_DIR:-$root/build-bench}
if [ -n "${PEERS_WORK:-}" ]; then work=$PEERS_WORK; mkdir -p "$work"
else work=$(mktemp -d "${TMPDIR:-/tmp}/freshet-peers.XXXXXX"); trap 'rm -rf "$work"' EXIT; fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target freshet >/dev/null

# The peers live in a virtual environment of the build dir (PEERS_VENV to use another), not in the
# user's Python. PyPI has only the CUDA build of torch: it imports only with its CUDA libraries
# (about 5 GB, downloaded once), even to run on the CPU as here.
venv=${PEERS_VENV:-$build/peers-venv}
if ! "$venv/bin/python" -c 'import torch, vowpalwabbit, numpy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q numpy vowpalwabbit torch
fi
py=$venv/bin/python

"$build/freshet" gen --out "$work/ev.jsonl" --truth "$work/truth.tsv" --impressions "$n" --days "$days" \
    --seed "${PEERS_SEED:-7}" ${PEERS_GEN_ARGS:-} >/dev/null 2>&1
python3 - "${PEERS_CONFIG:-$root/conf/freshet.example.json}" "$work/config.json" "$work/state" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("kafka", None); c.pop("redis", None)
c["checkpoint"] = {"dir": sys.argv[3], "every_seconds": 0, "every_samples": 0}
c["status_every_seconds"] = 1000
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
rm -rf "$work/state"
# --drain: every window closes at the end of the file, so every click's final label is scored
/usr/bin/time -f '%e %M' -o "$work/freshet.time" \
    "$build/freshet" replay "$work/ev.jsonl" -c "$work/config.json" --no-publish --drain \
    --samples-out "$work/samples.bin" > "$work/replay.txt" 2>&1
read -r fr_sec fr_kb < "$work/freshet.time"
"$build/freshet" truth "$work/truth.tsv" -c "$work/config.json" > "$work/truth.txt" 2>&1 || true

for peer in freshet vw torch; do
    /usr/bin/time -f '%e %M' -o "$work/$peer.time" "$py" "$here/peers.py" "$work/samples.bin" --peer "$peer" \
        > "$work/$peer.json"
done

"$py" - "$work" "$fr_sec" "$fr_kb" <<'PY'
import json, sys
work, fr_sec, fr_kb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rows = {p: json.load(open(f"{work}/{p}.json")) for p in ("freshet", "vw", "torch")}
trained = rows["freshet"]["trained"]
print(f"samples in the record: {rows['freshet']['samples']}, trained: {trained}")
print("| peer | task | AUC | log loss | calibration | cold AUC | cold log loss | scored |")
print("|---|---|---|---|---|---|---|---|")
for p, r in rows.items():
    for t in ("ctr", "cvr", "ctcvr"):
        m, c = r[t], r[t + "_cold"]
        print(f"| {p} | {t} | {m['auc']:.4f} | {m['logloss']:.4f} | {m['calibration']:.3f} | {c['auc']:.4f} | "
              f"{c['logloss']:.4f} | {m['n']} |")
print()
print("| peer | train examples/s | peak RSS MB |")
print("|---|---|---|")
# Freshet's speed is the whole replay (decode, join, learn) over the samples it trained; its
# memory is the replay's. The peers' are their training alone, in their own process.
print(f"| freshet (whole replay) | {trained / fr_sec:.0f} | {fr_kb / 1024:.0f} |")
for p in ("vw", "torch"):
    print(f"| {p} | {rows[p]['train_examples_per_s']} | {rows[p]['peak_rss_mb']:.0f} |")
lead = all(rows["freshet"][t]["auc"] > max(rows["vw"][t]["auc"], rows["torch"][t]["auc"])
           for t in ("ctr", "cvr", "ctcvr"))
print(f"\nFreshet leads every task on AUC: {'yes' if lead else 'NO'}")
PY
echo "truth (Bayes):"; cat "$work/truth.txt"
