#!/usr/bin/env bash
# The same generated stream, with the same bad events, loaded as JSON and then (the topics created
# again) as Protobuf in the Confluent framing: two daemons end with identical reports (every count,
# reason and metric) and bit-identical checkpoints. JSON text on a Protobuf topic is then rejected
# as malformed, counted, and the daemon carries on.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up

prefix="pb$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 40000 --days 4 --seed 31 --users 500 --ads 100 \
  --duplicates 0.01
# Bad events Protobuf can express, each with its reason (all keyed, so both loads put them on the
# same partitions): an unknown scenario, a negative ts, an id of 257 bytes, no features, a sample
# rate above 1, an oversized message.
{
  echo '{"type":"impression","id":"bad-1","ts":1764547200000,"scenario":"radio","features":{}}'
  echo '{"type":"click","id":"bad-2","ts":-5}'
  printf '{"type":"click","id":"%s","ts":1764547200000}\n' "$(head -c 257 /dev/zero | tr '\0' 'i')"
  echo '{"type":"impression","id":"bad-3","ts":1764547200000,"scenario":"video"}'
  echo '{"type":"impression","id":"bad-4","ts":1764547200000,"scenario":"video","sample_rate":2,"features":{}}'
  printf '{"type":"impression","id":"bad-5","ts":1764547200000,"scenario":"video","features":{"user_id":"%s"}}\n' \
    "$(head -c 70000 /dev/zero | tr '\0' 'x')"
} >>"$fr_work/events.jsonl"
lines=$(grep -c . "$fr_work/events.jsonl")

# One set of topics for both formats, deleted and created again in between: the checkpoint names its
# sources (topic and partition), so only the same names can give the same digest.
topic_tool() { bash "$FRESHET_SOURCE_DIR/deploy/kafka.sh" tool org.apache.kafka.tools.TopicCommand \
  --bootstrap-server "$FRESHET_KAFKA" "$@"; }
fr_config "$fr_work/json.json" "$prefix" "$fr_work/state-json"
fr_config "$fr_work/pb.json" "$prefix" "$fr_work/state-pb"
# Both: a day of allowed lateness. Which of a click's drop reasons applies (orphan or outside its
# window) depends on whether its impression's partition was read before the watermark passed it,
# i.e. on how Kafka interleaved the partitions in that run; a day covers any interleaving of this
# stream, so the two runs differ by their format only. The Protobuf one's topics are
# {"name": ..., "format": "protobuf"} instead of a bare name.
python3 - "$fr_work/json.json" "$fr_work/pb.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    c = json.load(open(path))
    c["join"] = {"allowed_lateness": "1d"}
    if path.endswith("pb.json"):
        c["kafka"]["topics"] = {k: {"name": v, "format": "protobuf"} for k, v in c["kafka"]["topics"].items()}
    json.dump(c, open(path, "w"), indent=1)
PY

fr_topics "$prefix"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/json.json" 2>"$fr_work/load-json.log" ||
  { cat "$fr_work/load-json.log"; fr_fail "loading JSON failed"; }
"$FRESHET_BIN" run -c "$fr_work/json.json" --exit-when-idle 4 >"$fr_work/report-json.txt" 2>"$fr_work/json.log" ||
  { cat "$fr_work/json.log"; fr_fail "the JSON daemon failed"; }

topic_tool --delete --topic "$prefix-.*" >/dev/null
for _ in $(seq 1 100); do
  [[ -z "$(topic_tool --list | grep -F "$prefix-" || true)" ]] && break
  sleep 0.2
done
fr_topics "$prefix"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/pb.json" --schema-id 7 2>"$fr_work/load-pb.log" ||
  { cat "$fr_work/load-pb.log"; fr_fail "loading Protobuf failed"; }
cat "$fr_work/load-pb.log"
grep -q "$lines acknowledged, 0 unparsable" "$fr_work/load-pb.log" || fr_fail "not every line was produced as Protobuf"
fr_pass "loaded $lines lines as JSON, then as Protobuf (Confluent framing, schema id 7) into the same topics"
"$FRESHET_BIN" run -c "$fr_work/pb.json" --exit-when-idle 4 >"$fr_work/report-pb.txt" 2>"$fr_work/pb.log" ||
  { cat "$fr_work/pb.log"; fr_fail "the Protobuf daemon failed"; }

cat "$fr_work/report-pb.txt"
consumed=$(fr_field consumed "$fr_work/report-pb.txt")
[[ "$consumed" == "$lines" ]] || fr_fail "the Protobuf daemon consumed $consumed of $lines messages"
for r in unknown_scenario=1 bad_ts=1 bad_id=1 bad_features=1 bad_sample_rate=1 oversized=1; do
  grep -q "rejected.$r" "$fr_work/report-pb.txt" || fr_fail "Protobuf: rejected.$r missing from the report"
done
diff "$fr_work/report-json.txt" "$fr_work/report-pb.txt" ||
  fr_fail "the reports of the JSON and the Protobuf runs differ"
fr_accounting_ok "$fr_work/report-pb.txt" || fr_fail "accounting does not balance"
fr_pass "identical reports: the same counts, rejection reasons and progressive metrics from both formats"

digest() { "$FRESHET_BIN" inspect "$1" | awk '/^digest/ { print $2 }'; }
dj=$(digest "$fr_work/state-json")
dp=$(digest "$fr_work/state-pb")
[[ -n "$dj" && "$dj" == "$dp" ]] || fr_fail "checkpoint digests differ: JSON $dj, Protobuf $dp"
fr_pass "bit-identical checkpoints from JSON and Protobuf ($dj)"

# JSON text on the Protobuf topics: each is malformed there, counted, and the good events around it
# still count.
head -n 3 "$fr_work/events.jsonl" >"$fr_work/stray.jsonl"
"$FRESHET_BIN" load "$fr_work/stray.jsonl" -c "$fr_work/pb.json" --format json 2>/dev/null ||
  fr_fail "loading JSON onto the Protobuf topics failed"
before=$(grep -o 'rejected.malformed_json=[0-9]*' "$fr_work/report-pb.txt" | cut -d= -f2 || true)
"$FRESHET_BIN" run -c "$fr_work/pb.json" --exit-when-idle 4 >"$fr_work/report-pb2.txt" 2>"$fr_work/pb2.log" ||
  { cat "$fr_work/pb2.log"; fr_fail "the Protobuf daemon failed on JSON text"; }
after=$(grep -o 'rejected.malformed_json=[0-9]*' "$fr_work/report-pb2.txt" | cut -d= -f2 || true)
[[ "$((${after:-0} - ${before:-0}))" == 3 ]] ||
  fr_fail "3 JSON messages on a Protobuf topic: malformed_json went from ${before:-0} to ${after:-0}"
grep -q 'malformed Protobuf' "$fr_work/pb2.log" || fr_fail "the rejection was not logged as malformed Protobuf"
fr_pass "JSON text on a Protobuf topic: 3 rejected as malformed_json, logged, the daemon carried on"
