#!/bin/bash
# The PostgreSQL peer of docs/performance.md: starts a private PostgreSQL cluster (temporary
# directory, 127.0.0.1 only, fsync and synchronous_commit on), creates the equivalent of
# the workload (sql/*.sql: events table + AFTER INSERT trigger maintaining the view), and
# drives it with pgbench at the same concurrency as strata-bench. Prints one RESULT line
# per variant (see lib.sh) and stops the cluster on exit.
#
# Usage: bench/peers/postgres.sh W1|W2|W3|W4 [--duration S] [--warmup S] [--clients N]
#        [--threads J] [--pipeline P] [--batch B]
#   W1  W1-closed (one INSERT per transaction), W1-pipelined (P single-INSERT transactions
#       in one pgbench pipeline), W1-batched (B rows per INSERT)
#   W2  W2-closed (one SELECT), W2-pipelined (P SELECTs in one pipeline)
#   W3  W3 (a post per transaction; deliveries counted from the timelines table)
#   W4  W4 (a transfer per transaction; the sum of balances is checked at the end)
#   W5  W5-top (the 10 most counted of 100,000 words, with an index on the count) and
#       W5-total (the sum of 100,000 balances), one SELECT per transaction
set -eu
. "$(dirname "$0")/lib.sh"
trap peers_cleanup EXIT
trap 'exit 130' INT TERM

WORKLOAD=${1:-}
shift || true
DURATION=10 WARMUP=2 CLIENTS=16 THREADS=2 PIPELINE=32 BATCH=100
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    *) peers_die "unknown argument '$1' (usage: postgres.sh W1|W2|W3|W4 [--duration S] ...)" ;;
  esac
done
case "$WORKLOAD" in W1|W2|W3|W4|W5) ;; *) peers_die "workload '$WORKLOAD' is not W1, W2, W3, W4 or W5" ;; esac
command -v pgbench >/dev/null || peers_die "pgbench is not installed: run scripts/install-deps.sh --peers"

psql_run() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_value() { psql -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

# run_pgbench VARIANT SCRIPT UNITS_PER_TRANSACTION [pgbench options...]
# A warmup run, then the measured run with a per-transaction log for the percentiles.
run_pgbench() {
  local variant=$1 script=$2 per_txn=$3
  shift 3
  local common=(-n -c "$CLIENTS" -j "$THREADS" -f "$script" "$@")
  pgbench "${common[@]}" -T "$WARMUP" >/dev/null 2>&1 || peers_die "$variant: pgbench warmup failed"
  rm -rf "$PEERS_TMP/log" && mkdir -p "$PEERS_TMP/log"
  local out
  out=$(pgbench "${common[@]}" -T "$DURATION" --log --log-prefix="$PEERS_TMP/log/pgbench" 2>&1) ||
    peers_die "$variant: pgbench failed: $(echo "$out" | tail -5)"
  local tps failed
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  [ -n "$tps" ] || peers_die "$variant: no tps in the pgbench output: $out"
  local pct
  pct=$(cat "$PEERS_TMP"/log/pgbench* | awk '{ print $3 }' | peers_percentiles_us)
  echo "RESULT peer=postgres variant=$variant units_per_s=$(awk -v t="$tps" -v n="$per_txn" \
    'BEGIN { printf "%.1f", t * n }') $pct failed=${failed:-0}${EXTRA:+ $EXTRA}"
}

# A pgbench script with P requests in one pipeline; $1 is the \set lines' template and $2
# the statements' template, with @ standing for the request's number.
pipeline_script() {
  local file=$PEERS_TMP/$3.pgb i
  : >"$file"
  for i in $(seq "$PIPELINE"); do echo "${1//@/$i}" >>"$file"; done
  echo '\startpipeline' >>"$file"
  for i in $(seq "$PIPELINE"); do echo "${2//@/$i}" >>"$file"; done
  echo '\endpipeline' >>"$file"
  echo "$file"
}

pg_start
SQL=$PEERS_DIR/sql
EXTRA=""
case "$WORKLOAD" in
  W1)
    psql_run -f "$SQL/wordcount.sql"
    run_pgbench W1-closed "$SQL/w1_closed.pgb" 1 -M prepared
    script=$(pipeline_script '\set k@ random(1, 100000)' \
      "BEGIN; INSERT INTO sentences (body) VALUES ('w' || :k@); COMMIT;" w1_pipelined)
    # One statement per line: pgbench reads BEGIN; INSERT; COMMIT; as three commands.
    sed -i 's/; /;\n/g' "$script"
    run_pgbench W1-pipelined "$script" "$PIPELINE" -M prepared
    sed "s/generate_series(1, 100)/generate_series(1, $BATCH)/" "$SQL/w1_batched.pgb" >"$PEERS_TMP/w1_batched.pgb"
    run_pgbench W1-batched "$PEERS_TMP/w1_batched.pgb" "$BATCH" -M prepared
    EXTRA="check=words:$(psql_value 'SELECT count(*) FROM counts'),sum:$(psql_value 'SELECT sum(n) FROM counts'),sentences:$(psql_value 'SELECT count(*) FROM sentences')"
    peers_log "W1 view: $EXTRA"
    ;;
  W2)
    psql_run -f "$SQL/wordcount.sql"
    psql_run -c "INSERT INTO sentences (body) SELECT 'w' || g FROM generate_series(1, 100000) g" \
      -c "VACUUM ANALYZE"
    run_pgbench W2-closed "$SQL/w2_closed.pgb" 1 -M prepared
    script=$(pipeline_script '\set k@ random(1, 100000)' \
      "SELECT n FROM counts WHERE word = 'w' || :k@;" w2_pipelined)
    run_pgbench W2-pipelined "$script" "$PIPELINE" -M prepared
    ;;
  W3)
    psql_run -f "$SQL/social.sql"
    STRATA_BENCH=${STRATA_BENCH:-$PEERS_DIR/../../build/bin/strata-bench}
    [ -x "$STRATA_BENCH" ] || peers_die "$STRATA_BENCH not built (it prints the follow graph): make build"
    "$STRATA_BENCH" --print-graph --users 10000 >"$PEERS_TMP/fcounts.tsv"
    chmod 644 "$PEERS_TMP/fcounts.tsv"
    psql_run -c "CREATE TABLE fcounts (r int PRIMARY KEY, n int NOT NULL)" \
      -c "\\copy fcounts FROM '$PEERS_TMP/fcounts.tsv'" \
      -c "INSERT INTO follows SELECT r, ((r - 1 + j) % 10000) + 1 FROM fcounts, generate_series(1, n) j" \
      -c "VACUUM ANALYZE"
    peers_log "W3 graph: $(psql_value 'SELECT count(*) FROM follows') follows, max $(psql_value 'SELECT max(n) FROM fcounts') followers"
    # Deliveries of the measured run: timeline rows added during it (warmup excluded by
    # counting between a second warmup-free count and the end).
    before=$(psql_value 'SELECT count(*) FROM timelines')
    pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -f "$SQL/w3_post.pgb" -T "$WARMUP" >/dev/null 2>&1
    before=$(psql_value 'SELECT count(*) FROM timelines')
    WARMUP_SAVED=$WARMUP; WARMUP=0
    rm -rf "$PEERS_TMP/log" && mkdir -p "$PEERS_TMP/log"
    out=$(pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -f "$SQL/w3_post.pgb" -T "$DURATION" \
      --log --log-prefix="$PEERS_TMP/log/pgbench" 2>&1) || peers_die "W3: pgbench failed: $out"
    WARMUP=$WARMUP_SAVED
    after=$(psql_value 'SELECT count(*) FROM timelines')
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
    pct=$(cat "$PEERS_TMP"/log/pgbench* | awk '{ print $3 }' | peers_percentiles_us)
    echo "RESULT peer=postgres variant=W3 units_per_s=$tps $pct deliveries_per_s=$(awk -v a="$after" \
      -v b="$before" -v d="$DURATION" 'BEGIN { printf "%.1f", (a - b) / d }')"
    ;;
  W4)
    psql_run -f "$SQL/bank.sql"
    psql_run -c "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100000) g" -c "VACUUM ANALYZE"
    sum_before=$(psql_value 'SELECT sum(balance) FROM accounts')
    EXTRA="check=pending"
    out=$(EXTRA="" run_pgbench W4 "$SQL/w4_transfer.pgb" 1 -M prepared)
    sum_after=$(psql_value 'SELECT sum(balance) FROM accounts')
    rejected=$(psql_value 'SELECT count(*) FROM rejected')
    [ "$sum_before" = "$sum_after" ] && verdict=conserved || verdict=CHANGED
    echo "$out check=sum_before:$sum_before,sum_after:$sum_after,$verdict,rejected:$rejected"
    [ "$verdict" = conserved ] || exit 1
    ;;
  W5)
    # The data of strata-bench's W5-top and W5-total: word i (1-based) counted
    # 1 + ((i - 1) * 7919) % 13 times, 100,000 accounts of 1000 each.
    psql_run -f "$SQL/wordcount.sql" -f "$SQL/bank.sql"
    psql_run -c "INSERT INTO counts SELECT 'w' || g, 1 + ((g - 1) * 7919) % 13 FROM generate_series(1, 100000) g" \
      -c "CREATE INDEX counts_by_n ON counts (n DESC, word)" \
      -c "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100000) g" -c "VACUUM ANALYZE"
    echo "SELECT word, n FROM counts ORDER BY n DESC, word LIMIT 10;" >"$PEERS_TMP/w5_top.pgb"
    echo "SELECT sum(balance) FROM accounts;" >"$PEERS_TMP/w5_total.pgb"
    chmod 644 "$PEERS_TMP"/w5_*.pgb
    run_pgbench W5-top "$PEERS_TMP/w5_top.pgb" 1 -M prepared
    run_pgbench W5-total "$PEERS_TMP/w5_total.pgb" 1 -M prepared
    ;;
esac
