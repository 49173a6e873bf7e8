#!/usr/bin/env bash
# Runs the official protocol suites, unchanged, against this fixture: builds
# it, starts it on a free loopback port, runs each suite named on the
# command line (default: engine.io-protocol) through
# ../shared/conformance/socketio/run.sh (node and npm needed), and stops
# the fixture by its PID whatever happens. Exit status: the first failing
# suite's, else 0.
#
#   examples/socketio-conformance/conformance.sh [suite...]
#
# CONFORMANCE_DIR overrides where the suites are (default ../shared/conformance/socketio
# beside the repository).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
suites_dir=${CONFORMANCE_DIR:-../shared/conformance/socketio}
[ -x "$suites_dir/run.sh" ] || { echo "conformance.sh: no suites in $suites_dir" >&2; exit 2; }
[ "$#" -gt 0 ] || set -- engine.io-protocol

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$GO" build -o "$work/fixture" ./examples/socketio-conformance
"$work/fixture" -addr 127.0.0.1:0 >"$work/out" 2>"$work/log" &
pid=$!
# The fixture prints its address once it accepts connections (at most 10 s).
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening on //p' "$work/out")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "conformance.sh: the fixture did not start" >&2
  cat "$work/log" >&2
  exit 1
fi
echo "conformance.sh: fixture (PID $pid) on $url"
for suite in "$@"; do
  echo "--- $suite"
  "$suites_dir/run.sh" "$suite" "$url"
done
