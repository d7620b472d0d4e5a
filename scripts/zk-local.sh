#!/bin/bash
# A local standalone ZooKeeper server for development and tests (docs/cluster.md), run from
# Debian's zookeeper package (its jars under /usr/share/java, as /usr/share/zookeeper/bin
# runs them).
#
#   scripts/zk-local.sh start DIR PORT   start it in the background on 127.0.0.1:PORT with
#                                        its data, config, log and pid file in DIR; returns
#                                        once it answers (or fails, showing its log)
#   scripts/zk-local.sh stop DIR         stop the server started with DIR
#   scripts/zk-local.sh run DIR PORT [ADDRESS]
#                                        run it in the foreground (exec: the process is
#                                        java; the tests' fixture starts it this way) on
#                                        ADDRESS:PORT (default 127.0.0.1; the fault tests
#                                        give a network namespace's address)
#
# Sessions may ask for 1 s to 60 s (tickTime 100 ms: a session expires at most a tick
# after its timeout, so a dead node is noticed within ~1.1 s at 1 s; docs/cluster.md).
# Not durable against a power loss (forceSync=no): it is for one machine's tests and
# experiments, not for production.
set -eu

usage() {
  echo "usage: $0 start DIR PORT | stop DIR | run DIR PORT [ADDRESS]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
command=$1
dir=$2
JAVA=${JAVA:-java}

classpath() {
  # zookeeper.jar's manifest names the jars it needs; slf4j-nop silences the logging.
  local cp=/usr/share/java/zookeeper.jar
  [ -f /usr/share/java/slf4j-nop.jar ] && cp="$cp:/usr/share/java/slf4j-nop.jar"
  [ -f /usr/share/java/zookeeper.jar ] || {
    echo "zk-local: /usr/share/java/zookeeper.jar is missing: install Debian's zookeeper" >&2
    exit 1
  }
  echo "$cp"
}

write_config() {
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=100
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=$1
clientPortAddress=$2
maxClientCnxns=0
forceSync=no
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
CFG
}

# True once the server on PORT answers "ruok" with "imok". Bounded: a connection accepted
# while the server is still starting may never be answered.
answers() {
  local reply
  # shellcheck disable=SC2016  # $1 is the inner shell's argument
  reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf ruok >&3 && cat <&3' \
    _ "$1" 2>/dev/null) || return 1
  [ "$reply" = imok ]
}

run() {
  local port=$1 address=${2:-127.0.0.1}
  write_config "$port" "$address"
  # It answers about 0.3 s after the start. The JVM flags (class data sharing, the client
  # compiler only, a small heap, the serial collector) keep its CPU time and memory small
  # (measured: 0.35 s of CPU and 56 MB resident for its first 3 s, against 0.37 s and 63 MB
  # without them): the tests start one server per test.
  exec "$JAVA" -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx64m \
    -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist=ruok,srvr,stat \
    -cp "$(classpath)" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg"
}

case "$command" in
  run)
    [ $# -eq 3 ] || [ $# -eq 4 ] || usage
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    run "$3" "${4:-127.0.0.1}"
    ;;
  start)
    [ $# -eq 3 ] || usage
    port=$3
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    if [ -f "$dir/zookeeper.pid" ] && kill -0 "$(cat "$dir/zookeeper.pid")" 2>/dev/null; then
      echo "zk-local: already running in $dir (pid $(cat "$dir/zookeeper.pid"))" >&2
      exit 1
    fi
    "$0" run "$dir" "$port" >"$dir/zookeeper.log" 2>&1 </dev/null &
    echo $! >"$dir/zookeeper.pid"
    for _ in $(seq 300); do
      if answers "$port"; then
        echo "zk-local: ZooKeeper on 127.0.0.1:$port (pid $(cat "$dir/zookeeper.pid"), dir $dir)"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/zookeeper.pid")" 2>/dev/null; then break; fi
      sleep 0.1
    done
    echo "zk-local: ZooKeeper did not start on 127.0.0.1:$port; its log ($dir/zookeeper.log):" >&2
    tail -20 "$dir/zookeeper.log" >&2 || true
    kill "$(cat "$dir/zookeeper.pid")" 2>/dev/null || true
    rm -f "$dir/zookeeper.pid"
    exit 1
    ;;
  stop)
    [ $# -eq 2 ] || usage
    [ -f "$dir/zookeeper.pid" ] || { echo "zk-local: nothing started in $dir" >&2; exit 1; }
    pid=$(cat "$dir/zookeeper.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/zookeeper.pid"
    echo "zk-local: stopped (pid $pid)"
    ;;
  *)
    usage
    ;;
esac
