#!/bin/bash
# Live subscriptions (docs/performance.md, "Live subscriptions"), on stratad with wordcount:
# 1. latency: strata-bench --workload sub-latency (one subscriber to a key, one appender doing
#    closed-loop processed appends to it on another connection): the update's arrival minus
#    the append's ack (raw, and clamped at 0) and minus the append's send;
# 2. load: W1 (16 connections, closed loop, ack processed) without subscriptions and with
#    --subscribers N (N subscriptions to distinct keys of W1's keyspace over 4 connections),
#    alternated --rounds times, each run on a fresh server; W1's records/s and the server's
#    peak RSS (VmHWM) per run, then the medians and their ratio.
# Prints Markdown tables.
#
# Usage: bench/subscriptions.sh [--count N] [--duration S] [--rounds R] [--subscribers N]
# Needs build/bin/{stratad,strata-bench} (Release), build/modules/wordcount.so and jq. The
# server is stopped on exit.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
COUNT=10000 DURATION=10 ROUNDS=3 SUBSCRIBERS=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --subscribers) SUBSCRIBERS=$2; shift 2 ;;
    *) echo "bench/subscriptions.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for f in "$BUILD/bin/stratad" "$BUILD/bin/strata-bench" "$BUILD/modules/wordcount.so"; do
  [ -e "$f" ] || { echo "bench/subscriptions.sh: $f is not built: make build" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "bench/subscriptions.sh: jq missing: apt-get install jq" >&2; exit 1; }

SCRIPT=bench/subscriptions.sh
. "$ROOT/bench/stratad.sh"
stop_stratad() {
  kill "$SERVER"
  wait "$SERVER" || true
  SERVER=""
  rm -rf "$TMP/data"
}
bench() {
  "$BUILD/bin/strata-bench" --port "$PORT" --json "$@" 2> "$TMP/bench.err" \
    || { echo "strata-bench failed:" >&2; tail -5 "$TMP/bench.err" >&2; exit 1; }
}
kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$SERVER/status"; }

# 1. Latency.
start_stratad --deploy "$BUILD/modules/wordcount.so"
lat=$(bench --workload sub-latency --count "$COUNT" --warmup 2)
stop_stratad
pct() { jq -r --arg k "$1" '.[$k] | [.p50, .p99, .p999, .max] | map(. * 1000 | round / 1000 | tostring) | join(" / ")' <<<"$lat"; }
echo "| $(jq -r .appends <<<"$lat") closed-loop processed appends, one subscriber | p50 / p99 / p99.9 / max ms |"
echo "|---|---|"
echo "| update arrival − ack, max(0, ·) | $(pct diff_minus_ack_clamped_ms) |"
echo "| update arrival − ack, raw ($(jq -r .updates_before_ack <<<"$lat") updates came before their ack) | $(pct diff_minus_ack_ms) |"
echo "| update arrival − append sent | $(pct diff_minus_send_ms) |"
echo

# 2. W1 with and without the subscriptions, alternated.
run_w1() {  # subscribers -> "records/s p50 p99 updates hwm_mib"
  start_stratad --deploy "$BUILD/modules/wordcount.so"
  local json
  json=$(bench --workload W1 --connections 16 --duration "$DURATION" --warmup 2 --subscribers "$1")
  local hwm
  hwm=$(kib VmHWM)
  stop_stratad
  jq -r --arg hwm "$hwm" '"\(.units_per_s | round) \(.latency_ms.p50 * 100 | round / 100) \(.latency_ms.p99 * 100 | round / 100) \(.subscription_updates // 0) \(($hwm | tonumber) / 1024 | round)"' <<<"$json"
}
echo "| round | subscriptions | W1 records/s | p50 / p99 ms | updates pushed | stratad peak RSS MiB |"
echo "|---|---|---|---|---|---|"
without=() with=() rss_without=() rss_with=()
for round in $(seq "$ROUNDS"); do
  order="0 $SUBSCRIBERS"
  [ $((round % 2)) -eq 0 ] && order="$SUBSCRIBERS 0"
  for n in $order; do
    read -r rate p50 p99 updates hwm <<<"$(run_w1 "$n")"
    echo "| $round | $n | $rate | $p50 / $p99 | $updates | $hwm |"
    if [ "$n" -eq 0 ]; then without+=("$rate"); rss_without+=("$hwm")
    else with+=("$rate"); rss_with+=("$hwm"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m0=$(median "${without[@]}") m1=$(median "${with[@]}")
r0=$(median "${rss_without[@]}") r1=$(median "${rss_with[@]}")
echo
echo "| median of $ROUNDS | W1 records/s | stratad peak RSS MiB |"
echo "|---|---|---|"
echo "| no subscriptions | $m0 | $r0 |"
echo "| $SUBSCRIBERS subscriptions | $m1 | $r1 |"
echo "| ratio | $(awk -v a="$m1" -v b="$m0" 'BEGIN {printf "%.2f×", a / b}') | $(awk -v a="$r1" -v b="$r0" 'BEGIN {printf "%+d", a - b}') MiB |"
