#!/bin/bash
# Where the CPU goes when the load generator shares the machine with the server: runs one
# strata-bench workload against a fresh stratad and reports, over the measured interval,
# each process's CPU time (user + system, from /proc/PID/stat) as cores used, next to the
# throughput. Used for W2 pipelined (docs/performance.md): on two cores, the reads/s the
# server can answer is bounded by what the load generator leaves it.
#
# Usage: bench/cpu_split.sh [strata-bench arguments...]   (default: W2, 16 × 32 in flight)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--workload W2 --connections 16 --pipeline 32)
DURATION=10 WARMUP=2
command -v jq >/dev/null || { echo "bench/cpu_split.sh: jq missing: apt-get install jq" >&2; exit 1; }

SCRIPT=bench/cpu_split.sh
. "$ROOT/bench/stratad.sh"
start_stratad --deploy "$BUILD/modules/wordcount.so"
# W2 reads loaded words: load them first (a short W2 run does).
"$BUILD/bin/strata-bench" --workload W2 --port "$PORT" --duration 1 --warmup 0 >/dev/null 2>&1

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
"$BUILD/bin/strata-bench" --port "$PORT" "${ARGS[@]}" --duration "$DURATION" --warmup "$WARMUP" \
  --json > "$TMP/bench.json" 2> "$TMP/bench.err" &
BENCH=$!
sleep "$WARMUP"
s0=$(ticks "$SERVER"); b0=$(ticks "$BENCH"); t0=$(date +%s.%N)
sleep "$(awk -v d="$DURATION" 'BEGIN { print d - 0.5 }')"
s1=$(ticks "$SERVER"); b1=$(ticks "$BENCH"); t1=$(date +%s.%N)
wait "$BENCH" || { echo "strata-bench failed:" >&2; tail -5 "$TMP/bench.err" >&2; exit 1; }
hz=$(getconf CLK_TCK)
awk -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    -v rate="$(jq -r '.units_per_s | round' "$TMP/bench.json")" -v cores="$(nproc)" 'BEGIN {
  wall = t1 - t0
  printf "| %s/s | server %.2f cores | load generator %.2f cores | %d cores |\n", rate, s / hz / wall, b / hz / wall, cores
}'
