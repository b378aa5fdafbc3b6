#!/usr/bin/env bash
# What a serving team does: `cmake --install` into a prefix, compile and link a small C program
# (tests/integration/serving_client.c) against the installed header and library through pkg-config
# (shared, then the static archive), and run it against a private redis-server loaded with a model
# the trainer published under join.policy fnc: it prints exactly what `freshet score` prints, and
# `freshet pull` finds the served scores equal to the checkpoint's model served the same way. The
# installed header compiles on its own, and the library links neither RocksDB, librdkafka nor
# libmicrohttpd and exports only the freshet_* API. Needs redis-server and a C compiler, not Kafka.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${FRESHET_BUILD_DIR:?run through ctest, which sets FRESHET_BUILD_DIR}"
for tool in redis-server redis-cli pkg-config cc nm ldd; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found" >&2; exit 77; }
done

prefix="$fr_work/prefix"
cmake --install "$FRESHET_BUILD_DIR" --prefix "$prefix" >"$fr_work/install.log" ||
  { cat "$fr_work/install.log"; fr_fail "cmake --install failed"; }
libdir=$(dirname "$(find "$prefix" -name freshet_serving.pc | head -n 1)")/..
so="$libdir/libfreshet_serving.so"
[[ -f "$prefix/include/freshet_serving.h" && -e "$so" && -f "$libdir/libfreshet_serving.a" ]] ||
  fr_fail "the header, libfreshet_serving.so or libfreshet_serving.a is not installed"
export PKG_CONFIG_PATH="$libdir/pkgconfig"

# the library a serving process loads: no RocksDB, Kafka or HTTP server, only the public API
ldd "$so" >"$fr_work/ldd.txt"
if grep -Ei 'rocksdb|rdkafka|microhttpd' "$fr_work/ldd.txt"; then fr_fail "libfreshet_serving.so links the above"; fi
grep -q hiredis "$fr_work/ldd.txt" && grep -q openblas "$fr_work/ldd.txt" ||
  fr_fail "libfreshet_serving.so does not link hiredis and OpenBLAS"
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ { print $3 }' >"$fr_work/exported.txt"
grep -v '^freshet_' "$fr_work/exported.txt" && fr_fail "libfreshet_serving.so exports more than freshet_*"
grep -q '^freshet_serving_score$' "$fr_work/exported.txt" || fr_fail "freshet_serving_score is not exported"
nm -u "$libdir/libfreshet_serving.a" 2>/dev/null | grep -E ' (rocksdb_|rd_kafka_|MHD_)' &&
  fr_fail "libfreshet_serving.a needs RocksDB, librdkafka or libmicrohttpd"
fr_pass "installed: header, shared and static library, pkg-config; no RocksDB/Kafka/MHD, only freshet_* exported"

# a consumer's build; with a sanitized build the consumer needs the same runtime first
san=()
[[ "${FRESHET_SANITIZE:-0}" == 1 ]] && san=(-fsanitize=address,undefined)
echo '#include <freshet_serving.h>' >"$fr_work/alone.c"
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Wall -Wextra -Werror $(pkg-config --cflags freshet_serving) -c "$fr_work/alone.c" \
  -o "$fr_work/alone.o" || fr_fail "the installed header does not compile on its own"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" "$FRESHET_SOURCE_DIR/tests/integration/serving_client.c" \
  -o "$fr_work/client" $(pkg-config --cflags --libs freshet_serving) -Wl,-rpath,"$libdir" ||
  fr_fail "serving_client does not build against the installed library"
# the archive, with its dependencies (Requires.private) as the system's shared libraries
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" "$FRESHET_SOURCE_DIR/tests/integration/serving_client.c" \
  -o "$fr_work/client-static" $(pkg-config --cflags freshet_serving) "$libdir/libfreshet_serving.a" \
  $(pkg-config --libs $(pkg-config --print-requires-private freshet_serving)) -lpthread -lm ||
  fr_fail "serving_client does not link the static archive"
ldd "$fr_work/client-static" | grep -q libfreshet_serving && fr_fail "the static client loads the shared library"
fr_pass "a C program builds against the installed library (pkg-config), shared and static"

# a private redis-server with a model trained under fnc (the policy whose serving is calibrated)
port=$(( 30000 + RANDOM % 20000 ))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$(( 30000 + RANDOM % 20000 )); done
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$fr_work/redis.pid" --logfile "$fr_work/redis.log" >/dev/null
# stopped (and waited for: it writes its log while shutting down) before the scratch dir goes
fr_cleanup_hooks+=("pid=\$(cat '$fr_work/redis.pid'); kill \$pid; while kill -0 \$pid 2>/dev/null; do sleep 0.1; done")
for _ in $(seq 50); do [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 20000 --days 3 --seed 17 2>/dev/null
cat >"$fr_work/config.json" <<JSON
{"checkpoint": {"dir": "$fr_work/state", "every_seconds": 0, "every_samples": 5000},
 "redis": {"host": "127.0.0.1", "port": $port, "prefix": "inst", "keep_versions": 2},
 "join": {"policy": "fnc"}}
JSON
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/config.json" >/dev/null 2>"$fr_work/replay.log" ||
  { cat "$fr_work/replay.log"; fr_fail "replay failed"; }
redis-cli -p "$port" get "inst:{v$(redis-cli -p "$port" get inst:active)}:manifest" | grep -q '"serve_transform":"odds"' ||
  fr_fail "the manifest of an fnc model does not name its serve transform"

"$fr_work/client" 127.0.0.1 "$port" inst 400 <"$fr_work/events.jsonl" >"$fr_work/client.txt" ||
  fr_fail "serving_client failed"
"$fr_work/client-static" 127.0.0.1 "$port" inst 400 <"$fr_work/events.jsonl" >"$fr_work/client-static.txt" ||
  fr_fail "serving_client (static) failed"
"$FRESHET_BIN" score -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 2000 >"$fr_work/score.txt"
n=$(grep -c '^score ' "$fr_work/client.txt")
(( n == 400 )) || fr_fail "serving_client scored $n impressions, expected 400"
head -n $((n + 1)) "$fr_work/score.txt" >"$fr_work/score-head.txt"
cmp "$fr_work/client.txt" "$fr_work/score-head.txt" || {
  diff "$fr_work/client.txt" "$fr_work/score-head.txt" | head; fr_fail "serving_client and freshet score differ"; }
cmp -s "$fr_work/client.txt" "$fr_work/client-static.txt" || fr_fail "the static client scores differently"
fr_pass "serving_client (installed library, shared and static) prints what freshet score prints on $n impressions"

"$FRESHET_BIN" pull -c "$fr_work/config.json" --events "$fr_work/events.jsonl" --limit 400 --state "$fr_work/state" \
  >"$fr_work/pull.txt" || fr_fail "freshet pull failed"
diff_line=$(grep '^max |redis - trainer|' "$fr_work/pull.txt") || fr_fail "freshet pull compared nothing"
awk -v d="${diff_line##*: }" 'BEGIN { exit !(d <= 1e-6) }' || fr_fail "pull: $diff_line"
fr_pass "freshet pull: $diff_line (the checkpoint's model served with the manifest's transform)"
