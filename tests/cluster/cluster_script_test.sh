#!/bin/bash
# scripts/cluster.sh (make cluster) as docs/cluster.md shows it: start returns once the three
# nodes joined and agree on a controller, a second start is refused, the shell's rebalance
# spreads two modules' leaderships and its update reaches both leaders, a kill -9 of the
# controller moves the office to another node within the session timeout, stop ends every
# process, a bad command is a usage error.
set -eu
script=$1
export STRATA_BIN=$2
dir=$(mktemp -d /tmp/strata-cluster-test-XXXXXX)
# A base port whose seven ports (base, +1, +10, +11, +20, +21, +30) are free now.
STRATA_CLUSTER_PORT=$(/usr/bin/python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000)
    socks = []
    try:
        for off in (0, 1, 10, 11, 20, 21, 30):
            s = socket.socket()
            s.bind(("127.0.0.1", base + off))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
PY
)
export STRATA_CLUSTER_PORT
export STRATAD_ARGS="--cluster-session-timeout 2s"
trap '"$script" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
controller_seen_by() {
  "$script" status "$dir" | grep "^node-$1:" | sed 's/^node-[0-9]: //' |
    /usr/bin/python3 -c 'import json, sys
try: print(json.load(sys.stdin)["controller"] or "-")
except Exception: print("-")'
}

"$script" start "$dir" | grep -q "3 nodes joined" || fail "start"
first=$(controller_seen_by 1)
[ "$first" != - ] || fail "no controller after start"
for n in 2 3; do [ "$(controller_seen_by $n)" = "$first" ] || fail "node-$n sees another controller"; done
if "$script" start "$dir" >/dev/null 2>&1; then fail "a second start was not refused"; fi

# The shell: two modules deployed through node-1 are both led by it; `rebalance` spreads
# the leaderships (docs/cluster.md, "Rebalance"), as `placement` then shows.
shell() { "$STRATA_BIN/strata" --port "$STRATA_CLUSTER_PORT" --json -c "$1"; }
leaders() {
  shell placement | /usr/bin/python3 -c 'import json, sys
print(" ".join(sorted(g["leader"] for g in json.load(sys.stdin)["groups"])))'
}
for m in wordcount bank; do
  shell "deploy $STRATA_BIN/../modules/$m.so replication=3" >/dev/null || fail "deploy $m"
done
[ "$(leaders)" = "node-1 node-1" ] || fail "both modules are not led by node-1: $(leaders)"
shell rebalance | grep -q '"groups"' || fail "rebalance"
spread=
for _ in $(seq 100); do
  now=$(leaders)
  if [ "$now" != "node-1 node-1" ] && [ "$(echo "$now" | tr ' ' '\n' | sort -u | wc -l)" = 2 ]; then
    spread=$now; break
  fi
  sleep 0.1
done
[ -n "$spread" ] || fail "rebalance did not spread the leaderships: $(leaders)"

# `update` through node-1, for a module it leads and one another node leads (the shell
# follows the redirect): both at version 2 (docs/cluster.md, "Changing a module in a cluster").
for m in wordcount bank; do
  version=$(shell "update $STRATA_BIN/../modules/$m.so" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])') ||
    fail "update $m"
  [ "$version" = 2 ] || fail "update $m answered version $version"
done

kill -9 "$(cat "$dir/$first.pid")"
survivor=node-1
[ "$first" = node-1 ] && survivor=node-2
moved=
for _ in $(seq 150); do  # the 2 s session timeout, then the election: well under 15 s
  now=$(controller_seen_by "${survivor#node-}")
  if [ "$now" != - ] && [ "$now" != "$first" ]; then moved=$now; break; fi
  sleep 0.1
done
[ -n "$moved" ] || fail "the controller did not move from $first"

pids=$(cat "$dir"/node-*.pid "$dir/zk/zookeeper.pid")
"$script" stop "$dir" | grep -q stopped || fail "stop"
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null; then fail "process $pid still runs after stop"; fi
done
set +e
"$script" frobnicate "$dir" 2>/dev/null
[ $? -eq 2 ] || fail "a bad command is not a usage error (exit code 2)"
echo "cluster.sh: start, agreement, refused restart, rebalance ($spread), update, controller failover ($first -> $moved), stop: ok"
