#!/bin/bash
# The REST API against the binary protocol on one stratad (docs/performance.md, "HTTP"):
# point selects (W2) and processed appends (W1, one record per request), each first over
# the binary protocol (strata-bench, CONNECTIONS connections, one request in flight each)
# and then over REST (wrk, the same number of keep-alive connections: HTTP/1.1 has one
# request in flight per connection), back to back against the same server and data.
# Prints one Markdown table with the REST/binary ratios, and for reference the binary
# protocol's pipelined point selects (32 in flight per connection), which HTTP/1.1 cannot do.
#
# Usage: bench/http.sh [--duration S] [--warmup S] [--connections N] [--keyspace N]
# Needs build/bin/{stratad,strata-bench}, build/modules/wordcount.so and wrk
# (`make bench-http` installs wrk and builds them). The server is stopped on exit.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
DURATION=10 WARMUP=2 CONNECTIONS=16 KEYSPACE=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --keyspace) KEYSPACE=$2; shift 2 ;;
    *) echo "bench/http.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for f in "$BUILD/bin/stratad" "$BUILD/bin/strata-bench" "$BUILD/modules/wordcount.so"; do
  [ -e "$f" ] || { echo "bench/http.sh: $f is not built: make build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench/http.sh: wrk missing: apt-get install wrk" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench/http.sh: jq missing: apt-get install jq" >&2; exit 1; }

SCRIPT=bench/http.sh
. "$ROOT/bench/stratad.sh"
start_stratad --http 127.0.0.1:0 --http-threads $((CONNECTIONS + 4)) \
  --deploy "$BUILD/modules/wordcount.so"

# "units_per_s p50_ms p99_ms" of strata-bench over the binary protocol: workload $1 with
# $2 requests in flight per connection.
binary() {
  "$BUILD/bin/strata-bench" --workload "$1" --port "$PORT" --connections "$CONNECTIONS" \
    --pipeline "$2" --keyspace "$KEYSPACE" --duration "$DURATION" --warmup "$WARMUP" --json \
    2> "$TMP/bench.err" | jq -r '[.units_per_s, .latency_ms.p50, .latency_ms.p99] | map(tostring) | join(" ")' \
    || { echo "strata-bench $1 failed:" >&2; tail -5 "$TMP/bench.err" >&2; exit 1; }
}
# The same over REST with wrk and bench/http/wrk_rest.lua, workload $1 (a warmup run first,
# discarded).
rest() {
  local threads=$(( $(nproc) < CONNECTIONS ? $(nproc) : CONNECTIONS ))
  KEYSPACE=$KEYSPACE WORKLOAD=$1 wrk -t"$threads" -c"$CONNECTIONS" -d"${WARMUP}s" \
    -s "$ROOT/bench/http/wrk_rest.lua" "$URL" > /dev/null
  KEYSPACE=$KEYSPACE WORKLOAD=$1 wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
    -s "$ROOT/bench/http/wrk_rest.lua" "$URL" > "$TMP/wrk.out"
  local line
  line=$(grep '^RESULT' "$TMP/wrk.out") || { cat "$TMP/wrk.out" >&2; exit 1; }
  local errors
  errors=$(echo "$line" | sed 's/.*errors=\([0-9]*\).*/\1/')
  [ "$errors" = 0 ] || { echo "wrk $1: $errors failed requests" >&2; exit 1; }
  echo "$line" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                        print v["units_per_s"], v["p50_ms"], v["p99_ms"] }'
}

echo "stratad with wordcount; $CONNECTIONS connections, one request in flight each;" \
     "${WARMUP} s warmup, ${DURATION} s measured; $(nproc) cores shared by server and load" >&2
read -r b_sel b_sel50 b_sel99 <<<"$(binary W2 1)"   # W2 loads the words first
read -r p_sel p_sel50 p_sel99 <<<"$(binary W2 32)"
read -r r_sel r_sel50 r_sel99 <<<"$(rest select)"
read -r b_app b_app50 b_app99 <<<"$(binary W1 1)"
read -r r_app r_app50 r_app99 <<<"$(rest append)"

fmt() { awk -v x="$1" 'BEGIN { printf "%\047.0f", x }'; }
ms() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
echo "| workload | binary protocol /s (p50 / p99 ms) | REST /s (p50 / p99 ms) | REST / binary |"
echo "|---|---|---|---|"
echo "| point selects (W2) | $(fmt "$b_sel") ($(ms "$b_sel50") / $(ms "$b_sel99")) | $(fmt "$r_sel") ($(ms "$r_sel50") / $(ms "$r_sel99")) | $(ratio "$r_sel" "$b_sel") |"
echo "| point selects, binary pipelined ($CONNECTIONS × 32 in flight) | $(fmt "$p_sel") ($(ms "$p_sel50") / $(ms "$p_sel99")) | (HTTP/1.1: one in flight per connection) | $(ratio "$r_sel" "$p_sel") |"
echo "| appends, ack processed (W1) | $(fmt "$b_app") ($(ms "$b_app50") / $(ms "$b_app99")) | $(fmt "$r_app") ($(ms "$r_app50") / $(ms "$r_app99")) | $(ratio "$r_app" "$b_app") |"
