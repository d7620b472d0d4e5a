#!/bin/bash
# A local Strata cluster on loopback, for a person to try (`make cluster`; docs/cluster.md,
# "A local cluster"): one ZooKeeper server (scripts/zk-local.sh) and three stratad nodes,
# node-1..node-3, each with its own data directory.
#
#   scripts/cluster.sh run [DIR]    start everything, print where it listens, wait; Ctrl-C
#                                   (or SIGTERM) stops the nodes, then ZooKeeper
#   scripts/cluster.sh start [DIR]  the same in the background; returns once all joined
#   scripts/cluster.sh stop [DIR]   stop what `start` started in DIR
#   scripts/cluster.sh status [DIR] each node's view (GET /rest/cluster)
#
# DIR defaults to ./strata-cluster: DIR/zk (ZooKeeper), DIR/node-N (data), DIR/node-N.log,
# DIR/node-N.pid. Ports: STRATA_CLUSTER_PORT (default 7450) is node-1's binary protocol,
# +1 its HTTP; node-2 uses +10/+11, node-3 +20/+21; ZooKeeper +30. STRATA_BIN is the
# directory of stratad (default build/bin). Extra stratad flags: STRATAD_ARGS.
set -eu

usage() {
  echo "usage: $0 run|start|stop|status [DIR]" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
command=$1
dir=${2:-./strata-cluster}
here=$(cd "$(dirname "$0")" && pwd)
bin=${STRATA_BIN:-$here/../build/bin}
base=${STRATA_CLUSTER_PORT:-7450}
zk_port=$((base + 30))
nodes=(1 2 3)

port_of() { echo $((base + 10 * ($1 - 1))); }
http_of() { echo $((base + 10 * ($1 - 1) + 1)); }

# The JSON of GET /rest/cluster on node N, or nothing; with `summary`, "COUNT CONTROLLER"
# instead: how many live nodes it sees and its controller ("-": none known), "0 -" when it
# does not answer.
view() {
  /usr/bin/python3 - "$(http_of "$1")" "${2:-}" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
port, summary = sys.argv[1], sys.argv[2] == "summary"
try:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/rest/cluster", timeout=2).read().decode()
except Exception:
    body = ""
if not summary:
    print(body)
else:
    try:
        v = json.loads(body)
        print(len(v["nodes"]), v["controller"] or "-")
    except Exception:
        print("0 -")
PY
}

seen() { view "$1" summary; }

stop_all() {
  for n in "${nodes[@]}"; do
    local pidfile=$dir/node-$n.pid
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for n in "${nodes[@]}"; do
    local pidfile=$dir/node-$n.pid
    [ -f "$pidfile" ] || continue
    local pid
    pid=$(cat "$pidfile")
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [ -f "$dir/zk/zookeeper.pid" ]; then "$here/zk-local.sh" stop "$dir/zk" >/dev/null; fi
}

start_all() {
  [ -x "$bin/stratad" ] || { echo "cluster: no $bin/stratad: build first (make build)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for n in "${nodes[@]}"; do
    if [ -f "$dir/node-$n.pid" ] && kill -0 "$(cat "$dir/node-$n.pid")" 2>/dev/null; then
      echo "cluster: already running in $dir (node-$n is pid $(cat "$dir/node-$n.pid")); stop it first" >&2
      exit 1
    fi
  done
  "$here/zk-local.sh" start "$dir/zk" "$zk_port"
  for n in "${nodes[@]}"; do
    # shellcheck disable=SC2086  # STRATAD_ARGS is a list of flags
    "$bin/stratad" --data-dir "$dir/node-$n" --listen "127.0.0.1:$(port_of "$n")" \
      --http "127.0.0.1:$(http_of "$n")" --cluster "zk://127.0.0.1:$zk_port/strata" \
      --node-id "node-$n" ${STRATAD_ARGS:-} >"$dir/node-$n.log" 2>&1 </dev/null &
    echo $! >"$dir/node-$n.pid"
  done
  # Ready when every node sees all three and a controller.
  for _ in $(seq 300); do
    local ready=0
    for n in "${nodes[@]}"; do
      if ! kill -0 "$(cat "$dir/node-$n.pid")" 2>/dev/null; then
        echo "cluster: node-$n exited; its log ($dir/node-$n.log):" >&2
        tail -5 "$dir/node-$n.log" >&2
        stop_all
        exit 1
      fi
      read -r count controller < <(seen "$n")
      [ "$count" = 3 ] && [ "$controller" != - ] && ready=$((ready + 1))
    done
    [ "$ready" = 3 ] && break
    sleep 0.1
  done
  [ "$ready" = 3 ] || { echo "cluster: the nodes did not all join within 30 s (logs in $dir)" >&2; stop_all; exit 1; }
  echo "cluster: 3 nodes joined, ZooKeeper on 127.0.0.1:$zk_port (data and logs in $dir)"
  for n in "${nodes[@]}"; do
    echo "  node-$n: binary protocol 127.0.0.1:$(port_of "$n"), console and REST http://127.0.0.1:$(http_of "$n")/ (pid $(cat "$dir/node-$n.pid"))"
  done
  read -r _ controller < <(seen 1)
  echo "  controller: $controller   (each node's view: $0 status $dir, or GET /rest/cluster)"
  local bin_dir shell
  bin_dir=$(cd "$bin" && pwd)
  shell="$bin_dir/strata --port $(port_of 1) --seed 127.0.0.1:$(port_of 2) --seed 127.0.0.1:$(port_of 3)"
  echo "  Deploy a replicated module: $shell -c \"deploy $bin_dir/../modules/wordcount.so replication=3\""
  echo "  Then: $shell -c placement   (the leader), and kill -9 the leader's pid to see a failover."
}

case "$command" in
  start)
    start_all
    ;;
  run)
    start_all
    dir=$(cd "$dir" && pwd)
    trap 'echo; echo "cluster: stopping"; stop_all; exit 0' INT TERM
    echo "Ctrl-C stops the cluster."
    while true; do sleep 1; done
    ;;
  stop)
    [ -d "$dir" ] || { echo "cluster: nothing in $dir" >&2; exit 1; }
    dir=$(cd "$dir" && pwd)
    stop_all
    echo "cluster: stopped"
    ;;
  status)
    for n in "${nodes[@]}"; do
      v=$(view "$n")
      echo "node-$n: ${v:-not answering}"
    done
    ;;
  *)
    usage
    ;;
esac
