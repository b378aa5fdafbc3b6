#!/usr/bin/env bash
# The Kafka broker stops mid-run and comes back. The daemon keeps running through the outage,
# resumes from its checkpointed offsets, and its final counts equal those of an uninterrupted run
# over the same topics, and Redis serves exactly its last checkpoint (freshet verify). The issue asks for 30 s; CI uses FRESHET_CHAOS_KAFKA_DOWN_S=12 by default
# (set it to 30 for the full one). This stops and restarts the shared broker (deploy/kafka.sh): run
# it alone, as tests/run.sh does.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up
down_s="${FRESHET_CHAOS_KAFKA_DOWN_S:-12}"
kafka() { bash "$FRESHET_SOURCE_DIR/deploy/kafka.sh" "$@" >>"$fr_work/kafka-ctl.log" 2>&1; }
# whatever happens, the broker is running again when this test ends
fr_cleanup_hooks+=("(exec 3<>/dev/tcp/127.0.0.1/$FRESHET_KAFKA_PORT) 2>/dev/null || bash $FRESHET_SOURCE_DIR/deploy/kafka.sh start")

prefix="chk$RANDOM$RANDOM"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 60000 --days 6 --seed 37 --duplicates 0.01 2>/dev/null
lines=$(grep -c . "$fr_work/events.jsonl")
split -n l/2 -d "$fr_work/events.jsonl" "$fr_work/part"
fr_topics "$prefix"
fr_config "$fr_work/chaos.json" "$prefix" "$fr_work/chaos" "$prefix" # publishes: verified at the end
fr_cleanup_hooks+=("redis-cli -p $FRESHET_REDIS_PORT --scan --pattern '$prefix:*' | xargs -r redis-cli -p $FRESHET_REDIS_PORT unlink >/dev/null")
fr_config "$fr_work/ref.json" "$prefix" "$fr_work/ref"
consumed_now() { "$FRESHET_BIN" inspect "$fr_work/chaos" 2>/dev/null | grep -o 'consumed=[0-9]*' | cut -d= -f2 || echo 0; }

"$FRESHET_BIN" load "$fr_work/part00" -c "$fr_work/chaos.json" 2>/dev/null
"$FRESHET_BIN" run -c "$fr_work/chaos.json" >"$fr_work/chaos.txt" 2>"$fr_work/chaos.log" &
daemon=$!
fr_cleanup_hooks+=("kill $daemon 2>/dev/null")
for _ in $(seq 300); do (( $(consumed_now) > 0 )) && break; sleep 0.1; done
(( $(consumed_now) > 0 )) || { cat "$fr_work/chaos.log"; fr_fail "the daemon consumed nothing"; }

kafka stop
before=$(consumed_now)
sleep "$down_s"
kill -0 $daemon || { tail "$fr_work/chaos.log"; fr_fail "the daemon died while the broker was down"; }
fr_pass "broker down ${down_s}s: the daemon kept running (checkpointed $before messages before)"
kafka start || { cat "$fr_work/kafka-ctl.log"; fr_fail "the broker did not restart"; }
"$FRESHET_BIN" load "$fr_work/part01" -c "$fr_work/chaos.json" 2>/dev/null
for _ in $(seq 900); do [[ "$(consumed_now)" == "$lines" ]] && break; sleep 0.1; done
[[ "$(consumed_now)" == "$lines" ]] || { tail "$fr_work/chaos.log"; fr_fail "after the outage: consumed $(consumed_now) of $lines"; }
kill -TERM $daemon
wait $daemon || { tail "$fr_work/chaos.log"; fr_fail "the daemon exited non-zero"; }
fr_pass "resumed after the broker came back: all $lines messages consumed, clean exit"
fr_verify "after the broker outage" "$fr_work/chaos.json"

# the same topics, read by a fresh group from the start, without interruption
"$FRESHET_BIN" run -c "$fr_work/ref.json" --exit-when-idle 4 >"$fr_work/ref.txt" 2>"$fr_work/ref.log" ||
  { cat "$fr_work/ref.log"; fr_fail "the uninterrupted run failed"; }
fr_accounting_ok "$fr_work/chaos.txt" || fr_fail "accounting does not balance after the outage"
acct() { grep -E '^accounting:|^  (impression|click|conversion) |^samples:' "$1" | sed 's/buffered=[0-9]*//'; }
if ! diff <(acct "$fr_work/ref.txt") <(acct "$fr_work/chaos.txt") >"$fr_work/diff.txt"; then
  cat "$fr_work/diff.txt"
  fr_fail "counts differ from the uninterrupted run"
fi
acct "$fr_work/chaos.txt"
fr_pass "counts equal the uninterrupted run's"
