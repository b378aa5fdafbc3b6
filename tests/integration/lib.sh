# shellcheck shell=bash
# Shared by the integration tests: a scratch directory, per-test topics and configs, and
# readers of `freshet inspect` / report output. Sourced, not run.
set -euo pipefail
: "${FRESHET_BIN:?run through ctest, which sets FRESHET_BIN}"
: "${FRESHET_SOURCE_DIR:?run through ctest, which sets FRESHET_SOURCE_DIR}"
# shellcheck source=tests/integration/stack.sh
source "$FRESHET_SOURCE_DIR/tests/integration/stack.sh"

fr_work="$(mktemp -d "${TMPDIR:-/tmp}/freshet-it.XXXXXX")"
fr_cleanup_hooks=()
fr_cleanup() {
  local h
  for h in "${fr_cleanup_hooks[@]}"; do eval "$h" || true; done
  [[ -n "${FRESHET_KEEP_WORK:-}" ]] && echo "kept $fr_work" || rm -rf "$fr_work"
}
trap fr_cleanup EXIT

fr_fail() { echo "FAIL: $*" >&2; exit 1; }
fr_pass() { echo "ok: $*"; }

# fr_topics PREFIX: creates PREFIX-impressions, PREFIX-clicks, PREFIX-conversions (4 partitions each).
fr_topics() {
  FRESHET_TOPICS="$1-impressions,$1-clicks,$1-conversions" bash "$FRESHET_SOURCE_DIR/deploy/kafka.sh" create-topics >/dev/null
}

# fr_config FILE TOPIC_PREFIX STATE_DIR [REDIS_PREFIX]: a config for one daemon of a test.
# FRESHET_TEST_MODEL (optional): a JSON object used as the config's "model" section, to run a test
# against another architecture, e.g. FRESHET_TEST_MODEL='{"architecture": "taml"}'.
fr_config() {
  local redis_host="" redis_prefix="${4:-}"
  [[ -n "$redis_prefix" ]] && redis_host=127.0.0.1
  cat >"$1" <<JSON
{
  "kafka": {"brokers": "$FRESHET_KAFKA", "group_id": "$2-group-$RANDOM$RANDOM",
            "topics": {"impressions": "$2-impressions", "clicks": "$2-clicks", "conversions": "$2-conversions"}},
  "checkpoint": {"dir": "$3", "every_seconds": 1, "every_samples": 3000},
  "redis": {"host": "$redis_host", "port": $FRESHET_REDIS_PORT, "prefix": "${redis_prefix:-unused}", "keep_versions": 3},
  "model": ${FRESHET_TEST_MODEL:-{\}},
  "status_every_seconds": 2
}
JSON
}

# fr_field KEY FILE: the value of "KEY=value" in a report or inspect output (first match).
fr_field() { grep -o "$1=[-0-9.]*" "$2" | head -n 1 | cut -d= -f2; }

# fr_metric TASK SCENARIO COLUMN FILE: a column (3 = auc, 4 = logloss) of the metrics table row.
fr_metric() { awk -v t="$1" -v s="$2" -v c="$3" '$1 == t && $2 == s { print $(c + 1); exit }' "$4"; }

# fr_accounting_ok REPORT: for every event type, events == joined + pending + all dropped.
fr_accounting_ok() {
  awk '$2 ~ /^events=/ {
         n = 0; split($0, kv, " ");
         for (i in kv) { split(kv[i], p, "="); v[p[1]] = p[2] }
         d = 0; for (k in v) if (k ~ /^dropped\./) d += v[k];
         if (v["events"] != v["joined"] + v["pending"] + d) { print "unbalanced: " $0; bad = 1 }
         delete v }
       END { exit bad }' "$1"
}

# fr_float_ge A B: A >= B for decimals.
fr_float_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# fr_private_redis: a redis-server of this test's own on a free loopback port, without persistence, in the
# scratch directory; sets fr_redis_port and stops it at exit. fr_redis_down stops it, fr_redis_up starts it
# again (empty). For tests that stop Redis, or that must not depend on the shared stack.
fr_private_redis() {
  fr_redis_port=0
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fr_redis_port=$p; break; fi
  done
  [[ $fr_redis_port != 0 ]] || fr_fail "no free port for a private redis-server"
  fr_cleanup_hooks+=("fr_redis_down")
  fr_redis_up
}
fr_redis_up() {
  redis-server --port "$fr_redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$fr_work/redis.pid" --logfile "$fr_work/redis.log" --dir "$fr_work" >/dev/null
  for _ in $(seq 100); do [[ "$(redis-cli -p "$fr_redis_port" ping 2>/dev/null)" == PONG ]] && return 0; sleep 0.1; done
  fr_fail "private redis-server did not start on $fr_redis_port"
}
fr_redis_down() {
  local pid
  pid=$(cat "$fr_work/redis.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$fr_work/redis.pid"
}

# fr_verify WHAT CONFIG [STATE_DIR]: `freshet verify` must find Redis serving exactly the checkpoint (rows, dense).
fr_verify() {
  local out="$fr_work/verify.$RANDOM.txt" state=()
  [[ -n "${3:-}" ]] && state=(--state "$3")
  if ! "$FRESHET_BIN" verify -c "$2" "${state[@]}" >"$out" 2>&1; then
    cat "$out"
    fr_fail "$1: Redis does not serve exactly the checkpoint"
  fi
  fr_pass "$1: verify: $(grep '^rows:' "$out")"
}

# fr_metrics_port LOG PID: the port a daemon started with "metrics": {"listen": "127.0.0.1:0"} serves /metrics
# on, read from its log (waits up to 10 s); fails the test, stopping PID, when it never says.
fr_metrics_port() {
  local port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$1")
    [[ -n "$port" ]] && { echo "$port"; return 0; }
    sleep 0.1
  done
  kill "$2" 2>/dev/null || true
  cat "$1" >&2
  fr_fail "the daemon did not start its metrics endpoint"
}
