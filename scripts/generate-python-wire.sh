#!/bin/sh
# Regenerates drivers/python/strata/wire/ (the Python driver's message classes) from
# protocol/strata.fbs with flatc. Run it after changing the schema and commit the result;
# tests/python/test_wire_is_current.py fails while the committed code is stale.
# Usage: scripts/generate-python-wire.sh [OUTPUT_DIR]   (default: drivers/python)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/drivers/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
flatc --python -o "$TMP" "$ROOT/protocol/strata.fbs"
rm -rf "$OUT/strata/wire"
mkdir -p "$OUT/strata"
cp -r "$TMP/strata/wire" "$OUT/strata/wire"
