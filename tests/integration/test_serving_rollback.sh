#!/usr/bin/env bash
# Serving from the command line: `freshet score` decodes EVENTS.md impressions with the manifest's own
# field list and scores them like the trainer; `freshet rollback` makes the previous retained version
# active again, and a `freshet score --follow` running meanwhile picks both the rollback and the
# roll-forward up from the change stream. Uses the stack's Redis under a fresh prefix.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up
prefix="svr$RANDOM$RANDOM"
fr_cleanup_hooks+=("redis-cli -p $FRESHET_REDIS_PORT --scan --pattern '$prefix:*' | xargs -r redis-cli -p $FRESHET_REDIS_PORT unlink >/dev/null")
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 20000 --days 3 --seed 43 2>/dev/null
fr_config "$fr_work/config.json" "$prefix-unused" "$fr_work/state" "$prefix"
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/replay.log" ||
  { cat "$fr_work/replay.log"; fr_fail "replay failed"; }

# parity: score (JSON through the manifest's decoder) = the trainer's prediction
"$FRESHET_BIN" score -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 400 >"$fr_work/score.txt"
"$FRESHET_BIN" pull -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 400 --state "$fr_work/state" \
  >"$fr_work/pull.txt"
n=$(grep -c '^score ' "$fr_work/score.txt")
(( n >= 100 )) || fr_fail "freshet score scored only $n impressions"
# pull prints the trainer's pCTR with 6 decimals: compare within rounding
join <(awk '/^score / { split($7, a, "="); print $2, a[2] }' "$fr_work/pull.txt" | sort) \
     <(awk '/^score / { split($4, a, "="); print $2, a[2] }' "$fr_work/score.txt" | sort) >"$fr_work/joined.txt"
[[ $(wc -l <"$fr_work/joined.txt") == "$n" ]] || fr_fail "score and pull scored different impressions"
awk '{ d = $2 - $3; if (d < 0) d = -d; if (d > 1.5e-6) { if (bad++ < 5) print "differs:", $0 } } END { exit bad > 0 }' \
  "$fr_work/joined.txt" || fr_fail "freshet score disagrees with the trainer"
fr_pass "freshet score = trainer on $n impressions (JSON decoded with the manifest's field list)"

active=$(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active")
"$FRESHET_BIN" score -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 50 --follow 6 \
  >"$fr_work/follow.txt" &
follower=$!
sleep 1.5
"$FRESHET_BIN" rollback -c "$fr_work/config.json" | tee "$fr_work/rollback.txt"
previous=$(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active")
(( previous < active )) || fr_fail "rollback did not go back (active $active, now $previous)"
grep -q "active version $active -> $previous" "$fr_work/rollback.txt" || fr_fail "rollback did not say what it did"
"$FRESHET_BIN" score -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 400 >"$fr_work/score2.txt"
head -n 1 "$fr_work/score2.txt" | grep -q "^version $previous\$" || fr_fail "score does not load the rolled-back version"
cmp -s <(grep '^score' "$fr_work/score.txt") <(grep '^score' "$fr_work/score2.txt") &&
  fr_fail "the rolled-back version scores like the newer one"
sleep 1.5
"$FRESHET_BIN" rollback -c "$fr_work/config.json" --to "$active" >/dev/null
wait $follower || fr_fail "score --follow failed"
cat "$fr_work/follow.txt"
grep -q "^version $previous\$" "$fr_work/follow.txt" || fr_fail "the follower did not load the rolled-back version"
grep -q "final version $active\$" "$fr_work/follow.txt" || fr_fail "the follower did not follow the roll-forward"
grep -q " 0 errors" "$fr_work/follow.txt" || fr_fail "the follower had errors"
"$FRESHET_BIN" rollback -c "$fr_work/config.json" --to 999999 2>"$fr_work/bad.txt" && fr_fail "rollback to a missing version succeeded"
grep -q "not retained" "$fr_work/bad.txt" || fr_fail "no clear message for a missing version"
fr_pass "rollback $active -> $previous -> $active, followed by a running reader through the change stream"
