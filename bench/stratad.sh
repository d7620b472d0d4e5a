# Sourced by the bench scripts: start_stratad ARGS... starts $BUILD/bin/stratad on a
# temporary data directory ($TMP/data) with ARGS, on free loopback ports, waits until it
# listens and sets PORT (binary protocol) and, with --http, URL; the server is stopped and
# $TMP removed on exit. Needs BUILD and a script name in SCRIPT for messages.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-XXXXXX")
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

start_stratad() {
  "$BUILD/bin/stratad" --data-dir "$TMP/data" --listen 127.0.0.1:0 "$@" \
    > "$TMP/out" 2> "$TMP/log" &
  SERVER=$!
  local ready='^listening on'
  case " $* " in *" --http "*) ready='^HTTP on' ;; esac  # printed after "listening on"
  for _ in $(seq 600); do
    grep -q "$ready" "$TMP/out" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { echo "$SCRIPT: stratad failed:" >&2; cat "$TMP/log" >&2; exit 1; }
    sleep 0.1
  done
  PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out")
  URL=$(sed -n 's/^HTTP on \(.*\)\/$/\1/p' "$TMP/out")  # no trailing slash
}
