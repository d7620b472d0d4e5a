#!/bin/bash
# The Redis peer of docs/performance.md: starts redis-server on 127.0.0.1 on a free port and
# drives it with redis-benchmark at the same concurrency as strata-bench. Two
# configurations (lib.sh, redis_start):
#   --appendfsync no      (the default) no persistence at all: an in-memory upper bound, no
#                         log, no view, no durability;
#   --appendfsync always  an append-only file with every write fsync'd before its reply,
#                         as Strata's acks; each measured write run must grow the AOF.
# Prints one RESULT line per variant (see lib.sh) and stops the server on exit.
#
# Usage: bench/peers/redis.sh W1|W2 [--appendfsync no|always] [--duration S] [--clients N]
#        [--pipeline P] [--batch B]
#   W1  INCR w<k>, k uniform in 1..100000: W1-closed, W1-pipelined (-P P), W1-batched (-P B)
#   W2  GET w<k> after every key was set: W2-closed, W2-pipelined (-P P)
# redis-benchmark has no duration: a first run (the warmup; 100,000 requests, 20,000 with
# appendfsync always, whose closed loop is fsync-bound) measures the rate, and the measured
# run sends rate × duration requests.
set -eu
. "$(dirname "$0")/lib.sh"
trap peers_cleanup EXIT
trap 'exit 130' INT TERM

WORKLOAD=${1:-}
shift || true
DURATION=10 CLIENTS=16 PIPELINE=32 BATCH=100 APPENDFSYNC=no
while [ $# -gt 0 ]; do
  case "$1" in
    --appendfsync) APPENDFSYNC=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) shift 2 ;;  # accepted for symmetry with postgres.sh; the calibration run warms up
    --clients) CLIENTS=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    *) peers_die "unknown argument '$1' (usage: redis.sh W1|W2 [--appendfsync no|always] [--duration S] ...)" ;;
  esac
done
case "$WORKLOAD" in W1|W2) ;; *) peers_die "workload '$WORKLOAD': Redis runs W1 and W2 only" ;; esac
case "$APPENDFSYNC" in
  no) CALIBRATION=100000 ;;
  always) CALIBRATION=20000 ;;
  *) peers_die "--appendfsync '$APPENDFSYNC': no or always" ;;
esac
command -v redis-benchmark >/dev/null || peers_die "redis-benchmark is not installed: run scripts/install-deps.sh --peers"

# bench VARIANT PIPELINE WRITES COMMAND...: calibration + measured run of one command; with
# appendfsync always and WRITES = 1 the measured run must have grown the AOF.
bench() {
  local variant=$1 depth=$2 writes=$3
  shift 3
  local csv rps n aof_before=0 aof_after=0 aof=""
  csv=$(redis-benchmark -p "$REDIS_PORT" -c "$CLIENTS" -P "$depth" -r 100000 -n "$CALIBRATION" --csv "$@")
  rps=$(echo "$csv" | awk -F'","' 'NR == 2 { print $2 }')
  n=$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { printf "%d", r * d }')
  [ "$APPENDFSYNC" = no ] || aof_before=$(redis_aof_size)
  csv=$(redis-benchmark -p "$REDIS_PORT" -c "$CLIENTS" -P "$depth" -r 100000 -n "$n" --csv "$@")
  if [ "$APPENDFSYNC" = always ]; then
    [ "$(redis_config appendfsync)" = always ] || peers_die "$variant: appendfsync is no longer always"
    aof_after=$(redis_aof_size)
    if [ "$writes" = 1 ] && [ "$aof_after" -le "$aof_before" ]; then
      peers_die "$variant: the AOF did not grow ($aof_before → $aof_after bytes) with appendfsync always"
    fi
    aof=" aof_bytes=$((aof_after - aof_before))"
    peers_log "$variant: AOF $aof_before → $aof_after bytes over $n requests"
  fi
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
  # "p99_latency_ms","max_latency_ms" (redis-benchmark reports no p99.9: the max is given).
  echo "$csv" | awk -F'","' -v v="$variant" -v fs="$APPENDFSYNC" -v aof="$aof" 'NR == 2 { gsub(/"/, "", $8);
    printf "RESULT peer=redis variant=%s units_per_s=%s p50_ms=%s p99_ms=%s p999_ms=n/a max_ms=%s appendfsync=%s%s\n",
      v, $2, $5, $7, $8, fs, aof }'
}

redis_start "$APPENDFSYNC"
case "$WORKLOAD" in
  W1)
    bench W1-closed 1 1 INCR w__rand_int__
    bench W1-pipelined "$PIPELINE" 1 INCR w__rand_int__
    bench W1-batched "$BATCH" 1 INCR w__rand_int__
    ;;
  W2)
    # Every key w000000000000..w000000099999 exists before the reads.
    redis-cli -p "$REDIS_PORT" eval \
      "for i = 0, 99999 do redis.call('SET', string.format('w%012d', i), 1) end" 0 >/dev/null
    [ "$APPENDFSYNC" = no ] || peers_log "W2: AOF $(redis_aof_size) bytes after loading the keys"
    bench W2-closed 1 0 GET w__rand_int__
    bench W2-pipelined "$PIPELINE" 0 GET w__rand_int__
    ;;
esac
peers_log "Redis keys: $(redis-cli -p "$REDIS_PORT" dbsize)"
