# canarybot — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/canarybot
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build demo test deps lint bench fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/canarybot

# A whole release on this machine in about two minutes: preflight, stages
# 1→100 %, a compressed first night, evidence, one-liner and mini RCA.
demo: build
	./$(BIN) demo --evidence-dir demo-evidence

# deps installs what the tests need on a bare machine (Debian packages and
# Go modules); it is a no-op when everything is there.
deps:
	./scripts/deps.sh

# -timeout: on a machine with a cold build cache, deploy's image test
# compiles the whole binary inside the image build beside the other
# packages' tests; go test's default of 10 minutes is too tight for that.
test: deps
	$(GO) test -count=1 -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks; figures and the machine they came from are in the README.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A longer fuzzing session of the config parser than `make test` runs.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./config/

clean:
	rm -rf bin demo-evidence
