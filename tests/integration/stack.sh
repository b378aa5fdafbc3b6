# shellcheck shell=bash
# Integration-test helpers: bring up the local Kafka + Redis stack (deploy/stack.sh) for a test script.
# Source it, do not run it. It does not change the caller's shell options (set -e etc.).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
#   fr_stack_up                       # exits 77 (skip) when Java is absent, returns 1 when the stack fails
#   trap fr_stack_down EXIT
#   ... use "$FRESHET_KAFKA" (host:port) and "$FRESHET_REDIS_PORT" ...
#
# fr_stack_up reuses a stack that already answers (started by hand, by another test, or provided by CI) and
# fr_stack_down stops only a stack this shell started; FRESHET_STACK_KEEP=1 keeps it running for the next test.
# Ports and the run dir follow deploy/stack.sh: FRESHET_KAFKA_PORT, FRESHET_REDIS_PORT, FRESHET_RUN_DIR.

FR_STACK_REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FRESHET_KAFKA_PORT="${FRESHET_KAFKA_PORT:-19092}"
FRESHET_REDIS_PORT="${FRESHET_REDIS_PORT:-16379}"
FRESHET_KAFKA="127.0.0.1:$FRESHET_KAFKA_PORT"
export FRESHET_KAFKA_PORT FRESHET_REDIS_PORT FRESHET_KAFKA
FR_STACK_STARTED=0

# fr_stack_answers: true when Kafka accepts connections and Redis answers PING.
fr_stack_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$FRESHET_KAFKA_PORT") 2>/dev/null || return 1
  command -v redis-cli >/dev/null 2>&1 || return 1
  [[ "$(redis-cli -h 127.0.0.1 -p "$FRESHET_REDIS_PORT" ping 2>/dev/null || true)" == PONG ]]
}

fr_stack_up() {
  if fr_stack_answers; then
    echo "fr_stack_up: reusing the stack already answering at kafka=$FRESHET_KAFKA redis=127.0.0.1:$FRESHET_REDIS_PORT"
    return 0
  fi
  if ! command -v java >/dev/null 2>&1 && [[ ! -x "${JAVA_HOME:-/nonexistent}/bin/java" ]]; then
    echo "SKIP: java not found, cannot run a local Kafka broker (run deploy/install-deps.sh)" >&2
    exit 77
  fi
  if ! FRESHET_SKIP_INSTALL=1 "$FR_STACK_REPO_DIR/deploy/stack.sh" up; then
    echo "fr_stack_up: deploy/stack.sh up failed (logs under ${FRESHET_RUN_DIR:-$FR_STACK_REPO_DIR/.run})" >&2
    return 1
  fi
  FR_STACK_STARTED=1
}

fr_stack_down() {
  if [[ "$FR_STACK_STARTED" != 1 ]]; then
    return 0
  fi
  if [[ "${FRESHET_STACK_KEEP:-0}" == 1 ]]; then
    echo "fr_stack_down: FRESHET_STACK_KEEP=1, leaving the stack running (deploy/stack.sh down stops it)"
    return 0
  fi
  "$FR_STACK_REPO_DIR/deploy/stack.sh" down
  FR_STACK_STARTED=0
}
