#!/bin/bash
# W1's latency at half of its peak, broken down (docs/performance.md, "Latency breakdown"):
# one stratad with wordcount; strata-bench W1 closed loop for the peak, then an open loop at
# half of it (latency from the scheduled send time); the server's own histograms over the
# open loop (request: decoded to response queued; step; log flush = one group-commit fsync)
# from two /metrics scrapes; then the disk's own 4 KiB pwrite + fdatasync latency in the
# same directory, right after. Prints one Markdown table.
#
# Usage: bench/latency.sh [--duration S] [--peak-duration S] [--connections N] [--rate R]
#   --rate R   the open loop's rate (default: half of the measured peak)
# Needs build/bin/{stratad,strata-bench}, build/modules/wordcount.so, jq, curl and Debian's
# python3-prometheus-client. The server is stopped on exit.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
DURATION=60 PEAK_DURATION=10 CONNECTIONS=16 RATE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --peak-duration) PEAK_DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    *) echo "bench/latency.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for f in "$BUILD/bin/stratad" "$BUILD/bin/strata-bench" "$BUILD/modules/wordcount.so"; do
  [ -e "$f" ] || { echo "bench/latency.sh: $f is not built: make build" >&2; exit 1; }
done
for tool in jq curl; do
  command -v $tool >/dev/null || { echo "bench/latency.sh: $tool missing: apt-get install $tool" >&2; exit 1; }
done

SCRIPT=bench/latency.sh
. "$ROOT/bench/stratad.sh"
start_stratad --http 127.0.0.1:0 --deploy "$BUILD/modules/wordcount.so"

bench() {
  "$BUILD/bin/strata-bench" --workload W1 --port "$PORT" --connections "$CONNECTIONS" \
    --warmup 2 --json "$@" 2> "$TMP/bench.err" \
    || { echo "strata-bench failed:" >&2; tail -5 "$TMP/bench.err" >&2; exit 1; }
}
ms() { jq -r '[.latency_ms.p50, .latency_ms.p99, .latency_ms.p999] | map(. * 100 | round / 100 | tostring) | join(" / ")'; }

peak_json=$(bench --duration "$PEAK_DURATION")
peak=$(jq -r '.units_per_s | round' <<<"$peak_json")
[ -n "$RATE" ] || RATE=$((peak / 2))
echo "closed-loop peak $peak records/s; open loop at $RATE/s for $DURATION s" >&2

curl -sf "$URL/metrics" > "$TMP/before.txt"
open_json=$(bench --duration "$DURATION" --rate "$RATE")
curl -sf "$URL/metrics" > "$TMP/after.txt"
server=$(/usr/bin/python3 "$ROOT/bench/latency/histograms.py" "$TMP/before.txt" "$TMP/after.txt")
disk=$(/usr/bin/python3 "$ROOT/bench/latency/fsync_probe.py" "$TMP" 3000)

row() {  # name, JSON with count/p50_ms/p99_ms/p999_ms
  jq -r --arg name "$1" '"| \($name) | \(.count) | \(.p50_ms) / \(.p99_ms) / \(.p999_ms) |"' <<<"$2"
}
echo "| what | count | p50 / p99 / p99.9 ms |"
echo "|---|---|---|"
echo "| client: closed loop at the peak ($peak records/s) | $(jq -r '.latency_ms.count' <<<"$peak_json") | $(ms <<<"$peak_json") |"
echo "| client: open loop at $RATE/s, from the scheduled send (achieved $(jq -r '.units_per_s | round' <<<"$open_json")/s) | $(jq -r '.latency_ms.count' <<<"$open_json") | $(ms <<<"$open_json") |"
for key in $(jq -r 'keys_unsorted | .[]' <<<"$server" | tr ' ' '\001'); do
  name=$(tr '\001' ' ' <<<"$key")
  row "server: $name" "$(jq -c --arg k "$name" '.[$k]' <<<"$server")"
done
row "disk: 4 KiB pwrite + fdatasync, alone, right after" "$disk"
