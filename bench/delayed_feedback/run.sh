#!/usr/bin/env bash
# Every delayed-feedback policy on the same generated stream, through `freshet replay`, one config
# per method (conf/freshet.example.json + join.policy). Prints progressive CVR and CTCVR AUC and
# log loss (each click scored before anything of it trains, against its final label) and the share
# of the Vanilla -> Oracle CVR log-loss gap each method closes. Not a test: takes minutes.
#
#   bash bench/delayed_feedback/run.sh [FRESHET_BIN] [WORKDIR]
# Env: DF_IMPRESSIONS (4000000), DF_DAYS (21), DF_SEED (7), DF_LONG_MEAN (86400 s: day-scale
# delays), DF_SHORT_SHARE (0.35), DF_SHORT_MEAN (900 s), DF_WO (15m), DF_METHODS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-${FRESHET_BIN:-$root/build/freshet}}
work=${2:-$(mktemp -d /tmp/freshet-dfbench.XXXXXX)}
mkdir -p "$work"
n=${DF_IMPRESSIONS:-4000000}
days=${DF_DAYS:-21}
methods=${DF_METHODS:-"wait vanilla fnw fnc esdfm defuse defer oracle"}
export OPENBLAS_NUM_THREADS=1

"$bin" gen --out "$work/ev.jsonl" --truth "$work/truth.tsv" --impressions "$n" --days "$days" \
    --seed "${DF_SEED:-7}" --delay-short-share "${DF_SHORT_SHARE:-0.35}" --delay-short-mean "${DF_SHORT_MEAN:-900}" \
    --delay-long-mean "${DF_LONG_MEAN:-86400}" --obs-window 900
# One sentinel impression 8 days after the last event moves the watermark past every attribution
# window, so every click's label matures and is scored (otherwise the last 7 days go unscored).
python3 - "$work/ev.jsonl" <<'PY'
import json, sys
last = None
with open(sys.argv[1], 'rb') as f:
    f.seek(-4096, 2)
    last = json.loads(f.read().splitlines()[-1])
s = {"type": "impression", "id": "i-sentinel", "ts": last["ts"] + 8 * 86400000, "scenario": "video",
     "features": {"user_id": "u0", "user_age": "18-24", "device": "pc", "ad_id": "a0", "advertiser": "adv0",
                  "category": "finance", "hour": 0, "price": 1.0, "recent_ads": []}}
open(sys.argv[1], 'a').write(json.dumps(s) + "\n")
PY
"$bin" truth "$work/truth.tsv" > "$work/truth.txt" 2>&1 || true

for m in $methods; do
    python3 - "$root/conf/freshet.example.json" "$work/$m.json" "$m" "$work/state-$m" "${DF_WO:-15m}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("kafka", None); c.pop("redis", None)
# max_ahead 0: the sentinel is a deliberate jump of 8 days, which the event-time check would hold
c["join"].update({"policy": sys.argv[3], "observation_window": sys.argv[5], "max_ahead": 0})
c["checkpoint"] = {"dir": sys.argv[4], "every_seconds": 0, "every_samples": 0}
c["status_every_seconds"] = 1000
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
    rm -rf "$work/state-$m"
    start=$(date +%s.%N)
    "$bin" replay "$work/ev.jsonl" -c "$work/$m.json" --no-publish > "$work/$m.out" 2>&1
    echo "$m $(echo "$(date +%s.%N) - $start" | bc)" >> "$work/times"
done

python3 - "$work" $methods <<'PY'
import sys, re
work, methods = sys.argv[1], sys.argv[2:]
rows = {}
for m in methods:
    r = {}
    for line in open(f"{work}/{m}.out"):
        f = line.split()
        if len(f) == 6 and f[0] in ("ctr", "cvr", "ctcvr") and f[1] == "all":
            r[f[0]] = (int(f[2]), float(f[3]), float(f[4]), float(f[5]))
    rows[m] = r
times = dict(l.split() for l in open(f"{work}/times"))
def gap(m, t):
    if "vanilla" not in rows or "oracle" not in rows: return float("nan")
    v, o = rows["vanilla"][t][2], rows["oracle"][t][2]
    return (v - rows[m][t][2]) / (v - o) if v != o else float("nan")
print("| method | CTR AUC | CVR AUC | CVR log loss | CVR calib | CTCVR AUC | CTCVR log loss | gap closed (CVR LL) | gap closed (CTCVR LL) | replay s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in methods:
    c, t = rows[m]["cvr"], rows[m]["ctcvr"]
    print(f"| {m} | {rows[m]['ctr'][1]:.4f} | {c[1]:.4f} | {c[2]:.4f} | {c[3]:.3f} | {t[1]:.4f} | {t[2]:.5f} | {100*gap(m,'cvr'):.0f}% | {100*gap(m,'ctcvr'):.0f}% | {float(times[m]):.0f} |")
print(f"\nclicks scored (CVR): {rows[methods[0]]['cvr'][0]}; work dir {work}")
PY
echo "truth (Bayes limit, generator's probabilities):"; cat "$work/truth.txt"
