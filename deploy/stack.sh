#!/usr/bin/env bash
# The whole local stack Freshet runs against: Kafka (with the event topics) and Redis.
# Usage: deploy/stack.sh up|down|status
# Environment: FRESHET_SKIP_INSTALL=1 skips deploy/install-deps.sh; see deploy/kafka.sh and deploy/redis.sh for the rest.
set -euo pipefail

FR_NAME=stack
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

KAFKA_ENDPOINT="$FR_HOST:${FRESHET_KAFKA_PORT:-19092}"
REDIS_ENDPOINT="$FR_HOST:${FRESHET_REDIS_PORT:-16379}"

# Serialise concurrent up/down (e.g. two test scripts starting the stack at once). Children get `9>&-` so the
# daemons they leave running do not inherit the lock.
lock() {
  fr_init_run_dir
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$FR_RUN_DIR/stack.lock"
    flock -w 300 9 || fr_die "another deploy/stack.sh holds $FR_RUN_DIR/stack.lock"
  fi
}

cmd_up() {
  local t0
  t0="$(fr_now_ms)"
  lock
  if [[ "${FRESHET_SKIP_INSTALL:-0}" == 1 ]]; then
    fr_log "FRESHET_SKIP_INSTALL=1: not checking Debian packages"
  else
    "$FR_DEPLOY_DIR/install-deps.sh"
  fi
  "$FR_DEPLOY_DIR/kafka.sh" start 9>&-
  "$FR_DEPLOY_DIR/kafka.sh" create-topics 9>&-
  "$FR_DEPLOY_DIR/redis.sh" start 9>&-
  fr_log "up in $(fr_elapsed "$t0") s"
  echo "kafka=$KAFKA_ENDPOINT redis=$REDIS_ENDPOINT"
}

cmd_down() {
  local rc=0
  lock
  "$FR_DEPLOY_DIR/redis.sh" stop 9>&- || rc=1
  "$FR_DEPLOY_DIR/kafka.sh" stop 9>&- || rc=1
  return "$rc"
}

cmd_status() {
  local rc=0
  "$FR_DEPLOY_DIR/kafka.sh" status || rc=3
  "$FR_DEPLOY_DIR/redis.sh" status || rc=3
  [[ $rc -eq 0 ]] && echo "kafka=$KAFKA_ENDPOINT redis=$REDIS_ENDPOINT"
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
