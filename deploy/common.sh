# shellcheck shell=bash
# Helpers shared by deploy/kafka.sh, deploy/redis.sh and deploy/stack.sh. Sourced, not run.
# The sourcing script sets FR_NAME (prefix of messages) first.
# shellcheck disable=SC2034  # variables used by the scripts that source this file

FR_DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FR_REPO_DIR="$(cd "$FR_DEPLOY_DIR/.." && pwd)"
FR_RUN_DIR="${FRESHET_RUN_DIR:-$FR_REPO_DIR/.run}"
FR_HOST=127.0.0.1

fr_die() { echo "$FR_NAME: error: $*" >&2; exit 1; }
fr_log() { echo "$FR_NAME: $*"; }

# Creates the run dir and makes FR_RUN_DIR absolute (FRESHET_RUN_DIR may be relative to the caller's cwd).
fr_init_run_dir() {
  mkdir -p "$FR_RUN_DIR"
  FR_RUN_DIR="$(cd "$FR_RUN_DIR" && pwd)"
}

fr_now_ms() { date +%s%3N; }

# fr_elapsed START_MS -> "12.3"
fr_elapsed() {
  local d=$(( $(fr_now_ms) - $1 ))
  printf '%d.%d' $(( d / 1000 )) $(( d % 1000 / 100 ))
}

# fr_port_open HOST PORT: true when something accepts TCP connections there.
fr_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# fr_running PID: true while the process exists and is not a zombie (in containers whose pid 1 does not reap
# orphans, a killed daemon can linger as a zombie that `kill -0` still reports).
fr_running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]]
}

# fr_check_port NAME PORT: dies unless PORT is a number.
fr_check_port() {
  [[ "$2" =~ ^[0-9]+$ && "$2" -ge 1 && "$2" -le 65535 ]] || fr_die "$1='$2' is not a TCP port"
}

# fr_live_pid PIDFILE MATCH: prints the pid recorded in PIDFILE when that process is alive and its command line
# contains MATCH (guards against a recycled pid). Removes a stale pid file. Returns 1 when nothing is running.
fr_live_pid() {
  local file=$1 match=$2 pid cmd
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  if [[ -n "$pid" ]] && fr_running "$pid"; then
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ "$cmd" == *"$match"* ]]; then
      echo "$pid"
      return 0
    fi
  fi
  rm -f "$file"
  return 1
}

# fr_stop_pid PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S seconds, then SIGKILL.
fr_stop_pid() {
  local pid=$1 timeout=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < timeout * 10; i++ )); do
    fr_running "$pid" || return 0
    sleep 0.1
  done
  fr_log "pid $pid still alive after ${timeout}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 50; i++ )); do
    fr_running "$pid" || return 0
    sleep 0.1
  done
  fr_die "could not kill pid $pid"
}
