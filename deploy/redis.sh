#!/usr/bin/env bash
# Local Redis for Freshet development and tests: loopback only, no persistence.
# Usage: deploy/redis.sh start|stop|status
# Environment: FRESHET_REDIS_PORT (16379), FRESHET_RUN_DIR (<repo>/.run)
set -euo pipefail

FR_NAME=redis
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

REDIS_PORT="${FRESHET_REDIS_PORT:-16379}"
START_TIMEOUT="${FRESHET_REDIS_START_TIMEOUT:-20}"
REDIS_DIR="" PID_FILE="" LOG_FILE=""

init_paths() {
  fr_init_run_dir
  REDIS_DIR="$FR_RUN_DIR/redis"
  PID_FILE="$REDIS_DIR/redis.pid"
  LOG_FILE="$REDIS_DIR/redis.log"
  mkdir -p "$REDIS_DIR"
}

running_pid() { fr_live_pid "$PID_FILE" "redis-server"; }

ping_ok() { [[ "$(redis-cli -h "$FR_HOST" -p "$REDIS_PORT" ping 2>/dev/null || true)" == PONG ]]; }

cmd_start() {
  local t0 pid deadline
  t0="$(fr_now_ms)"
  fr_check_port FRESHET_REDIS_PORT "$REDIS_PORT"
  command -v redis-server >/dev/null 2>&1 || fr_die "redis-server not found: run deploy/install-deps.sh"
  command -v redis-cli >/dev/null 2>&1 || fr_die "redis-cli not found: run deploy/install-deps.sh"
  init_paths
  if pid="$(running_pid)"; then
    fr_log "already running (pid $pid) on $FR_HOST:$REDIS_PORT"
  else
    if fr_port_open "$FR_HOST" "$REDIS_PORT"; then
      fr_die "port $FR_HOST:$REDIS_PORT is already in use by another process (set FRESHET_REDIS_PORT)"
    fi
    rm -f "$PID_FILE"
    # --dir: where redis would put dump files (none are written: --save '' --appendonly no)
    redis-server --bind "$FR_HOST" --port "$REDIS_PORT" --protected-mode yes \
      --save '' --appendonly no --dir "$REDIS_DIR" \
      --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" \
      || fr_die "redis-server failed to start (see $LOG_FILE)"
  fi
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  until ping_ok; do
    if (( $(date +%s) >= deadline )); then
      tail -n 20 "$LOG_FILE" >&2 || true
      fr_die "no PONG from $FR_HOST:$REDIS_PORT within ${START_TIMEOUT}s (see $LOG_FILE)"
    fi
    sleep 0.1
  done
  pid="$(running_pid)" || fr_die "redis answers on $FR_HOST:$REDIS_PORT but its pid file $PID_FILE is missing"
  fr_log "ready on $FR_HOST:$REDIS_PORT (pid $pid, log $LOG_FILE, start took $(fr_elapsed "$t0") s)"
}

cmd_stop() {
  init_paths
  local pid
  if pid="$(running_pid)"; then
    fr_log "stopping pid $pid"
    fr_stop_pid "$pid" 20
    rm -f "$PID_FILE"
    fr_log "stopped"
  else
    fr_log "not running"
  fi
}

cmd_status() {
  init_paths
  local pid
  if pid="$(running_pid)"; then
    echo "redis: running (pid $pid) on $FR_HOST:$REDIS_PORT, log $LOG_FILE"
  else
    echo "redis: not running"
    return 3
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
