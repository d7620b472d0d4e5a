#!/bin/sh
# Installs every Debian package Strata needs to build and test. Idempotent: when all
# packages are present it changes nothing and calls no package manager.
# Usage: scripts/install-deps.sh [--fuzz | --analysis | --peers]
#   --fuzz      adds clang-14 and libFuzzer
#   --analysis  adds clang-14, for clang's -Wthread-safety build (`make thread-safety`)
#   --peers     adds the peers of `make compare` (bench/peers): PostgreSQL 15 with pgbench,
#               Redis with redis-benchmark, jq; and wrk for `make bench-http`
# `make test` needs none of the three.
# ZooKeeper (the zookeeper server package, which brings java, and the C client
# libzookeeper-mt-dev) is a core dependency: the cluster tests of `make test` start a real
# ZooKeeper server (server/cluster, docs/cluster.md). iproute2 gives `ip`, with which
# tests/netns makes the network namespaces of the fault tests (run as root).
set -eu

PACKAGES="g++ cmake make pkg-config git ca-certificates \
  libwiredtiger-dev wiredtiger libsnappy1v5 \
  libflatbuffers-dev flatbuffers-compiler \
  libasio-dev libcli11-dev libxxhash-dev libedit-dev nlohmann-json3-dev libcpp-httplib-dev libdtl-dev \
  libzookeeper-mt-dev zookeeper iproute2 libssl-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev \
  procps tmux clang-format python3 python3-prometheus-client chromium \
  python3-flatbuffers python3-pytest python3-pip python3-venv python3-setuptools"
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES="$PACKAGES clang-14 libfuzzer-14-dev libclang-rt-14-dev"
fi
if [ "${1:-}" = "--analysis" ]; then
  PACKAGES="$PACKAGES clang-14"
fi
if [ "${1:-}" = "--peers" ]; then
  PACKAGES="$PACKAGES postgresql postgresql-contrib redis-server redis-tools jq wrk"
fi

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
