#!/bin/bash
# scripts/zk-local.sh as people use it (docs/cluster.md): start answers on the port, a second
# start in the same directory is refused, stop ends the server, a bad command is a usage error.
set -eu
script=$1
dir=$(mktemp -d /tmp/strata-zk-local-XXXXXX)
trap '"$script" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

fail() { echo "FAIL: $*" >&2; exit 1; }

"$script" start "$dir" "$port" | grep -q "ZooKeeper on 127.0.0.1:$port" || fail "start"
pid=$(cat "$dir/zookeeper.pid")
kill -0 "$pid" || fail "no process $pid after start"
# shellcheck disable=SC2016  # $1 is the inner shell's argument
reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf ruok >&3; cat <&3' _ "$port")
[ "$reply" = imok ] || fail "ruok answered '$reply'"
if "$script" start "$dir" "$port" 2>/dev/null; then fail "a second start was not refused"; fi
"$script" stop "$dir" | grep -q "stopped" || fail "stop"
if kill -0 "$pid" 2>/dev/null; then fail "process $pid still runs after stop"; fi
[ ! -f "$dir/zookeeper.pid" ] || fail "pid file left"
set +e
"$script" frobnicate "$dir" 2>/dev/null
[ $? -eq 2 ] || fail "a bad command is not a usage error (exit code 2)"
echo "zk-local.sh: start, refused restart, stop, usage: ok"
