#!/usr/bin/env bash
# Installs Strata from a build directory into a temporary prefix; builds the project
# out_of_tree/ (a module with strata_add_module, and deploy_check, an embedded-engine
# program) in a temporary directory against the installed package; runs deploy_check on
# the module and compares what it printed with what the module must do.
#
# usage: install_and_build_module.sh CMAKE BUILD_DIR OUT_OF_TREE_PROJECT CXX_COMPILER
set -euo pipefail

cmake=$1 build_dir=$2 project=$3 cxx=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$cmake" --install "$build_dir" --prefix "$prefix" > "$work/install.log" \
  || { cat "$work/install.log" >&2; fail "cmake --install $build_dir"; }

# The public headers, and no header of the engine's internals.
for header in value.h status.h key_codec.h value_codec.h json.h path.h schema.h module.h engine.h; do
  [[ -f $prefix/include/strata/$header ]] || fail "strata/$header is not installed"
done
unexpected=$(find "$prefix/include" -type f ! -path "$prefix/include/strata/*.h" -print)
[[ -z $unexpected ]] || fail "unexpected installed files: $unexpected"
[[ ! -e $prefix/include/strata/pstate.h ]] || fail "strata/pstate.h (storage) is installed"

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
echo "OK: $module built against $prefix, deployed and used"
