#!/usr/bin/env bash
# Serving from the command line: `freshet score` decodes EVENTS.md impressions with the manifest's own
# field list and scores them like the trainer; `freshet rollback` makes the previous retained version
# active again, and a `freshet score --follow` running meanwhile picks both the rollback and the
# roll-forward up from the change stream; a rollback holds until `freshet rollback --release` (a replay with nothing
# new publishes nothing, one with new input exits 3), and Redis then serves exactly the checkpoint (freshet verify).
# Uses the stack's Redis under a fresh prefix.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up
prefix="svr$RANDOM$RANDOM"
fr_cleanup_hooks+=("redis-cli -p $FRESHET_REDIS_PORT --scan --pattern '$prefix:*' | xargs -r redis-cli -p $FRESHET_REDIS_PORT unlink >/dev/null")
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 20000 --days 3 --seed 43 2>/dev/null
fr_config "$fr_work/config.json" "$prefix-unused" "$fr_work/state" "$prefix"
# the first 80 % now, the rest later as new input
n=$(grep -c . "$fr_work/events.jsonl")
head -n $((n * 4 / 5)) "$fr_work/events.jsonl" >"$fr_work/first.jsonl"
tail -n +$((n * 4 / 5 + 1)) "$fr_work/events.jsonl" >"$fr_work/more.jsonl"
"$FRESHET_BIN" replay "$fr_work/first.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/replay.log" ||
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
fr_verify "after the rollbacks" "$fr_work/config.json"

# A rollback holds until the operator releases it: a replay with nothing new publishes nothing (and exits 0), one
# with new input publishes nothing and exits 3 saying it is held; after --release the newest state is published.
"$FRESHET_BIN" rollback -c "$fr_work/config.json" >"$fr_work/hold.txt"
grep -q "publishing is held at version $previous" "$fr_work/hold.txt" || fr_fail "rollback did not say it holds: $(cat "$fr_work/hold.txt")"
entries=$(redis-cli -p "$FRESHET_REDIS_PORT" xlen "$prefix:changes")
"$FRESHET_BIN" replay "$fr_work/first.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/nothing.log" ||
  { cat "$fr_work/nothing.log"; fr_fail "a replay with nothing new failed"; }
[[ "$(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active")" == "$previous" ]] ||
  fr_fail "a replay with nothing new undid the rollback (active $(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active"))"
[[ "$(redis-cli -p "$FRESHET_REDIS_PORT" xlen "$prefix:changes")" == "$entries" ]] || fr_fail "a replay with nothing new announced a version"
fr_pass "a replay with nothing new published nothing: version $previous stays active"
set +e
"$FRESHET_BIN" replay "$fr_work/more.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/held.log"
rc=$?
set -e
[[ $rc == 3 ]] || { cat "$fr_work/held.log"; fr_fail "a replay held by the rollback exited $rc, not 3"; }
grep -q "publishing is held by a rollback: .*rolled it back to version $previous.*freshet rollback --release" "$fr_work/held.log" ||
  { cat "$fr_work/held.log"; fr_fail "the held replay did not say why"; }
[[ "$(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active")" == "$previous" ]] || fr_fail "new input undid the rollback"
"$FRESHET_BIN" verify -c "$fr_work/config.json" >"$fr_work/verify-held.txt" && fr_fail "verify passed while Redis is behind the checkpoint"
grep -q "^hold: a rollback holds version $previous" "$fr_work/verify-held.txt" || fr_fail "verify does not report the hold"
fr_pass "new input while held: exit 3, version $previous stays active, verify reports Redis behind the checkpoint"
"$FRESHET_BIN" rollback -c "$fr_work/config.json" --release | grep -q "the hold on version $previous is lifted" ||
  fr_fail "rollback --release did not say what it did"
"$FRESHET_BIN" replay "$fr_work/more.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/released.log" ||
  { cat "$fr_work/released.log"; fr_fail "the replay after the release failed"; }
newest=$(redis-cli -p "$FRESHET_REDIS_PORT" get "$prefix:active")
(( newest > active )) || fr_fail "after the release the newest state was not published (active $newest)"
fr_verify "after the release" "$fr_work/config.json"
fr_pass "released: version $newest published"
