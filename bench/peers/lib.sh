# Shared by the peer scripts of bench/peers (sourced, not run): private PostgreSQL and
# Redis servers on loopback in a temporary directory, started by the calling script and
# stopped by its EXIT trap (peers_cleanup), so that nothing is left running.
#
# Every result is printed as one line
#   RESULT peer=<postgres|redis> variant=<W1-closed|...> units_per_s=<n> p50_ms=<n>
#          p99_ms=<n> p999_ms=<n> [deliveries_per_s=<n>] [appendfsync=<no|always>]
#          [aof_bytes=<n>] [check=<text>]
# which bench/compare.sh reads.

PEERS_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS_TMP=""
PG_BIN=""
PG_PID=""
REDIS_PID=""

peers_log() { echo "peers: $*" >&2; }
peers_die() { echo "peers: $*" >&2; exit 1; }

# A free TCP port on 127.0.0.1.
peers_free_port() {
  while :; do
    p=$(( (RANDOM % 20000) + 30000 ))
    ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

peers_tmpdir() {
  [ -n "$PEERS_TMP" ] || PEERS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-peers-XXXXXX")
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system
# user of the Debian package (or `strata-bench`, created when that is missing).
PG_OS_USER=""
pg_as_user() {
  if [ -n "$PG_OS_USER" ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# pg_start: initdb and start a private cluster listening on 127.0.0.1 only, fsync and
# synchronous_commit on. Exports PGHOST, PGPORT, PGUSER, PGDATABASE for psql and pgbench.
pg_start() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || peers_die "PostgreSQL is not installed: run scripts/install-deps.sh --peers"
  peers_tmpdir
  if [ "$(id -u)" = 0 ]; then
    if getent passwd postgres >/dev/null; then PG_OS_USER=postgres; else
      getent passwd strata-bench >/dev/null ||
        useradd --system --no-create-home --shell /usr/sbin/nologin strata-bench
      PG_OS_USER=strata-bench
    fi
  fi
  mkdir -p "$PEERS_TMP/pg"
  [ -z "$PG_OS_USER" ] || chown "$PG_OS_USER" "$PEERS_TMP/pg"
  chmod 755 "$PEERS_TMP"
  PGPORT=$(peers_free_port)
  pg_as_user "$PG_BIN/initdb" -D "$PEERS_TMP/pg/data" -U bench --auth=trust -E UTF8 \
    >"$PEERS_TMP/pg/initdb.log" 2>&1 || peers_die "initdb failed: $(tail -5 "$PEERS_TMP/pg/initdb.log")"
  pg_as_user "$PG_BIN/pg_ctl" -D "$PEERS_TMP/pg/data" -l "$PEERS_TMP/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$PEERS_TMP/pg \
        -c fsync=on -c synchronous_commit=on -c shared_buffers=512MB -c max_connections=64 \
        -c max_wal_size=4GB -c checkpoint_timeout=30min" \
    start >/dev/null || peers_die "PostgreSQL did not start: $(tail -5 "$PEERS_TMP/pg/server.log")"
  PG_PID=$(head -1 "$PEERS_TMP/pg/data/postmaster.pid")
  export PGHOST=127.0.0.1 PGPORT PGUSER=bench PGDATABASE=postgres
  peers_log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT (data in $PEERS_TMP/pg/data)"
}

pg_stop() {
  [ -n "$PG_PID" ] || return 0
  pg_as_user "$PG_BIN/pg_ctl" -D "$PEERS_TMP/pg/data" -m fast -w stop >/dev/null 2>&1 ||
    kill -9 "$PG_PID" 2>/dev/null
  PG_PID=""
}

# redis_start [no|always]: redis-server on 127.0.0.1 on a free port, never RDB snapshots.
# `no` (the default): no persistence at all. `always`: an append-only file in
# $PEERS_TMP/redis/appendonlydir with `appendfsync always` (every write command written and
# fsync'd before its reply, as Strata acks an append once its log is fsync'd), no automatic
# AOF rewrite (a forked rewrite would fall into some measured intervals and not others).
# Checks with CONFIG GET that the server runs with that setting. Sets REDIS_PORT.
redis_start() {
  local mode=${1:-no} persistence
  command -v redis-server >/dev/null || peers_die "Redis is not installed: run scripts/install-deps.sh --peers"
  command -v redis-cli >/dev/null || peers_die "redis-cli is not installed: run scripts/install-deps.sh --peers"
  peers_tmpdir
  mkdir -p "$PEERS_TMP/redis"
  case "$mode" in
    no) persistence=(--appendonly no) ;;
    always) persistence=(--appendonly yes --appendfsync always --auto-aof-rewrite-percentage 0) ;;
    *) peers_die "redis_start: unknown mode '$mode' (no or always)" ;;
  esac
  REDIS_PORT=$(peers_free_port)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" "${persistence[@]}" \
    --dir "$PEERS_TMP/redis" --logfile "$PEERS_TMP/redis/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG ||
    peers_die "redis-server did not start: $(tail -5 "$PEERS_TMP/redis/redis.log" 2>/dev/null)"
  local appendonly appendfsync
  appendonly=$(redis_config appendonly)
  appendfsync=$(redis_config appendfsync)
  if [ "$mode" = always ]; then
    [ "$appendonly" = yes ] && [ "$appendfsync" = always ] ||
      peers_die "redis-server runs with appendonly $appendonly, appendfsync $appendfsync (wanted yes, always)"
    peers_log "$(redis-server --version | awk '{print $1, $3}') on 127.0.0.1:$REDIS_PORT (appendonly $appendonly, appendfsync $appendfsync, AOF in $PEERS_TMP/redis/$(redis_config appenddirname))"
  else
    [ "$appendonly" = no ] || peers_die "redis-server runs with appendonly $appendonly (wanted no)"
    peers_log "$(redis-server --version | awk '{print $1, $3}') on 127.0.0.1:$REDIS_PORT (no persistence)"
  fi
}

# redis_config NAME: the running server's value of a configuration parameter.
redis_config() {
  redis-cli -p "$REDIS_PORT" config get "$1" | sed -n 2p
}

# redis_aof_size: bytes of the running server's append-only file (INFO persistence).
redis_aof_size() {
  redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r' | sed -n 's/^aof_current_size://p'
}

redis_stop() {
  [ -n "$REDIS_PID" ] || return 0
  kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  REDIS_PID=""
}

peers_cleanup() {
  pg_stop
  redis_stop
  [ -z "$PEERS_TMP" ] || rm -rf "$PEERS_TMP"
}

# Percentiles (ms) of latencies in microseconds, one per line on stdin:
# prints "p50_ms=.. p99_ms=.. p999_ms=..".
peers_percentiles_us() {
  sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "p50_ms=0 p99_ms=0 p999_ms=0"; exit }
    split("0.5 0.99 0.999", q, " "); split("p50_ms p99_ms p999_ms", name, " ")
    for (i = 1; i <= 3; i++) { r = int(q[i] * NR); if (r < q[i] * NR) r++; if (r < 1) r = 1
      printf "%s%s=%.3f", (i > 1 ? " " : ""), name[i], v[r] / 1000 }
    print "" }'
}
