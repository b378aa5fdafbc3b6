#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, builds with
# AddressSanitizer + UndefinedBehaviorSanitizer under gcc and, with the fuzz targets, under clang
# (both -Werror) and, in Release, the binaries deploy/demo.sh runs; starts a local Kafka broker and
# Redis, runs the cmocka unit tests, each fuzz
# target for FRESHET_FUZZ_SECONDS (default 6; tests/fuzz/README.md), and the integration tests
# against the real stack, stops the stack. .ci/run calls exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FRESHET_TEST_BUILD_DIR:-$root/build-asan}"
fuzz_build="${FRESHET_TEST_FUZZ_BUILD_DIR:-$root/build-fuzz}"

bash "$root/deploy/install-deps.sh"
# the Python serving package's tests (tests/integration/test_python_serving.sh) install it with pip and run pytest
python3 -c 'import pytest, wheel' 2>/dev/null || python3 -m pip install --quiet pytest wheel
cmake -S "$root" -B "$build" -DFRESHET_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
cmake -S "$root" -B "$fuzz_build" -DCMAKE_C_COMPILER=clang -DFRESHET_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$fuzz_build" -j"$(nproc)"
# the binaries as deploy/demo.sh builds them: Release optimises differently, and -Werror sees other warnings there
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target freshet freshetd

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}"

stack_started=0
cleanup() { if [[ $stack_started == 1 ]]; then FRESHET_SKIP_INSTALL=1 bash "$root/deploy/stack.sh" down || true; fi; }
trap cleanup EXIT
FRESHET_SKIP_INSTALL=1 bash "$root/deploy/stack.sh" up
stack_started=1

cd "$build"
# Unit tests in parallel; integration tests in parallel too, except that those using the shared broker and
# Redis take turns (RESOURCE_LOCK shared_stack, CMakeLists.txt).
ctest -L unit -j"$(nproc)" --output-on-failure
ctest --test-dir "$fuzz_build" -L fuzz -j"$(nproc)" --output-on-failure
ctest -L integration -j"$(nproc)" --output-on-failure
