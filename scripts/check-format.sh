#!/bin/sh
# Checks that every C++ file git tracks is formatted as .clang-format says (Debian's
# clang-format 14). Prints the files that are not and exits 1; `--fix` reformats them.
# Run by `make test` (ctest format_check).
set -eu
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
if [ -z "$CLANG_FORMAT" ]; then
  echo "check-format: clang-format is not installed (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
fix=0
[ "${1:-}" = "--fix" ] && fix=1
bad=0
for f in $(git ls-files '*.cc' '*.h'); do
  if [ "$fix" = 1 ]; then
    "$CLANG_FORMAT" -i "$f"
  elif ! "$CLANG_FORMAT" "$f" | cmp -s - "$f"; then
    echo "not formatted: $f"
    bad=1
  fi
done
if [ "$bad" = 1 ]; then
  echo "check-format: run scripts/check-format.sh --fix (clang-format, .clang-format)" >&2
  exit 1
fi
