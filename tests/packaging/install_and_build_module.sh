#!/usr/bin/env bash
# Installs Strata from a build directory into a temporary prefix; builds the project
# out_of_tree/ (a module with strata_add_module, deploy_check, an embedded-engine
# program, and client_check, a driver program) in a temporary directory against the
# installed package; runs deploy_check on the module, and client_check against the build's
# stratad, and compares what they printed with what the module must do; then builds
# client_check again with WiredTiger hidden from pkg-config (a driver-only user).
#
# usage: install_and_build_module.sh CMAKE BUILD_DIR OUT_OF_TREE_PROJECT CXX_COMPILER
set -euo pipefail

cmake=$1 build_dir=$2 project=$3 cxx=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-packaging.XXXXXX")
stratad_pid=
cleanup() {
  [[ -z $stratad_pid ]] || { kill "$stratad_pid" 2>/dev/null; wait "$stratad_pid" 2>/dev/null; }
  rm -rf "$work"
}
trap cleanup EXIT
prefix=$work/prefix

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$cmake" --install "$build_dir" --prefix "$prefix" > "$work/install.log" \
  || { cat "$work/install.log" >&2; fail "cmake --install $build_dir"; }

# The public headers, and no header of the engine's internals.
for header in value.h status.h key_codec.h value_codec.h json.h path.h navigate.h schema.h \
    module.h engine.h client.h protocol/frame.h protocol/messages.h; do
  [[ -f $prefix/include/strata/$header ]] || fail "strata/$header is not installed"
done
unexpected=$(find "$prefix/include" -type f ! -path "$prefix/include/strata/*.h" -print)
[[ -z $unexpected ]] || fail "unexpected installed files: $unexpected"
[[ ! -e $prefix/include/strata/pstate.h ]] || fail "strata/pstate.h (storage) is installed"

# The programs, and the web console where the installed stratad looks for it
# (share/strata/console beside its bin/): the installed server serves it at /.
for program in stratad strata; do
  [[ -x $prefix/bin/$program ]] || fail "bin/$program is not installed"
done
for file in index.html console.js console.css; do
  [[ -f $prefix/share/strata/console/$file ]] || fail "share/strata/console/$file is not installed"
done
"$prefix/bin/stratad" --data-dir "$work/console-data" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  > "$work/console.out" 2> "$work/console.log" &
stratad_pid=$!
http=
for _ in $(seq 300); do
  http=$(sed -n 's/^HTTP on \(.*\)$/\1/p' "$work/console.out")
  [[ -n $http ]] && break
  sleep 0.1
done
[[ -n $http ]] || { cat "$work/console.log" >&2; fail "the installed stratad printed no HTTP line"; }
page=$(/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$http") \
  || fail "GET $http from the installed stratad failed"
grep -q 'console.js' <<<"$page" || fail "the installed stratad did not serve the console at /: $page"
kill "$stratad_pid"
wait "$stratad_pid" || fail "the installed stratad did not stop cleanly"
stratad_pid=

cp -R "$project" "$work/src"
"$cmake" -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log" 2>&1 \
  || { cat "$work/configure.log" >&2; fail "configuring $project against $prefix"; }
"$cmake" --build "$work/build" -j 2 > "$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; fail "building $project against $prefix"; }

module=$work/build/modules/greeter.so
[[ -f $module ]] || fail "strata_add_module did not write $module"

expected='module greeter (4 partitions)
depot *names random
pstate $$greetings map<string, int64>
topology greet <- *names
append ann -> greet: "hello, ann"
append bob -> greet: "hello, bob"
append ann -> greet: "hello, ann"
$$greetings ann = 2
$$greetings bob = 1'
actual=$("$work/build/deploy_check" "$module" "$work/data") \
  || fail "deploy_check failed on $module (its error is above)"
if [[ $actual != "$expected" ]]; then
  printf 'expected:\n%s\nactual:\n%s\n' "$expected" "$actual" >&2
  fail "the deployed module did not do what it should"
fi

# The driver: linked without any engine library, and working against a real stratad.
link=$work/build/CMakeFiles/client_check.dir/link.txt
! grep -Eq 'libstrata_(storage|depot|pstate|module|runtime|navigate|schema)\.a' "$link" \
  || fail "client_check links an engine library: $(cat "$link")"
# Starts the build's stratad on a fresh data directory $1; sets port.
start_stratad() {
  : > "$1.out"  # exists before the first read below (set -e: a sed of a missing file ends the script)
  "$build_dir/bin/stratad" --data-dir "$1" --listen 127.0.0.1:0 --http off --cache-size 64MB \
    > "$1.out" 2> "$1.log" &
  stratad_pid=$!
  port=
  for _ in $(seq 300); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1.out")
    [[ -n $port ]] && break
    kill -0 "$stratad_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$1.log" >&2; fail "stratad did not start"; }
}
start_stratad "$work/server"
expected_client='module greeter (4 partitions)
append ann -> greet: "hello, ann"
append bob -> greet: "hello, bob"
append ann -> greet: "hello, ann"
$$greetings ann = 2
$$greetings bob = 1
describe nope: NOT_FOUND'
actual=$("$work/build/client_check" "$port" "$module") \
  || fail "client_check failed against stratad on port $port (its error is above)"
if [[ $actual != "$expected_client" ]]; then
  printf 'expected:\n%s\nactual:\n%s\n' "$expected_client" "$actual" >&2
  fail "the driver program did not see what it should"
fi

# A driver-only user without WiredTiger: the package loads (saying that Strata::engine
# cannot be linked) and the driver program builds and works, against a fresh server.
mkdir -p "$work/no-pkgconfig"
PKG_CONFIG_LIBDIR=$work/no-pkgconfig PKG_CONFIG_PATH= "$cmake" -S "$work/src" -B "$work/build-client" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
  > "$work/configure-client.log" 2>&1 \
  || { cat "$work/configure-client.log" >&2; fail "configuring without WiredTiger's pkg-config file"; }
grep -q "Strata::engine cannot be linked" "$work/configure-client.log" \
  || { cat "$work/configure-client.log" >&2; fail "the package did not report WiredTiger missing"; }
"$cmake" --build "$work/build-client" -j 2 --target client_check > "$work/build-client.log" 2>&1 \
  || { cat "$work/build-client.log" >&2; fail "building client_check without WiredTiger"; }
kill "$stratad_pid"; wait "$stratad_pid" 2>/dev/null || true
start_stratad "$work/server2"
actual=$("$work/build-client/client_check" "$port" "$module") \
  || fail "client_check built without WiredTiger failed against stratad on port $port"
if [[ $actual != "$expected_client" ]]; then
  printf 'expected:\n%s\nactual:\n%s\n' "$expected_client" "$actual" >&2
  fail "client_check built without WiredTiger did not see what it should"
fi

echo "OK: $module built against $prefix, deployed and used, embedded and through the driver"
echo "OK: client_check built and run without WiredTiger's pkg-config file"
