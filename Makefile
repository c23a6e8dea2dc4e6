# microshop — run `make` (or `make help`) to list the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash -o pipefail

GO      ?= go
RUN_DIR ?= .run
BIN     := $(RUN_DIR)/bin
TOOLS   := $(RUN_DIR)/tools

# Go modules in go.work; `./...` at the root matches none of them.
MODULES  := pkg proto services/gateway services/order services/inventory services/payment services/psp deploy/local
PACKAGES := $(addsuffix /...,$(addprefix ./,$(MODULES)))
PROGRAMS := ./services/gateway/cmd/gateway ./services/order/cmd/order ./services/psp/cmd/psp \
            ./services/inventory/cmd/inventory ./services/payment/cmd/payment \
            ./deploy/local/cmd/broker ./deploy/local/cmd/launcher ./deploy/local/cmd/chaos

.PHONY: help build run run-full chaos test test-short fuzz lint tools proto proto-check clean bench-checkout

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build every program into .run/bin
	$(GO) build -o $(BIN)/ $(PROGRAMS)

run: build ## run the shop natively: Kafka-protocol broker + services, SQLite files under .run/
	$(BIN)/launcher -mode embedded -dir $(RUN_DIR) -bin $(BIN)

run-full: build ## run the shop natively with a throwaway PostgreSQL cluster instead of SQLite
	$(BIN)/launcher -mode full -dir $(RUN_DIR) -bin $(BIN)

chaos: build ## chaos run at full size: 10,000 checkouts, 1,000 process kills, then the invariants checked
	$(BIN)/chaos -orders 10000 -kills 1000 -dir $(RUN_DIR)/chaos -bin $(BIN)

# bench-checkout's open-loop rates are about half the saturation throughput
# measured on the project's 2-core machine (docs/benchmarks.md).
BENCH_FLAGS      ?= -warmup 5s -duration 20s
BENCH_CONCURRENCY ?= 64
BENCH_RATE_EMBEDDED ?= 69
BENCH_RATE_FULL  ?= 58

bench-checkout: build ## checkout saga benchmark: sagas/s and time to final status, SQLite and PostgreSQL, half load and saturation
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	$(BIN)/bench -bin $(BIN) -mode embedded -rate $(BENCH_RATE_EMBEDDED) $(BENCH_FLAGS)
	$(BIN)/bench -bin $(BIN) -mode embedded -rate 0 -concurrency $(BENCH_CONCURRENCY) $(BENCH_FLAGS)
	$(BIN)/bench -bin $(BIN) -mode full -rate $(BENCH_RATE_FULL) $(BENCH_FLAGS)
	$(BIN)/bench -bin $(BIN) -mode full -rate 0 -concurrency $(BENCH_CONCURRENCY) $(BENCH_FLAGS)

test: lint ## lint, then every test: unit, integration (SQLite, PostgreSQL, broker), wiring, end-to-end
	$(GO) test -count=1 -timeout 20m $(PACKAGES)

test-short: ## unit, integration and wiring tests; skips the end-to-end stack
	$(GO) test -short $(PACKAGES)

# fuzz runs every Fuzz function of every module, one after the other (go
# test fuzzes one target at a time), each for FUZZTIME; each target's output
# is kept in $(RUN_DIR)/fuzz/, and the last progress line of each (its
# execution count) is printed at the end. CPU-heavy: not part of make test.
FUZZTIME ?= 1000000x

fuzz: ## fuzz every decoder of untrusted input and the token parser, FUZZTIME (1000000x) executions each
	@mkdir -p $(RUN_DIR)/fuzz; rm -f $(RUN_DIR)/fuzz/summary; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' $(MODULES)); do \
		dir=./$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			log=$(RUN_DIR)/fuzz/$$(echo $${dir#./} | tr / _)_$$target.log; \
			echo "== $$dir $$target"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$dir > $$log 2>&1; rc=$$?; \
			echo "$$dir $$target: $$(grep -o 'execs: [0-9]*' $$log | tail -1), exit $$rc" | tee -a $(RUN_DIR)/fuzz/summary; \
			if [ $$rc -ne 0 ]; then cat $$log; exit 1; fi; \
		done; \
	done; \
	echo "== summary"; cat $(RUN_DIR)/fuzz/summary

lint: tools proto-check ## gofmt, go vet, staticcheck, go.mod tidiness, buf lint and current generated code
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PACKAGES)
	$(TOOLS)/staticcheck $(PACKAGES)
	@for m in $(MODULES) tools; do \
		(cd $$m && GOWORK=off $(GO) mod tidy -diff) || { echo "$$m/go.mod is not tidy: run go mod tidy there"; exit 1; }; \
	done

tools: $(TOOLS)/staticcheck $(TOOLS)/buf $(TOOLS)/protoc-gen-go ## build the pinned tools of tools/go.mod into .run/tools

$(TOOLS)/staticcheck: tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o ../$(TOOLS)/ honnef.co/go/tools/cmd/staticcheck

$(TOOLS)/buf: tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o ../$(TOOLS)/ github.com/bufbuild/buf/cmd/buf

$(TOOLS)/protoc-gen-go: tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o ../$(TOOLS)/ google.golang.org/protobuf/cmd/protoc-gen-go

proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go ## lint proto/*.proto and regenerate their Go code (commit the .pb.go files)
	cd proto && ../$(TOOLS)/buf lint && ../$(TOOLS)/buf generate

proto-check: $(TOOLS)/buf $(TOOLS)/protoc-gen-go ## buf lint, and fail if proto/'s committed Go code is not what make proto generates
	cd proto && ../$(TOOLS)/buf lint
	proto/check-generated.sh proto

clean: ## remove .run/ (databases, broker data, binaries)
	rm -rf $(RUN_DIR)
