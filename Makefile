# Newcomers: `make test` is the Go test suite (go vet and go test -race ./...).
# CI (.ci/run) runs it, and also checks gofmt, runs `make modules` (the
# modules beside the library), `make conformance`, `make sioclient`,
# `make rules`, `make benchcheck` and `make e2e`.
GO ?= go
NODE ?= node
NPM ?= npm

.PHONY: test deps vet race modules rules bench benchcheck fuzz chat jstest e2e conformance sioclient

test: deps vet race

# The Redis broker's tests start real redis-server processes. Nothing is
# installed (and no root is needed) when redis-server and redis-cli are on
# the PATH; otherwise apt-get installs them when run as root, and any other
# machine is told what to install.
deps:
	@if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing redis-server and redis-tools (the Redis broker's tests start their own servers)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools; \
	else \
		echo "make test needs redis-server and redis-cli on the PATH (the Redis broker's tests start their own servers). Install Redis 7 or later:"; \
		echo "  Debian/Ubuntu: sudo apt-get install redis-server redis-tools"; \
		echo "  Fedora/RHEL:   sudo dnf install redis"; \
		echo "  Alpine:        sudo apk add redis"; \
		echo "  macOS:         brew install redis"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 20m ./...

# The modules beside the library, each with a go.mod of its own so that
# their dependencies (OpenTelemetry, chi) stay out of the library's: vet
# and race tests of each. Their dependencies come from the Go module proxy.
MODULES ?= otel examples/embedding
modules: deps
	@for m in $(MODULES); do \
		echo "--- $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...) || exit 1; \
	done

# The Prometheus alerting rules: syntax, then their unit tests. promtool
# comes with Debian's prometheus package (CI installs it).
PROMTOOL ?= promtool
rules:
	$(PROMTOOL) check rules deploy/prometheus/wsgate.rules.yml
	$(PROMTOOL) test rules deploy/prometheus/wsgate.rules.test.yml

# Micro-benchmarks of the hot paths.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every micro-benchmark once, so they keep compiling and working (CI).
benchcheck:
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

# Short fuzzing runs of every decoder (FUZZTIME=5m for longer).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/wire -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME)
	$(GO) test ./internal/protocol -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./room -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzValidRoom -fuzztime $(FUZZTIME)
	$(GO) test ./auth -run '^$$' -fuzz FuzzJWTAuthenticate -fuzztime $(FUZZTIME)
	$(GO) test ./guard -run '^$$' -fuzz FuzzOriginAllow -fuzztime $(FUZZTIME)
	$(GO) test ./socketio/internal/eio -run '^$$' -fuzz '^FuzzPayload$$' -fuzztime $(FUZZTIME)
	$(GO) test ./socketio/internal/sio -run '^$$' -fuzz '^FuzzPacket$$' -fuzztime $(FUZZTIME)
	$(GO) test ./socketio/internal/sio -run '^$$' -fuzz '^FuzzScanJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./socketio -run '^$$' -fuzz '^FuzzParseOffset$$' -fuzztime $(FUZZTIME)

chat:
	$(GO) run ./examples/chat

# The official Engine.IO and Socket.IO protocol suites, unchanged
# (../shared/conformance/socketio), against examples/socketio-conformance
# started on a free port and stopped by its PID, then the differential
# transcripts (socketio/testdata/node) against it. Needs node and npm (the
# suites' and the transcript player's pinned packages come from their
# lockfiles).
conformance:
	GO='$(GO)' NPM='$(NPM)' examples/socketio-conformance/conformance.sh engine.io-protocol socket.io-protocol differential

# The real socket.io-client 4.8 (socketio/testdata/node's lockfile) in
# node's test runner against examples/chat and the fixture of what the chat
# does not serve (socketio/internal/nodefixture), both built from this
# checkout, started on free loopback ports and stopped by their PIDs:
# transports and the upgrade, auth, acks both ways, binary, namespaces,
# refusals, reconnects.
sioclient:
	@test -d socketio/testdata/node/node_modules/socket.io-client || { cd socketio/testdata/node && $(NPM) ci --no-audit --no-fund; }
	cd socketio/testdata/node && GO='$(GO)' $(NODE) --test client/chat.test.mjs client/fixture.test.mjs client/recovery.test.mjs

# Unit tests of the browser client module (web/wsgate.js): node's built-in
# test runner, no npm packages.
jstest:
	$(NODE) --test web/wsgate.test.mjs

# Real-browser tests of the examples: Debian's chromium (/usr/bin/chromium,
# or $$CHROMIUM) driven by playwright-core, installed from the lockfile when
# e2e/node_modules is missing, with socket.io-client, whose bundle the chat
# serves for its Socket.IO page. The screenshots go to e2e/artifacts/.
e2e: jstest
	@test -d e2e/node_modules/playwright-core -a -d e2e/node_modules/socket.io-client || { cd e2e && $(NPM) ci --no-audit --no-fund; }
	cd e2e && GO='$(GO)' $(NPM) test
