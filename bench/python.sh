#!/bin/bash
# The Python driver against the C++ driver on one stratad (docs/performance.md, "Python
# driver"): point selects (W2) and processed appends (W1, one record per request), each from
# ONE process over ONE connection with PIPELINE requests in flight — first strata-bench
# (the C++ driver), then bench/python/bench.py (strata.aio) — back to back against the same
# server and data. Prints one Markdown table with the Python/C++ ratios.
#
# Usage: bench/python.sh [--duration S] [--warmup S] [--pipeline N] [--keyspace N]
# Needs build/bin/{stratad,strata-bench}, build/modules/wordcount.so, jq and Debian's
# python3-flatbuffers (`make bench-python` builds them). The server is stopped on exit.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
DURATION=10 WARMUP=2 PIPELINE=256 KEYSPACE=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --keyspace) KEYSPACE=$2; shift 2 ;;
    *) echo "bench/python.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for f in "$BUILD/bin/stratad" "$BUILD/bin/strata-bench" "$BUILD/modules/wordcount.so"; do
  [ -e "$f" ] || { echo "bench/python.sh: $f is not built: make build" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "bench/python.sh: jq missing: apt-get install jq" >&2; exit 1; }

SCRIPT=bench/python.sh
. "$ROOT/bench/stratad.sh"
start_stratad --deploy "$BUILD/modules/wordcount.so"

FIELDS='[(.units_per_s | round), (.latency_ms.p50 * 100 | round / 100), (.latency_ms.p99 * 100 | round / 100)] | map(tostring) | join(" ")'
# "units_per_s p50_ms p99_ms" of the C++ driver (strata-bench) on workload $1.
cpp() {
  "$BUILD/bin/strata-bench" --workload "$1" --port "$PORT" --connections 1 \
    --client-threads 1 --pipeline "$PIPELINE" --keyspace "$KEYSPACE" --duration "$DURATION" \
    --warmup "$WARMUP" --json 2> "$TMP/bench.err" | jq -r "$FIELDS" \
    || { echo "strata-bench $1 failed:" >&2; tail -5 "$TMP/bench.err" >&2; exit 1; }
}
# The same from Python (workload $1: selects or appends).
python() {
  PYTHONPATH="$ROOT/drivers/python" /usr/bin/python3 "$ROOT/bench/python/bench.py" \
    --workload "$1" --port "$PORT" --pipeline "$PIPELINE" --keyspace "$KEYSPACE" \
    --duration "$DURATION" --warmup "$WARMUP" 2> "$TMP/py.err" | jq -r "$FIELDS" \
    || { echo "bench/python/bench.py $1 failed:" >&2; tail -5 "$TMP/py.err" >&2; exit 1; }
}

echo "stratad with wordcount; one connection, $PIPELINE requests in flight;" \
     "${WARMUP} s warmup, ${DURATION} s measured; $(nproc) cores shared by server and client" >&2
read -r c_sel c_sel50 c_sel99 <<<"$(cpp W2)"   # W2 loads the words first
read -r p_sel p_sel50 p_sel99 <<<"$(python selects)"
read -r c_app c_app50 c_app99 <<<"$(cpp W1)"
read -r p_app p_app50 p_app99 <<<"$(python appends)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
echo "| workload | C++ driver /s (p50 / p99 ms) | Python asyncio /s (p50 / p99 ms) | Python / C++ |"
echo "|---|---|---|---|"
echo "| point selects (W2) | $c_sel ($c_sel50 / $c_sel99) | $p_sel ($p_sel50 / $p_sel99) | $(ratio "$p_sel" "$c_sel") |"
echo "| appends, ack processed (W1) | $c_app ($c_app50 / $c_app99) | $p_app ($p_app50 / $p_app99) | $(ratio "$p_app" "$c_app") |"
