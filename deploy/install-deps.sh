#!/usr/bin/env bash
# Install the Debian packages Freshet needs to build, test and run its local stack.
# Idempotent: apt-get runs only when a package is actually missing.
# Usage: deploy/install-deps.sh [--check]    (--check: list what is missing, install nothing, exit 1 if any)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  clang libclang-rt-dev   # the second compiler tests/run.sh builds with; libFuzzer + sanitizer runtimes (tests/fuzz/)
  librdkafka-dev librocksdb-dev libopenblas-dev libhiredis-dev libcmocka-dev libjansson-dev libxxhash-dev
  libmicrohttpd-dev zlib1g-dev libzstd-dev zstd   # replay reads gzip- and zstd-compressed logs (zstd: the tests compress one)
  libprotobuf-c-dev protobuf-c-compiler   # Protobuf events (proto/freshet_event.proto, docs/protobuf-events.md): the runtime and protoc-c
  redis-server redis-tools
  prometheus              # promtool: tests check the alerting rules and the /metrics exposition (deploy/prometheus/)
  gnuplot-nox             # freshet report draws its plots with it (SVG inlined into the HTML page)
  chromium fonts-dejavu-core   # the report test opens the page in headless chromium and keeps a screenshot
)
JAVA_PACKAGE=openjdk-17-jre-headless   # Kafka 4.x brokers need Java 17+
MAVEN_PACKAGE=maven

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "install-deps: unknown argument '$1' (usage: $0 [--check])" >&2; exit 2 ;;
esac

log() { echo "install-deps: $*"; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: this script needs a Debian/Ubuntu system (dpkg-query and apt-get not found)" >&2
  exit 1
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

java_major() {
  # prints the major version of `java` on PATH (e.g. 17), or nothing
  java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\)[."].*/\1/p'
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ! command -v java >/dev/null 2>&1; then
  is_installed "$JAVA_PACKAGE" || missing+=("$JAVA_PACKAGE")
else
  major="$(java_major)"
  if [[ -z "$major" || "$major" -lt 17 ]]; then
    log "java on PATH is version '${major:-unknown}', Kafka 4.x needs 17+"
    is_installed "$JAVA_PACKAGE" || missing+=("$JAVA_PACKAGE")
  fi
fi
if ! command -v mvn >/dev/null 2>&1; then
  is_installed "$MAVEN_PACKAGE" || missing+=("$MAVEN_PACKAGE")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all packages present, nothing to install"
  exit 0
fi

log "missing: ${missing[*]}"
if [[ $check_only -eq 1 ]]; then
  exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo not found; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
log "installing: ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"

if command -v java >/dev/null 2>&1; then
  major="$(java_major)"
  if [[ -z "$major" || "$major" -lt 17 ]]; then
    log "warning: 'java' on PATH is still version '${major:-unknown}'; select Java 17 with" \
        "'update-alternatives --config java' or set JAVA_HOME"
  fi
fi
log "done"
