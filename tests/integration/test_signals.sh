#!/usr/bin/env bash
# SIGTERM and SIGINT stop `freshet replay` and `freshetd` cleanly with OpenBLAS's worker threads
# running (no OPENBLAS_NUM_THREADS in the environment): exit 0, a final checkpoint that holds
# exactly what the run reports it consumed, and the Redis writer lease released. Before the fix,
# OpenBLAS's threads (started before main) took the signal and the process died with 143.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fr_stack_up
unset OPENBLAS_NUM_THREADS GOTO_NUM_THREADS OMP_NUM_THREADS
prefix="sig$RANDOM$RANDOM"
fr_cleanup_hooks+=("redis-cli -p $FRESHET_REDIS_PORT --scan --pattern '$prefix*' | xargs -r redis-cli -p $FRESHET_REDIS_PORT unlink >/dev/null")
freshetd="$(dirname "$FRESHET_BIN")/freshetd"
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 60000 --days 3 --seed 47 2>/dev/null
total=$(grep -c . "$fr_work/events.jsonl")

# OpenBLAS starts one worker thread per core beyond the first: with one core there is none, and
# nothing here could fail (the machines this runs on have two).
(( $(nproc) >= 2 )) || echo "note: one core, so OpenBLAS starts no worker thread; the old failure cannot show here"

# cfg FILE STATE REDIS_PREFIX [TOPIC_PREFIX]
cfg() {
  fr_config "$1" "${4:-$prefix-unused}" "$2" "$3"
  sed -i 's/"every_seconds": 1, "every_samples": 3000/"every_seconds": 1, "every_samples": 2000/' "$1"
}
checkpointed() { "$FRESHET_BIN" inspect "$1" 2>/dev/null | fr_field consumed /dev/stdin || true; }
lease() { redis-cli -p "$FRESHET_REDIS_PORT" get "$1:writer"; }

# stop_and_check NAME SIGNAL STATE REDIS_PREFIX COMMAND...: starts COMMAND, waits until it has
# published (it holds the lease), checks that every one of its threads blocks SIGINT and SIGTERM,
# sends SIGNAL and checks the exit code, the final checkpoint and the lease.
stop_and_check() {
  local name=$1 sig=$2 state=$3 rp=$4 pid rc=0 t mask threads=0 unblocked=""
  shift 4
  # env --default-signal: a background job of a script starts with SIGINT ignored; a terminal's Ctrl-C
  # finds it at its default, as here
  env --default-signal=INT,TERM "$@" >"$fr_work/$name.out" 2>"$fr_work/$name.log" &
  pid=$!
  for _ in $(seq 1 600); do
    [[ -n "$(lease "$rp")" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$fr_work/$name.log"; fr_fail "$name: exited before publishing"; }
    sleep 0.1
  done
  [[ -n "$(lease "$rp")" ]] || fr_fail "$name: never took the writer lease"
  for t in /proc/"$pid"/task/*; do
    mask=$(awk '/^SigBlk:/ { print $2 }' "$t/status" 2>/dev/null) || continue
    [[ -n "$mask" ]] || continue
    threads=$((threads + 1))
    (( (16#$mask & 0x4002) == 0x4002 )) || unblocked+=" ${t##*/} (SigBlk $mask)"
  done
  kill -"$sig" "$pid"
  wait "$pid" || rc=$?
  [[ $rc == 0 ]] || { tail -n 5 "$fr_work/$name.log"; fr_fail "$name: SIG$sig: exit code $rc, expected 0; threads that do not block SIGINT and SIGTERM:${unblocked:- none}"; }
  [[ -z "$unblocked" ]] || fr_fail "$name: threads that do not block SIGINT and SIGTERM:$unblocked"
  grep -q 'stop requested' "$fr_work/$name.log" || fr_fail "$name: SIG$sig: it did not say it was stopping"
  local reported stored
  reported=$(fr_field consumed "$fr_work/$name.out")
  stored=$(checkpointed "$state")
  [[ -n "$reported" && "$reported" == "$stored" ]] ||
    fr_fail "$name: SIG$sig: the checkpoint holds consumed=$stored, the run reported consumed=$reported"
  [[ -z "$(lease "$rp")" ]] || fr_fail "$name: SIG$sig: the writer lease is still held: $(lease "$rp")"
  fr_pass "$name: SIG$sig with $threads threads: exit 0, final checkpoint at $stored of $total events, lease released"
}

cfg "$fr_work/replay.json" "$fr_work/replay-state" "$prefix-r"
stop_and_check replay-term TERM "$fr_work/replay-state" "$prefix-r" \
  "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/replay.json"
stop_and_check replay-int INT "$fr_work/replay-state" "$prefix-r" \
  "$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/replay.json"
grep -q 'resuming' "$fr_work/replay-int.log" || fr_fail "the second replay did not resume from the first one's checkpoint"

fr_topics "$prefix"
cfg "$fr_work/daemon.json" "$fr_work/daemon-state" "$prefix-d" "$prefix"
"$FRESHET_BIN" load "$fr_work/events.jsonl" -c "$fr_work/daemon.json" 2>/dev/null
stop_and_check freshetd-term TERM "$fr_work/daemon-state" "$prefix-d" "$freshetd" -c "$fr_work/daemon.json"
stop_and_check freshetd-int INT "$fr_work/daemon-state" "$prefix-d" "$freshetd" -c "$fr_work/daemon.json"
