#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# The Python serving package (python/) as a user installs it: pip-installed from the repository into a
# scratch directory, loading the libfreshet_serving this build made, and its pytest suite against a private
# redis-server and models the real trainer publishes (parity with `freshet score`, batches, refusals,
# following a push and a rollback, NaN rows refused). Needs redis-server, python3 with pip and pytest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${FRESHET_BUILD_DIR:?run through ctest, which sets FRESHET_BUILD_DIR}"
command -v redis-server >/dev/null || { echo "SKIP: redis-server not found" >&2; exit 77; }
python3 -c 'import pytest' 2>/dev/null || fr_fail "pytest is missing: tests/run.sh installs it (python3 -m pip install pytest)"

# from a copy: setuptools writes build/ and *.egg-info next to the sources it builds
cp -r "$FRESHET_SOURCE_DIR/python" "$fr_work/python-src"
python3 -m pip install --quiet --no-deps --no-build-isolation --target "$fr_work/site" "$fr_work/python-src" \
  >"$fr_work/pip.log" 2>&1 || { cat "$fr_work/pip.log"; fr_fail "pip could not install python/"; }
export FRESHET_SERVING_LIB="$FRESHET_BUILD_DIR/libfreshet_serving.so"
[[ -e "$FRESHET_SERVING_LIB" ]] || fr_fail "no $FRESHET_SERVING_LIB in the build"
# A sanitized library needs its runtimes loaded first in a Python process (an unsanitized one does not);
# Python's own allocations at exit are not leaks of ours.
if [[ "${FRESHET_SANITIZE:-0}" == 1 ]]; then
  export LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
# the tests import the installed package, not the source tree
cp -r "$FRESHET_SOURCE_DIR/python/tests" "$fr_work/tests"
cd "$fr_work"
PYTHONPATH="$fr_work/site" python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$fr_work/pytest.log"
[[ ${PIPESTATUS[0]} == 0 ]] || fr_fail "pytest failed"
fr_pass "the Python package, pip-installed, scores as freshet score does and follows pushes and rollbacks"
