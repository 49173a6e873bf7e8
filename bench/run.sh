#!/usr/bin/env bash
# One command for the whole comparison: builds the contender server and the
# load generator, runs every contender in turn (each server a separate
# process on 127.0.0.1, stopped by its PID), and writes the Markdown report
# to results/latest.md (results/ is not committed).
#
#   bench/run.sh                  # defaults: 5,000 connections, < 10 min on 2 cores
#   bench/run.sh -conns 10000     # the full-size run BENCHMARKS.md reports
#   bench/run.sh -conns 10000 -passes 3 -profile wsgate,naive   # + pprof (idle heap, fan-out CPU)
#   bench/run.sh -contenders naive,wsgate -conns 2000
#   bench/run.sh -floods          # the flood measurement instead: results/floods.md
#
# Any flag is passed to the load generator (go run ./cmd/loadgen -h lists them).
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p results/bin
# The wsgate-redis row needs adapter/redis; without it the harness still
# builds and that row is reported as skipped.
if ! go build -tags redis -o results/bin/server ./cmd/server 2>results/build-redis.log; then
  echo "run.sh: adapter/redis does not build (results/build-redis.log); wsgate-redis will be skipped" >&2
  go build -o results/bin/server ./cmd/server
fi
go build -o results/bin/loadgen ./cmd/loadgen
# socketio-node is Node's Socket.IO 4 server (node/server.mjs, versions
# pinned by node/package-lock.json), installed once; without node or npm
# that row is reported as skipped.
if [ ! -d node/node_modules/socket.io ] && command -v npm >/dev/null; then
  (cd node && npm ci --no-audit --no-fund) ||
    echo "run.sh: npm ci in bench/node failed; socketio-node will be skipped" >&2
fi

# The wsgate revision measured: HEAD, and "+dirty" when the library's own
# files differ from it (read-only git commands).
rev=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C .. status --porcelain -- hub adapter room auth guard internal sanitize go.mod 2>/dev/null)" ]; then
  rev="$rev+dirty"
fi

touch results/.started
./results/bin/loadgen -server results/bin/server -results results \
  -revision "$rev" -command "bench/run.sh${*:+ $*}" "$@"

# Profiles saved by -profile: print their top entries next to the report.
for p in results/*-fanout.cpu.pprof results/*-idle.heap.pprof; do
  [ -f "$p" ] && [ "$p" -nt results/.started ] || continue
  top="${p%.pprof}.top.txt"
  echo
  echo "== go tool pprof -top $p (saved in $top)"
  go tool pprof -top -nodecount=30 results/bin/server "$p" 2>/dev/null >"$top" || true
  sed -n '1,40p' "$top"
done
