#!/bin/bash
# Strata side by side with its peers (docs/performance.md): for each workload, runs strata-bench
# against a fresh stratad (--spawn) and then the peers (bench/peers: PostgreSQL, Redis without
# persistence, Redis with appendfsync always) back to back at the same concurrency, and
# prints one Markdown table on stdout (progress on stderr): the variant, its configuration,
# Strata's figures, each peer's figures and Strata's ratio to it.
#
# Usage: bench/compare.sh W1|W2|W3|W4|W5|all [--duration S] [--warmup S] [--connections N]
#        [--json FILE] [--markdown FILE]
#   --json FILE      also writes the table as JSON (one object per row with every system's
#                    figures and every ratio, the machine line, the git commit), which
#                    bench/compare-diff.py compares with an earlier run's
#   --markdown FILE  also writes the Markdown table (machine line included) to FILE
# Needs build/bin/strata-bench (make build) and the peers (scripts/install-deps.sh --peers);
# `make compare` does both, runs all five and writes build/compare.json and build/compare.md.
# Every server it starts is stopped on exit.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${STRATA_BENCH:-$ROOT/build/bin/strata-bench}
PEERS=$ROOT/bench/peers

WHICH=${1:-}
shift || true
DURATION=10 WARMUP=2 CONNECTIONS=16 PIPELINE=32 BATCH=100 JSON_OUT="" MARKDOWN_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --json) JSON_OUT=$2; shift 2 ;;
    --markdown) MARKDOWN_OUT=$2; shift 2 ;;
    *) echo "compare: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$WHICH" in
  W1|W2|W3|W4|W5) WORKLOADS=$WHICH ;;
  all) WORKLOADS="W1 W2 W3 W4 W5" ;;
  *) echo "usage: bench/compare.sh W1|W2|W3|W4|W5|all [--duration S] [--warmup S] [--connections N] [--json FILE] [--markdown FILE]" >&2; exit 2 ;;
esac
# The output files are created (or emptied) now: a path that cannot be written fails before
# minutes of benchmarks.
for f in "$JSON_OUT" "$MARKDOWN_OUT"; do
  [ -z "$f" ] || : >"$f" || { echo "compare: cannot write '$f'" >&2; exit 1; }
done
[ -x "$BENCH" ] || { echo "compare: $BENCH is not built: make build" >&2; exit 1; }
command -v jq >/dev/null || { echo "compare: jq missing: scripts/install-deps.sh --peers" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-compare-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Writes "units_per_s p50 p99 p999 extra_per_s ok" of one strata-bench run.
strata_run() {
  local workload=$1
  shift
  local json
  json=$("$BENCH" --workload "$workload" --spawn --json --connections "$CONNECTIONS" \
         --duration "$DURATION" --warmup "$WARMUP" "$@" 2>"$TMP/strata.err") || {
    echo "compare: strata-bench --workload $workload $* failed:" >&2
    tail -5 "$TMP/strata.err" >&2
    echo "$json" | jq -r '.first_error // .check_error // empty' >&2
  }
  [ -n "$json" ] || { echo "- - - - - false"; return; }
  echo "$json" | jq -r '[.units_per_s, .latency_ms.p50, .latency_ms.p99, .latency_ms.p999,
                         (.extra_units_per_s // 0), .ok] | map(tostring) | join(" ")'
}

# The RESULT fields of one variant from a peer's output file: "units p50 p99 p999
# deliveries", "-" for a figure the peer does not report.
peer_fields() {
  grep "^RESULT .*variant=$2 " "$1" 2>/dev/null | head -1 | tr ' ' '\n' | awk -F= '
    function f(k) { return (v[k] == "" || v[k] == "n/a") ? "-" : v[k] }
    { v[$1] = $2 } END { printf "%s %s %s %s %s\n", f("units_per_s"), f("p50_ms"), f("p99_ms"),
      f("p999_ms"), f("deliveries_per_s") }'
}
NO_PEER="- - - - -"

# A rate with thousands separators (not through the locale's %', which C and POSIX lack).
fmt_rate() {
  [ "$1" = - ] && echo "–" || awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x)
    while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); print s }'
}
fmt_ms() { [ "$1" = - ] && echo "–" || awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
ratio() {
  if [ "$1" = - ] || [ "$2" = - ] || [ "$2" = 0 ]; then echo "–"; else
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; fi
}

# out LINE: a line of the Markdown table, on stdout and in the --markdown file.
out() {
  echo "$1"
  [ -z "$MARKDOWN_OUT" ] || echo "$1" >>"$MARKDOWN_OUT"
}

# row VARIANT CONFIG UNIT "strata fields" "pg fields" "redis fields" "durable redis fields"
# — the figure compared is units/s, or deliveries/s for W3. Prints the Markdown row and adds
# the row's JSON object to $TMP/rows.jsonl.
row() {
  local variant=$1 config=$2 unit=$3
  read -r s_units s_p50 s_p99 s_p999 s_extra s_ok <<<"$4"
  read -r p_units p_p50 p_p99 p_p999 p_extra <<<"$5"
  read -r r_units r_p50 r_p99 r_p999 r_extra <<<"$6"
  read -r a_units a_p50 a_p99 a_p999 a_extra <<<"$7"
  if [ "$unit" = deliveries ]; then s_units=$s_extra; p_units=$p_extra; fi
  local mark=""
  [ "$s_ok" = true ] || mark=" (errors: see stderr)"
  out "$(printf '| %s | %s | %s | %s / %s / %s%s | %s | %s | %s / %s | %s | %s | %s / %s | %s | %s | %s / %s | %s |' \
    "$variant" "$config" "$unit/s" "$(fmt_rate "$s_units")" "$(fmt_ms "$s_p50")" "$(fmt_ms "$s_p99")" \
    "$mark" "$(fmt_ms "$s_p999")" "$(fmt_rate "$p_units")" "$(fmt_ms "$p_p50")" "$(fmt_ms "$p_p99")" \
    "$(ratio "$s_units" "$p_units")" "$(fmt_rate "$r_units")" "$(fmt_ms "$r_p50")" "$(fmt_ms "$r_p99")" \
    "$(ratio "$s_units" "$r_units")" "$(fmt_rate "$a_units")" "$(fmt_ms "$a_p50")" "$(fmt_ms "$a_p99")" \
    "$(ratio "$s_units" "$a_units")")"
  jq -cn --arg variant "$variant" --arg config "$config" --arg unit "$unit/s" --arg ok "$s_ok" \
    --arg strata "$s_units $s_p50 $s_p99 $s_p999" --arg postgres "$p_units $p_p50 $p_p99 $p_p999" \
    --arg redis "$r_units $r_p50 $r_p99 $r_p999" --arg redis_always "$a_units $a_p50 $a_p99 $a_p999" '
    def num: if . == "-" or . == "" or . == "null" then null else tonumber end;
    def figures($f): ($f | split(" ") | map(num)) as $v
      | {rate: $v[0], p50_ms: $v[1], p99_ms: $v[2], p999_ms: $v[3]};
    def ratio($a; $b): if $a.rate == null or $b.rate == null or $b.rate == 0 then empty
      else ($a.rate / $b.rate * 10000 | round / 10000) end;
    (figures($strata) + {ok: ($ok == "true")}) as $s
    | ({postgres: figures($postgres), redis: figures($redis),
        redis_appendfsync_always: figures($redis_always)}
       | with_entries(select(.value.rate != null))) as $peers
    | {variant: $variant, configuration: $config, unit: $unit,
       systems: ({strata: $s} + $peers),
       ratios: ($peers | with_entries({key: "strata/\(.key)", value: ratio($s; .value)}))}' \
    >>"$TMP/rows.jsonl"
}

fsync_rate() {
  local f="$TMP/fsync.probe" start end
  start=$(date +%s.%N)
  dd if=/dev/zero of="$f" bs=4k count=500 oflag=dsync 2>/dev/null
  end=$(date +%s.%N)
  rm -f "$f"
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", 500 / (e - s) }'
}

# The commit measured: HEAD, with "-dirty" when tracked files differ from it.
git_commit() {
  local head
  head=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "$head-dirty"
  else echo "$head"; fi
}

COMMIT=$(git_commit)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MACHINE="Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), \
$(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -sr), ~$(fsync_rate) synchronous 4 KiB writes/s in ${TMPDIR:-/tmp}"
SETTINGS="Each variant: $CONNECTIONS connections, ${WARMUP} s warmup, ${DURATION} s measured; Strata: a fresh stratad (--spawn), ack processed"
# Ended by a backslash (a Markdown line break), so that the three lines stay three lines
# once pasted into docs/performance.md.
out "$MACHINE\\"
out "$SETTINGS\\"
out "Commit: $COMMIT, started $STARTED"
out ""
out "| variant | configuration | unit | Strata rate / p50 / p99 ms | p99.9 ms | PostgreSQL rate | p50 / p99 ms | Strata ÷ PG | Redis (no durability) rate | p50 / p99 ms | Strata ÷ Redis | Redis (appendfsync always) rate | p50 / p99 ms | Strata ÷ Redis always |"
out "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
: >"$TMP/rows.jsonl"

PEER_ARGS=(--duration "$DURATION" --warmup "$WARMUP" --clients "$CONNECTIONS" --pipeline "$PIPELINE" --batch "$BATCH")
for w in $WORKLOADS; do
  echo "compare: $w: PostgreSQL..." >&2
  "$PEERS/postgres.sh" "$w" "${PEER_ARGS[@]}" >"$TMP/pg.out" 2>"$TMP/pg.err" ||
    { echo "compare: postgres.sh $w failed:" >&2; tail -5 "$TMP/pg.err" >&2; }
  : >"$TMP/redis.out"
  : >"$TMP/redis-always.out"
  if [ "$w" = W1 ] || [ "$w" = W2 ]; then
    echo "compare: $w: Redis (no durability)..." >&2
    "$PEERS/redis.sh" "$w" "${PEER_ARGS[@]}" >"$TMP/redis.out" 2>"$TMP/redis.err" ||
      { echo "compare: redis.sh $w failed:" >&2; tail -5 "$TMP/redis.err" >&2; }
    echo "compare: $w: Redis (appendfsync always)..." >&2
    "$PEERS/redis.sh" "$w" --appendfsync always "${PEER_ARGS[@]}" >"$TMP/redis-always.out" \
      2>"$TMP/redis-always.err" ||
      { echo "compare: redis.sh $w --appendfsync always failed:" >&2; tail -5 "$TMP/redis-always.err" >&2; }
  fi
  echo "compare: $w: Strata..." >&2
  case "$w" in
    W1)
      row W1-closed "pipeline 1, batch 1" records "$(strata_run W1)" \
        "$(peer_fields "$TMP/pg.out" W1-closed)" "$(peer_fields "$TMP/redis.out" W1-closed)" \
        "$(peer_fields "$TMP/redis-always.out" W1-closed)"
      row W1-pipelined "pipeline $PIPELINE" records "$(strata_run W1 --pipeline "$PIPELINE")" \
        "$(peer_fields "$TMP/pg.out" W1-pipelined)" "$(peer_fields "$TMP/redis.out" W1-pipelined)" \
        "$(peer_fields "$TMP/redis-always.out" W1-pipelined)"
      row W1-batched "batch $BATCH" records "$(strata_run W1 --batch "$BATCH")" \
        "$(peer_fields "$TMP/pg.out" W1-batched)" "$(peer_fields "$TMP/redis.out" W1-batched)" \
        "$(peer_fields "$TMP/redis-always.out" W1-batched)"
      ;;
    W2)
      row W2-closed "pipeline 1" reads "$(strata_run W2)" \
        "$(peer_fields "$TMP/pg.out" W2-closed)" "$(peer_fields "$TMP/redis.out" W2-closed)" \
        "$(peer_fields "$TMP/redis-always.out" W2-closed)"
      row W2-pipelined "pipeline $PIPELINE" reads "$(strata_run W2 --pipeline "$PIPELINE")" \
        "$(peer_fields "$TMP/pg.out" W2-pipelined)" "$(peer_fields "$TMP/redis.out" W2-pipelined)" \
        "$(peer_fields "$TMP/redis-always.out" W2-pipelined)"
      ;;
    W3)
      row W3 "pipeline 1, posts" deliveries "$(strata_run W3)" \
        "$(peer_fields "$TMP/pg.out" W3)" "$NO_PEER" "$NO_PEER"
      ;;
    W4)
      # Strata's W4 is the microbatch bank (examples/mbbank): an ack waits for the batch
      # holding the transfer, so its throughput grows with the transfers in flight. Every
      # row is compared with PostgreSQL's one W4 run (one transfer per transaction, 16
      # clients; the W4 peer has no pipelined variant — pipelining raised PostgreSQL's W1
      # rate by only ~1.16×, docs/performance.md).
      PG_W4=$(peer_fields "$TMP/pg.out" W4)
      row W4 "pipeline 1" transfers "$(strata_run W4)" "$PG_W4" "$NO_PEER" "$NO_PEER"
      row W4-pipelined "pipeline $PIPELINE" transfers "$(strata_run W4 --pipeline "$PIPELINE")" \
        "$PG_W4" "$NO_PEER" "$NO_PEER"
      row W4-batched "batch $BATCH" transfers "$(strata_run W4 --batch "$BATCH")" "$PG_W4" "$NO_PEER" "$NO_PEER"
      ;;
    W5)
      # Queries (docs/modules.md, "Queries"), one per request, closed loop. PostgreSQL
      # answers top-words from an index on the count and total-money with a scan;
      # W5-timeline has no peer row (its goal is a p50).
      row W5-top "top-words(10), 100k words" queries "$(strata_run W5-top)" \
        "$(peer_fields "$TMP/pg.out" W5-top)" "$NO_PEER" "$NO_PEER"
      row W5-total "total-money(), 100k accounts" queries "$(strata_run W5-total)" \
        "$(peer_fields "$TMP/pg.out" W5-total)" "$NO_PEER" "$NO_PEER"
      row W5-timeline "timeline(user, 10)" queries "$(strata_run W5-timeline --users 10000)" \
        "$NO_PEER" "$NO_PEER" "$NO_PEER"
      ;;
  esac
done

if [ -n "$JSON_OUT" ]; then
  jq -s --arg machine "$MACHINE" --arg settings "$SETTINGS" --arg commit "$COMMIT" \
    --arg started "$STARTED" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson duration "$DURATION" --argjson warmup "$WARMUP" --argjson connections "$CONNECTIONS" '
    {format: "strata-compare/1", commit: $commit, started: $started, finished: $finished,
     machine: $machine, settings: $settings, duration_s: $duration, warmup_s: $warmup,
     connections: $connections,
     systems: {strata: "Strata", postgres: "PostgreSQL", redis: "Redis (no durability)",
               redis_appendfsync_always: "Redis (appendfsync always)"},
     rows: .}' "$TMP/rows.jsonl" >"$JSON_OUT"
  echo "compare: JSON written to $JSON_OUT" >&2
fi
[ -z "$MARKDOWN_OUT" ] || echo "compare: Markdown written to $MARKDOWN_OUT" >&2
