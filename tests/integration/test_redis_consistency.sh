#!/usr/bin/env bash
# Redis serves exactly the trainer's last checkpoint (`freshet verify`: every row, both directions, and the
# active dense blob) after each way the two used to drift apart: a new model on a prefix used before, a restart
# from an older checkpoint, evictions checkpointed but never pushed, SIGKILLs during replays with evictions, and
# SIGKILLs while tables move to more shard hashes (which leaves every row hash compact).
# And a run that was asked to publish and could not says so and exits 3 (another daemon's lease, Redis
# unreachable); a prefix the publisher would refuse is refused when the configuration loads (exit 2).
# Replays only, against a redis-server of the test's own: no broker needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_private_redis

"$FRESHET_BIN" gen --out "$fr_work/a.jsonl" --impressions 24000 --days 3 --seed 61 2>/dev/null
"$FRESHET_BIN" gen --out "$fr_work/b.jsonl" --impressions 12000 --days 2 --seed 62 --users 3000 --ads 500 2>/dev/null
split -n l/3 -d "$fr_work/a.jsonl" "$fr_work/part"

# cfg FILE STATE PREFIX [FIELDS]: a replay config publishing to the private Redis; FIELDS replaces the field list.
cfg() {
  local fields=""
  [[ -n "${4:-}" ]] && fields=", \"fields\": $4"
  cat >"$1" <<JSON
{"checkpoint": {"dir": "$2", "every_seconds": 0, "every_samples": 2000},
 "redis": {"host": "127.0.0.1", "port": $fr_redis_port, "prefix": "$3", "keep_versions": 3}$fields}
JSON
}
replay() { # FILE CONFIG [ARGS...]: a replay that must succeed
  local f=$1 c=$2
  shift 2
  "$FRESHET_BIN" replay "$f" -c "$c" "$@" >/dev/null 2>>"$fr_work/replay.log" || { tail -n 5 "$fr_work/replay.log"; fr_fail "replay of $f failed"; }
}
ttl_fields='[{"name": "user_id", "kind": "categorical", "ttl": "2h"}, {"name": "user_age", "kind": "categorical"},
  {"name": "device", "kind": "categorical"}, {"name": "ad_id", "kind": "categorical", "ttl": "2h"},
  {"name": "advertiser", "kind": "categorical"}, {"name": "category", "kind": "categorical"},
  {"name": "hour", "kind": "categorical"}, {"name": "price", "kind": "numeric", "transform": "log1p"},
  {"name": "recent_ads", "kind": "multi", "max_len": 8, "ttl": "2h"}]'
fewer_fields='[{"name": "user_id", "kind": "categorical"}, {"name": "ad_id", "kind": "categorical"},
  {"name": "category", "kind": "categorical"}, {"name": "price", "kind": "numeric", "transform": "log1p"}]'

# 1. A new model (other fields, other data) on a prefix another model published under.
cfg "$fr_work/old.json" "$fr_work/old" reused
cfg "$fr_work/new.json" "$fr_work/new" reused "$fewer_fields"
replay "$fr_work/a.jsonl" "$fr_work/old.json"
replay "$fr_work/b.jsonl" "$fr_work/new.json"
fr_verify "a new model on a used prefix" "$fr_work/new.json"

# 2. A restart from an older checkpoint: the rows of the abandoned run go, the version number is new.
cfg "$fr_work/restore.json" "$fr_work/restore" restore
replay "$fr_work/part00" "$fr_work/restore.json"
cp -r "$fr_work/restore" "$fr_work/restore.old"
replay "$fr_work/part01" "$fr_work/restore.json"
abandoned=$(redis-cli -p "$fr_redis_port" get restore:active)
rm -rf "$fr_work/restore" && mv "$fr_work/restore.old" "$fr_work/restore"
replay "$fr_work/part02" "$fr_work/restore.json"
fr_verify "a restart from an older checkpoint" "$fr_work/restore.json"
now=$(redis-cli -p "$fr_redis_port" get restore:active)
(( now > abandoned )) || fr_fail "the restored run published version $now, not above the abandoned run's $abandoned"
fr_pass "the restored run publishes version $now, above the abandoned run's $abandoned"

# 3. Evictions checkpointed but never pushed (a stop between the checkpoint and the push, here a run that does
#    not publish), then a run that does.
cfg "$fr_work/evict.json" "$fr_work/evict" evict "$ttl_fields"
replay "$fr_work/part00" "$fr_work/evict.json"
replay "$fr_work/part01" "$fr_work/evict.json" --no-publish
replay "$fr_work/part02" "$fr_work/evict.json"
fr_verify "evictions that were checkpointed and not pushed" "$fr_work/evict.json"

# 4. SIGKILLs at random moments during replays that evict, then a run to the end.
cfg "$fr_work/kill.json" "$fr_work/kill" kill "$ttl_fields"
kills=0
for round in 1 2 3 4 5 6; do
  "$FRESHET_BIN" replay "$fr_work/a.jsonl" -c "$fr_work/kill.json" >/dev/null 2>>"$fr_work/kill.log" &
  pid=$!
  # early in each run: a resumed replay has less left to do, and a fast machine finishes it in about a second
  sleep "0.$((2 + RANDOM % 7))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
done
replay "$fr_work/a.jsonl" "$fr_work/kill.json"
(( kills >= 3 )) || fr_fail "only $kills of 6 kills landed during a replay; make the stream longer"
fr_verify "$kills SIGKILLs during replays with evictions" "$fr_work/kill.json"

# 5. SIGKILLs while tables move to more shard hashes (docs/redis-layout.md, "Shards"): a checkpoint and a push every
#    300 samples grow the user table through counts 1, 2, 4, ... under the smallest hash-max-listpack-entries default
#    (128), so kills land before, during and after moves. After a run to the end Redis serves exactly the checkpoint,
#    the tables moved, and every row hash is in the compact encoding.
redis-cli -p "$fr_redis_port" config set hash-max-listpack-entries 128 >/dev/null
cfg "$fr_work/move.json" "$fr_work/move" move
sed -i 's/"every_samples": 2000/"every_samples": 300/' "$fr_work/move.json"
kills=0
for round in 1 2 3 4 5 6; do
  "$FRESHET_BIN" replay "$fr_work/a.jsonl" -c "$fr_work/move.json" >/dev/null 2>>"$fr_work/move.log" &
  pid=$!
  sleep "0.$((2 + RANDOM % 7))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
done
replay "$fr_work/a.jsonl" "$fr_work/move.json"
(( kills >= 3 )) || fr_fail "only $kills of 6 kills landed during a replay; make the stream longer"
fr_verify "$kills SIGKILLs while tables move to more shard hashes" "$fr_work/move.json"
active=$(redis-cli -p "$fr_redis_port" get move:active)
shards=$(redis-cli -p "$fr_redis_port" get "move:{v$active}:manifest" |
  python3 -c 'import json, sys; print(max(t["shards"] for t in json.load(sys.stdin)["tables"]))')
(( shards >= 16 )) || fr_fail "the largest table has $shards shard hashes: it never moved"
loose=0 hashes=0
while read -r key; do
  hashes=$((hashes + 1))
  [[ $(redis-cli -p "$fr_redis_port" object encoding "$key") == listpack ]] || loose=$((loose + 1))
done < <(redis-cli -p "$fr_redis_port" --scan --pattern 'move:emb:*')
(( loose == 0 )) || fr_fail "$loose of $hashes row hashes left the compact encoding"
fr_pass "the largest table moved to $shards shard hashes; all $hashes row hashes are compact (listpack)"
redis-cli -p "$fr_redis_port" config set hash-max-listpack-entries 512 >/dev/null

# 6. Asked to publish and could not: say so, exit 3 (the work is checkpointed).
cfg "$fr_work/lease.json" "$fr_work/lease" leased
redis-cli -p "$fr_redis_port" set leased:writer "other-host:/srv/other" px 60000 >/dev/null
set +e
"$FRESHET_BIN" replay "$fr_work/part00" -c "$fr_work/lease.json" >/dev/null 2>"$fr_work/lease.log"
rc=$?
set -e
[[ $rc == 3 ]] || { cat "$fr_work/lease.log"; fr_fail "replay blocked by another writer's lease exited $rc, not 3"; }
grep -q 'checkpointed, but NOT published: .*held by another writer ("other-host:/srv/other")' "$fr_work/lease.log" ||
  { cat "$fr_work/lease.log"; fr_fail "no clear message for the lease"; }
fr_pass "another daemon's lease: exit 3, $(grep -o 'held by another writer[^,]*' "$fr_work/lease.log" | head -n 1)"
cfg "$fr_work/down.json" "$fr_work/down" down
sed -i "s/\"port\": $fr_redis_port/\"port\": 1/" "$fr_work/down.json"
set +e
"$FRESHET_BIN" replay "$fr_work/part00" -c "$fr_work/down.json" >/dev/null 2>"$fr_work/down.log"
rc=$?
set -e
[[ $rc == 3 ]] || { cat "$fr_work/down.log"; fr_fail "replay with Redis unreachable exited $rc, not 3"; }
grep -q 'NOT published: .*unreachable' "$fr_work/down.log" || { cat "$fr_work/down.log"; fr_fail "no clear message for an unreachable Redis"; }
fr_pass "Redis unreachable: exit 3 with the reason"
cfg "$fr_work/bad.json" "$fr_work/bad" 'ads{v2}'
set +e
"$FRESHET_BIN" replay "$fr_work/part00" -c "$fr_work/bad.json" >/dev/null 2>"$fr_work/bad.log"
rc=$?
set -e
[[ $rc == 2 ]] && grep -q 'redis.prefix' "$fr_work/bad.log" || { cat "$fr_work/bad.log"; fr_fail "a bad redis.prefix: exit $rc"; }
[[ ! -e "$fr_work/bad" ]] || fr_fail "a bad redis.prefix still started a run"
fr_pass "a bad redis.prefix is refused before the run: $(head -n 1 "$fr_work/bad.log")"
