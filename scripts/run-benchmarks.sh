#!/bin/sh
# Runs every micro-benchmark binary built by strata_add_bench (bench/CMakeLists.txt).
# Usage: scripts/run-benchmarks.sh BUILD_DIR [extra Google Benchmark flags...]
set -eu
build_dir=${1:-build}
shift || true
found=0
for bench in "$build_dir"/bin/*_bench; do
  [ -x "$bench" ] || continue
  found=1
  echo "== $(basename "$bench")"
  "$bench" "$@"
done
[ "$found" = 1 ] || { echo "no benchmarks in $build_dir/bin (run make build first)" >&2; exit 1; }
