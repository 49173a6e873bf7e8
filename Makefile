# Newcomers: `make test` is the whole test suite, exactly what CI runs.
GO ?= go

.PHONY: test vet race bench fuzz chat

test: vet race

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 20m ./...

# Micro-benchmarks of the hot paths.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Short fuzzing runs of every decoder (FUZZTIME=5m for longer).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/protocol -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./room -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./auth -run '^$$' -fuzz FuzzJWTAuthenticate -fuzztime $(FUZZTIME)
	$(GO) test ./guard -run '^$$' -fuzz FuzzOriginAllow -fuzztime $(FUZZTIME)

chat:
	$(GO) run ./examples/chat
