#!/usr/bin/env bash
# A generated stream with some bad events goes through the real Kafka broker into the daemon;
# every event is accounted for, the model learns close to the truth, and Redis serves a
# complete version that scores exactly like the trainer.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up

prefix="it$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --truth "$fr_work/truth.tsv" --impressions 200000 --days 10 --seed 11 --users 1000 --ads 200 \
  --duplicates 0.01
# Bad input the daemon must count and survive: malformed JSON, a missing field, an unknown scenario, a
# negative ts, an oversized message.
{
  echo '{"type":"impression","id":"bad-1"'
  echo 'not json at all'
  echo '{"type":"click","ts":1764547200000}'
  echo '{"type":"impression","id":"bad-2","ts":1764547200000,"scenario":"radio","features":{}}'
  echo '{"type":"click","id":"bad-3","ts":-5}'
  printf '{"type":"impression","id":"bad-4","ts":1764547200000,"scenario":"video","features":{"user_id":"%s"}}\n' \
    "$(head -c 70000 /dev/zero | tr '\0' 'x')"
} >>"$fr_work/events.jsonl"
lines=$(grep -c . "$fr_work/events.jsonl")

fr_topics "$prefix"
fr_config "$fr_work/config.json" "$prefix" "$fr_work/state" "$prefix"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/config.json"
# the metrics endpoint on any free port, scraped while the daemon works
sed -i 's/"status_every_seconds": 2/"status_every_seconds": 2, "metrics": {"listen": "127.0.0.1:0"}/' "$fr_work/config.json"
"$FRESHET_BIN" run -c "$fr_work/config.json" --exit-when-idle 4 >"$fr_work/report.txt" 2>"$fr_work/daemon.log" &
daemon=$!
scrape() { # PORT PATH: the HTTP response, through bash's /dev/tcp (no client needed)
  exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 && cat <&3; exec 3<&-
}
port=$(fr_metrics_port "$fr_work/daemon.log" "$daemon")
seen=0
for _ in $(seq 1 100); do
  page=$(scrape "$port" /metrics 2>/dev/null || true)
  n=$(sed -n 's/^freshet_messages_consumed_total \([0-9]*\).*/\1/p' <<<"$page")
  if [[ -n "$n" && "$n" -gt 0 ]] && grep -q '^freshet_kafka_lag_messages{topic="'"$prefix"'-impressions",partition="0"}' <<<"$page"; then
    seen=1
    break
  fi
  sleep 0.1
done
[[ "$seen" == 1 ]] || { kill "$daemon"; fr_fail "no /metrics page with consumed messages and per-partition lag"; }
health=$(scrape "$port" /healthz 2>/dev/null || true)
grep -q '^ok' <<<"$health" || fr_fail "/healthz while consuming: $health"
fr_pass "/metrics served $n consumed messages with per-partition lag; /healthz ok"
# the exposition passes Prometheus's own linter, and every metric the shipped alerts and dashboard use exists
printf '%s\n' "$page" | tr -d '\r' | sed '1,/^$/d' >"$fr_work/metrics.txt" # without the HTTP head
if command -v promtool >/dev/null; then
  promtool check metrics <"$fr_work/metrics.txt" >"$fr_work/promtool.txt" 2>&1 ||
    { cat "$fr_work/promtool.txt"; fr_fail "promtool check metrics found problems in /metrics"; }
fi
python3 - "$fr_work/metrics.txt" "$FRESHET_SOURCE_DIR/deploy" <<'NAMES' || fr_fail "the alerts or the dashboard use metrics /metrics does not serve"
import json, re, sys
served = {l.split()[2] for l in open(sys.argv[1]) if l.startswith("# TYPE ")}
exprs = re.findall(r"expr: (.*)", open(sys.argv[2] + "/prometheus/freshet-alerts.yml").read())
exprs += [t["expr"] for p in json.load(open(sys.argv[2] + "/grafana/freshet-dashboard.json"))["panels"] for t in p.get("targets", [])]
used = {m for e in exprs for m in re.findall(r"\bfreshet_[a-z_]+", e)}
missing = sorted(used - served)
print(f"alerts and dashboard use {len(used)} metrics; /metrics serves {len(served)}; missing: {missing}")
sys.exit(1 if missing or len(used) < 15 else 0)
NAMES
wait "$daemon" || { cat "$fr_work/daemon.log"; fr_fail "daemon exited non-zero"; }
cat "$fr_work/report.txt"
"$FRESHET_BIN" truth "$fr_work/truth.tsv" >"$fr_work/truth.txt"
cat "$fr_work/truth.txt"

consumed=$(fr_field consumed "$fr_work/report.txt")
rejected=$(fr_field rejected "$fr_work/report.txt")
[[ "$consumed" == "$lines" ]] || fr_fail "consumed $consumed of $lines messages"
[[ "$rejected" == 6 ]] || fr_fail "expected 6 rejected events, got $rejected"
fr_accounting_ok "$fr_work/report.txt" || fr_fail "accounting does not balance"
grep -q 'rejected.oversized=1' "$fr_work/report.txt" || fr_fail "the oversized message was not counted as oversized"
grep -q 'dropped.duplicate=' "$fr_work/report.txt" || fr_fail "duplicates were not counted"
fr_pass "all $lines events accounted for (consumed = rejected + joined + pending + dropped)"

auc=$(fr_metric ctr all 3 "$fr_work/report.txt")
truth_auc=$(fr_metric ctr all 3 "$fr_work/truth.txt")
fr_float_ge "$auc" 0.60 || fr_fail "progressive CTR AUC $auc is not well above 0.5"
# 10 points: the generator's scenario x age x category flips, clickbait and advertiser retargeting are
# signal a default model only partly learns in 200 000 impressions (on this stream by replay: truth
# 0.851, model 0.767; the generator without them: truth 0.830, model 0.759).
fr_float_ge "$auc" "$(awk -v t="$truth_auc" 'BEGIN { print t - 0.10 }')" ||
  fr_fail "progressive CTR AUC $auc is more than 10 points below the truth's $truth_auc"
fr_pass "progressive CTR AUC $auc (truth $truth_auc)"
# CVR labels come days late: the default delayed-feedback policy (esdfm) must still learn them.
cvr_auc=$(fr_metric cvr all 3 "$fr_work/report.txt")
ctcvr_auc=$(fr_metric ctcvr all 3 "$fr_work/report.txt")
truth_ctcvr=$(fr_metric ctcvr all 3 "$fr_work/truth.txt")
fr_float_ge "$cvr_auc" 0.55 || fr_fail "progressive CVR AUC $cvr_auc: the delayed conversions were not learned"
fr_float_ge "$ctcvr_auc" "$(awk -v t="$truth_ctcvr" 'BEGIN { print t - 0.12 }')" ||
  fr_fail "progressive CTCVR AUC $ctcvr_auc is more than 12 points below the truth's $truth_ctcvr"
fr_pass "progressive CVR AUC $cvr_auc, CTCVR AUC $ctcvr_auc (truth $truth_ctcvr)"

"$FRESHET_BIN" inspect "$fr_work/state" >"$fr_work/inspect.txt"
"$FRESHET_BIN" pull -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 200 --state "$fr_work/state" \
  >"$fr_work/pull.txt"
tail -n 3 "$fr_work/pull.txt"
diff=$(awk '/^max \|redis - trainer\|/ { print $NF }' "$fr_work/pull.txt")
[[ -n "$diff" ]] || fr_fail "the reader did not compare with the trainer"
awk -v d="$diff" 'BEGIN { exit !(d <= 1e-6) }' || fr_fail "reader and trainer disagree by $diff"
[[ $(grep -c '^score ' "$fr_work/pull.txt") -ge 100 ]] || fr_fail "the reader scored too few impressions"
fr_pass "Redis holds a complete version; reader scores equal the trainer's (max diff $diff)"
