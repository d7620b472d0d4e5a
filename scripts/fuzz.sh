#!/bin/sh
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 60).
# Usage: scripts/fuzz.sh [SECONDS]        (or: make fuzz FUZZ_SECONDS=N)
#
# Installs clang-14 and libFuzzer (scripts/install-deps.sh --fuzz), configures and builds
# build-fuzz/ (clang, ASan+UBSan, libFuzzer; separate from the g++ build), then fuzzes
# each target starting from a copy of its seed corpus tests/fuzz/corpus/<target>/ in a
# temporary directory, so nothing is written into the repository. Exits non-zero when a
# target finds a crash, a leak, a timeout or an out-of-memory input, and prints where that
# input is; the temporary directory is then kept.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), JOBS (default nproc), FUZZ_TARGETS
# (default: every target, space-separated).
set -eu

SECONDS_PER_TARGET="${1:-60}"
case "$SECONDS_PER_TARGET" in
  ''|*[!0-9]*|0) echo "fuzz.sh: SECONDS must be a positive integer, got '$SECONDS_PER_TARGET'" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-$(nproc)}"
TARGETS="${FUZZ_TARGETS:-fuzz_key_decode fuzz_value_decode fuzz_json_parse fuzz_path_decode fuzz_frame_decode fuzz_request_decode fuzz_response_decode fuzz_abi_note fuzz_replog_entry}"

scripts/install-deps.sh --fuzz

# -O1 -g without NDEBUG: asserts stay on, stacks stay readable, the fuzzer stays fast.
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -DSTRATA_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j "$JOBS" --target $TARGETS

WORK="$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz.XXXXXX")"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
for target in $TARGETS; do
  corpus="$WORK/$target/corpus"
  artifacts="$WORK/$target/artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp "tests/fuzz/corpus/$target/"* "$corpus/"
  echo "== $target: ${SECONDS_PER_TARGET}s from $(find "$corpus" -type f | wc -l) seeds"
  status=0
  "$BUILD_DIR/bin/$target" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
    >"$WORK/$target/log" 2>&1 || status=$?
  # Coverage of the seeds (INITED), the last status line (DONE when the time ran out)
  # and the final stats.
  grep -E '^#[0-9]+[[:space:]]+INITED' "$WORK/$target/log" || true
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$WORK/$target/log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
    "$WORK/$target/log" || true
  if [ "$status" -ne 0 ] || [ -n "$(ls "$artifacts")" ]; then
    echo "!! $target failed (exit status $status); log: $WORK/$target/log"
    grep -E -A 30 '^(==[0-9]+==ERROR|\*\*\* strata fuzz invariant|.*runtime error:)' \
      "$WORK/$target/log" | head -n 60 || true
    for input in "$artifacts"/*; do
      [ -e "$input" ] || continue
      echo "!! input: $input"
      echo "!! hex:   $(od -An -v -tx1 "$input" | tr -d ' \n' | cut -c1-512)"
      echo "!! reproduce: $BUILD_DIR/bin/$target $input"
    done
    failed="$failed $target"
  fi
done

if [ -n "$failed" ]; then
  echo "fuzz.sh: FAILED:$failed (inputs and logs kept in $WORK)"
  exit 1
fi
rm -rf "$WORK"
echo "fuzz.sh: all targets ran ${SECONDS_PER_TARGET}s without a failure"
