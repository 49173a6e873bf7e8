#!/usr/bin/env bash
# Runs the official protocol suites, unchanged, against this fixture: builds
# it, starts it on a free loopback port, runs each suite named on the
# command line (default: engine.io-protocol) through
# ../shared/conformance/socketio/run.sh (node and npm needed), and stops
# the fixture by its PID whatever happens. Exit status: the first failing
# suite's, else 0.
#
# The name "differential" runs the differential transcripts of
# socketio/testdata/node instead of a suite: each is played against the
# Node.js reference server (started on a free port, stopped by its PID),
# whose record must be expected/, and against the fixture, whose record
# must be expected-wsgate/ (socketio's TestDifferentialRecords checks that
# the two differ only as differences.json says). Its npm packages come from
# its lockfile.
#
#   examples/socketio-conformance/conformance.sh [suite|differential...]
#
# CONFORMANCE_DIR overrides where the suites are (default ../shared/conformance/socketio
# beside the repository).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
NPM=${NPM:-npm}
suites_dir=${CONFORMANCE_DIR:-../shared/conformance/socketio}
node_dir=socketio/testdata/node
[ "$#" -gt 0 ] || set -- engine.io-protocol

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME DIR CMD...: starts CMD in DIR in the background, records its
# PID for cleanup, and sets started_url to the URL it announces
# ("listening on URL", within 10 s). It runs in this shell, not in a
# subshell, so that cleanup knows every PID.
started_url=""
start() {
  local name=$1 dir=$2
  shift 2
  (cd "$dir" && exec "$@") >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  started_url=""
  for _ in $(seq 1 100); do
    started_url=$(sed -n 's/^listening on //p' "$work/$name.out")
    [ -n "$started_url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$started_url" ]; then
    echo "conformance.sh: $name did not start" >&2
    cat "$work/$name.log" >&2
    exit 1
  fi
  echo "conformance.sh: $name (PID $pid) on $started_url"
}

"$GO" build -o "$work/fixture" ./examples/socketio-conformance
start fixture . "$work/fixture" -addr 127.0.0.1:0
url=$started_url
for suite in "$@"; do
  echo "--- $suite"
  if [ "$suite" = differential ]; then
    [ -d "$node_dir/node_modules/socket.io" ] || (cd "$node_dir" && "$NPM" ci --no-audit --no-fund)
    start reference "$node_dir" env PORT=0 node reference-server.mjs
    (cd "$node_dir" && node play.mjs --check "$started_url" transcripts/*.json)
    (cd "$node_dir" && node play.mjs --check --expected expected-wsgate "$url" transcripts/*.json)
    continue
  fi
  [ -x "$suites_dir/run.sh" ] || { echo "conformance.sh: no suites in $suites_dir" >&2; exit 2; }
  "$suites_dir/run.sh" "$suite" "$url"
done
