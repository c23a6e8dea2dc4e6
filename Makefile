# microshop — run `make` (or `make help`) to list the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash -o pipefail

GO      ?= go
RUN_DIR ?= .run
BIN     := $(RUN_DIR)/bin
TOOLS   := $(RUN_DIR)/tools

# Go modules in go.work; `./...` at the root matches none of them.
MODULES  := pkg proto services/gateway services/order services/inventory services/payment services/psp deploy/local \
            observability observability/ebpf loadtest
PACKAGES := $(addsuffix /...,$(addprefix ./,$(MODULES)))
PROGRAMS := ./services/gateway/cmd/gateway ./services/order/cmd/order ./services/psp/cmd/psp \
            ./services/inventory/cmd/inventory ./services/payment/cmd/payment \
            ./deploy/local/cmd/broker ./deploy/local/cmd/launcher ./deploy/local/cmd/chaos ./deploy/local/cmd/lab \
            ./observability/ebpf/cmd/probe

# Services added with make new-service: the first word of each line of the
# launcher's list (deploy/local/internal/added/services.txt) that is not a
# comment. They are built, linted and tested with the others.
ADDED_SERVICES := $(shell awk '!/^[[:space:]]*(\#|$$)/ {print $$1}' deploy/local/internal/added/services.txt)
MODULES  += $(addprefix services/,$(ADDED_SERVICES))
PACKAGES := $(addsuffix /...,$(addprefix ./,$(MODULES)))
PROGRAMS += $(foreach s,$(ADDED_SERVICES),./services/$(s)/cmd/$(s))

.PHONY: lab-redeliver help new-service build cross debootstrap compose-images compose-test run run-full chaos test test-short fuzz lint tools slow-tools proto proto-check clean bench-checkout bench-checkout-cost bench-compare bench-scale-out bench-telemetry bench-overload prometheus dashboards screenshots load \
        ebpf-tools ebpf-vmlinux ebpf-generate ebpf-check bench-ebpf

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z%-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# make new-service NAME=shipping RECORD=shipment: see deploy/local/cmd/newservice.
NAME   ?=
RECORD ?= job

new-service: ## generate services/NAME (make new-service NAME=shipping RECORD=shipment): one RECORD per confirmed order, started by make run and make run-full, tested by make test
	@test -n "$(NAME)" || { echo 'usage: make new-service NAME=<name> [RECORD=<what it keeps per confirmed order, default job>]'; exit 2; }
	$(GO) run ./deploy/local/cmd/newservice -name '$(NAME)' -record '$(RECORD)'

build: ## build every program into .run/bin
	$(GO) build -o $(BIN)/ $(PROGRAMS)

# Every program builds for linux/arm64 too (Apple Silicon, Graviton), static
# as the Dockerfile builds it — but the eBPF probe, whose BPF objects and
# uprobe offsets are x86-64's only.
CROSS_PROGRAMS := $(filter-out ./observability/ebpf/cmd/probe,$(PROGRAMS))

cross: ## check that every program but the eBPF probe builds for linux/arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o /dev/null $(CROSS_PROGRAMS)

# Both restart a service that dies (kill -9 order: the workshop's lab 4)
# instead of stopping the stack. run-full's PostgreSQL listens on PG_PORT,
# where make lab-N-check finds the databases.
PG_PORT ?= 55432

run: build ## run the shop natively: Kafka-protocol broker + services, SQLite files under .run/
	$(BIN)/launcher -mode embedded -dir $(RUN_DIR) -bin $(BIN) -restart

# REPLICAS=2 (up to 9) runs that many replicas of order, inventory and
# payment, replica r on its service's port + 100×(r−1) (8181–8183 for the
# second): the launcher's -replicas.
REPLICAS ?= 1

run-full: build $(TOOLS)/jaeger $(TOOLS)/consul prometheus ## run the shop natively with a throwaway PostgreSQL cluster (on PG_PORT, 55432) instead of SQLite, Consul, Jaeger and Prometheus; REPLICAS=2 runs two of order, inventory and payment
	$(BIN)/launcher -mode full -dir $(RUN_DIR) -bin $(BIN) -restart -postgres-port $(PG_PORT) -consul $(TOOLS)/consul -jaeger $(TOOLS)/jaeger -prometheus $$(command -v prometheus) -probe $(BIN)/probe -replicas $(REPLICAS)

# The workshop (labs/README.md): make lab-1-check … lab-10-check inspect the
# stack make run-full runs (at its default addresses; LAB_FLAGS changes
# them, see go doc ./deploy/local/cmd/lab) and say what the learner has
# done and seen, and what is missing.
LAB_FLAGS ?=

lab-%-check: ## workshop: check lab N against the running make run-full stack (labs/README.md), e.g. make lab-1-check
	@$(GO) build -o $(BIN)/ ./deploy/local/cmd/lab
	@$(BIN)/lab $(LAB_FLAGS) check $*

lab-redeliver: ## workshop lab 5: deliver the saga commands of order ORDER again, as a crashed consumer's broker would (make lab-redeliver ORDER=<order id>)
	@$(GO) build -o $(BIN)/ ./deploy/local/cmd/lab
	$(BIN)/lab $(LAB_FLAGS) redeliver $(ORDER)

chaos: build $(TOOLS)/consul ## chaos run at full size: 10,000 checkouts, 1,000 process kills, then the invariants checked
	$(BIN)/chaos -orders 10000 -kills 1000 -dir $(RUN_DIR)/chaos -bin $(BIN) -consul $(TOOLS)/consul

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

# bench-overload runs the stack on CPU 1 and the load generator on CPU 0
# (taskset), so that they do not steal from each other: capacity is one
# core's. The whole run took 11 min 43 s on a quiet machine (a fresh stack
# per candidate, up to a minute after each level for it to settle), longer
# when the stack is slow to work off its backlog.
OVERLOAD_FLAGS ?= -warmup 3s -duration 10s

bench-overload: build ## pkg/limit's adaptive limiters side by side past capacity: goodput, admitted and rejection p99, errors, CPU at 0.5-5 C, retry storms; table and docs/overload.svg
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	taskset -c 0 $(BIN)/bench -bin $(BIN) -overload -stack-cpus 1 -svg docs/overload.svg $(OVERLOAD_FLAGS)

# BENCH_PROFILE=dir makes bench-checkout-cost also write a CPU profile of the
# window of every service to dir (the profiler's own CPU is then counted too).
BENCH_PROFILE ?=

bench-checkout-cost: build ## the cost of one checkout on PostgreSQL at saturation: CPU µs per process, Kafka messages, SQL transactions and statements per saga
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	$(BIN)/bench -bin $(BIN) -mode full -rate 0 -concurrency $(BENCH_CONCURRENCY) -cost $(if $(BENCH_PROFILE),-profile $(BENCH_PROFILE)) $(BENCH_FLAGS)

# bench-compare: the checkout benchmark of an older build (BEFORE, a
# directory of its programs; deploy/bench/compare.sh says how to build one)
# against this one, alternating, on SQLite and PostgreSQL, at saturation and
# at a fixed rate, COMPARE_PAIRS pairs each (about 4 minutes a pair of loads).
BEFORE        ?=
COMPARE_PAIRS ?= 3

bench-compare: build ## the checkout benchmark of an older build (BEFORE=dir) against this one, alternating: sagas/s, latency, cost per saga
	@test -n "$(BEFORE)" || { echo 'usage: make bench-compare BEFORE=<directory of an older build> (see deploy/bench/compare.sh)'; exit 2; }
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	deploy/bench/compare.sh $(BEFORE) $(BIN) $(COMPARE_PAIRS)

# bench-scale-out: one replica each of order, inventory and payment against
# two (bench -replicas), alternating, at saturation on PostgreSQL with
# Consul, SCALE_PAIRS pairs (about a minute a pair).
SCALE_PAIRS ?= 3

bench-scale-out: build $(TOOLS)/consul ## the checkout at saturation with one replica of order, inventory and payment against two, side by side
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	deploy/bench/scale.sh $(BIN) $(TOOLS)/consul $(SCALE_PAIRS)

# Tracing's cost, side by side in one run: the HTTP chain per request, then
# GET /api/v1/products through the gateway (BENCH_TELEMETRY_READS) and a
# checkout at saturation (BENCH_TELEMETRY_CHECKOUTS), each with tracing off,
# exported at 100 % and at 10 %, twice in turn (the machine's noise shows in
# the spread). BENCH_TELEMETRY_LOADS picks the loads.
BENCH_TELEMETRY_READS     = -mode full -reads -concurrency 32 $(BENCH_FLAGS)
BENCH_TELEMETRY_CHECKOUTS = -mode full -rate 0 -concurrency $(BENCH_CONCURRENCY) -cost -top 0 $(BENCH_FLAGS)
BENCH_TELEMETRY_LOADS    ?= READS CHECKOUTS

bench-telemetry: build $(TOOLS)/jaeger ## tracing's cost: CPU per request of the HTTP chain, per product read and per checkout with tracing off, at 100 % and at 10 %
	$(GO) test ./pkg/process -run '^$$' -bench BenchmarkHop -benchtime 200000x -count 3
	$(GO) build -o $(BIN)/ ./deploy/local/cmd/bench
	for load in $(BENCH_TELEMETRY_LOADS); do for round in 1 2; do \
		case $$load in READS) flags="$(BENCH_TELEMETRY_READS)";; *) flags="$(BENCH_TELEMETRY_CHECKOUTS)";; esac; \
		echo "== $$load, tracing off"; OTEL_TRACES_SAMPLER=always_off $(BIN)/bench -bin $(BIN) $$flags || exit 1; \
		echo "== $$load, tracing exported, 100 %"; $(BIN)/bench -bin $(BIN) $$flags -jaeger $(TOOLS)/jaeger || exit 1; \
		echo "== $$load, tracing exported, 10 %"; OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1 \
			$(BIN)/bench -bin $(BIN) $$flags -jaeger $(TOOLS)/jaeger || exit 1; \
	done; done

test: lint cross prometheus $(TOOLS)/jaeger $(TOOLS)/consul ## lint, the arm64 build, then every test: unit, integration (SQLite, PostgreSQL, broker, Consul), wiring, end-to-end, the compose stack's files; then make compose-test if a Docker engine answers (required under CI=true)
	$(GO) test -count=1 -timeout 20m $(PACKAGES)
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory compose-test; \
	elif [ "$$CI" = true ]; then echo "make test: no Docker engine answers, so make compose-test cannot run (CI=true)"; exit 1; \
	else echo "make test: no Docker engine answers; make compose-test not run"; fi

# The compose stack as CI starts it: docker-compose.yaml with the local
# stand-in images of deploy/compose/local.yaml (no registry here), booted,
# driven through the containerised gateway and cut apart, then I1–I5 checked
# in its databases (deploy/local/stack, TestComposeStack).
debootstrap: ## install debootstrap from apt if missing (make compose-images needs it; root)
	@command -v debootstrap >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap; }

compose-images: debootstrap $(TOOLS)/consul $(TOOLS)/jaeger ## build the local stand-in images of the compose stack (no registry needed)
	deploy/compose/build-images.sh

compose-test: compose-images ## start the compose stack with local images, checkouts, partition, kill, rolling restart, then I1–I5
	MICROSHOP_COMPOSE_TEST=1 $(GO) test -count=1 -timeout 20m -run '^TestComposeStack$$' -v ./deploy/local/stack

test-short: ## unit, integration and wiring tests; skips the end-to-end stack
	$(GO) test -short $(PACKAGES)

# fuzz runs every Fuzz function of every module, one after the other (go
# test fuzzes one target at a time), each for FUZZTIME; each target's output
# is kept in $(RUN_DIR)/fuzz/, and the last progress line of each (its
# execution count) is printed at the end. CPU-heavy: not part of make test.
FUZZTIME ?= 1000000x

fuzz: ## fuzz every decoder of untrusted input and the token parser, FUZZTIME (1000000x) executions each; FUZZ=regexp picks targets
	@mkdir -p $(RUN_DIR)/fuzz; rm -f $(RUN_DIR)/fuzz/summary; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' $(MODULES)); do \
		dir=./$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file | grep -E -- '$(FUZZ)'); do \
			log=$(RUN_DIR)/fuzz/$$(echo $${dir#./} | tr / _)_$$target.log; \
			echo "== $$dir $$target"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$dir > $$log 2>&1; rc=$$?; \
			echo "$$dir $$target: $$(grep -o 'execs: [0-9]*' $$log | tail -1), exit $$rc" | tee -a $(RUN_DIR)/fuzz/summary; \
			if [ $$rc -ne 0 ]; then cat $$log; exit 1; fi; \
		done; \
	done; \
	echo "== summary"; cat $(RUN_DIR)/fuzz/summary

lint: tools proto-check ebpf-check ## gofmt, go vet, staticcheck, go.mod tidiness, buf lint and current generated code
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PACKAGES)
	$(TOOLS)/staticcheck $(PACKAGES)
	@for m in $(MODULES) tools; do \
		(cd $$m && GOWORK=off $(GO) mod tidy -diff) || { echo "$$m/go.mod is not tidy: run go mod tidy there"; exit 1; }; \
	done

tools: $(TOOLS)/staticcheck $(TOOLS)/buf $(TOOLS)/protoc-gen-go ## build the pinned tools of tools/go.mod into .run/tools

# Consul and Jaeger take minutes to build cold: tools/build-pinned.sh keeps
# each binary in a cache outside the work tree, keyed by its module's pins,
# so a fresh clone or `make clean` copies it back instead of rebuilding.
slow-tools: $(TOOLS)/consul $(TOOLS)/jaeger ## build (once per pin) the Consul agent and Jaeger into .run/tools

$(TOOLS)/consul: tools/consul/go.mod tools/consul/go.sum tools/build-pinned.sh
	GONOSUMDB=github.com/hashicorp/consul,github.com/hashicorp/hcp-sdk-go tools/build-pinned.sh consul github.com/hashicorp/consul $@

$(TOOLS)/jaeger: tools/jaeger/go.mod tools/jaeger/go.sum tools/build-pinned.sh
	tools/build-pinned.sh jaeger github.com/jaegertracing/jaeger/cmd/jaeger $@

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

# Prometheus and promtool come from Debian's package (2.42); the rules'
# tests, the configs' checks and make run-full need them.
prometheus: ## install Debian's prometheus package (Prometheus, promtool) if missing
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
		{ apt-get update -qq && apt-get install -y --no-install-recommends prometheus; }

# make load runs one scenario of loadtest/scenarios.json with our open-loop
# runner against a running stack (make run or make run-full in another
# terminal); it fails when a threshold is breached. LOAD_FLAGS=-smoke runs
# the scenario's seconds-long smoke phases.
SCENARIO   ?= browse
LOAD_BASE  ?= http://127.0.0.1:8080
LOAD_FLAGS ?=

load: ## run load scenario SCENARIO (browse, checkout, spike, overload, soak) of loadtest/scenarios.json against the running stack at LOAD_BASE; fails on a breached threshold
	$(GO) build -o $(BIN)/ ./loadtest/cmd/load
	$(BIN)/load -scenario $(SCENARIO) -base $(LOAD_BASE) $(LOAD_FLAGS)

# The browser test (TestStorefrontInChromium, in make test) writes its
# screenshots to .run/screenshots; the README shows the copies in docs/.
screenshots: ## copy the browser test's latest screenshots from .run/screenshots to docs/screenshots
	@ls $(RUN_DIR)/screenshots/*.png >/dev/null 2>&1 || { echo "no screenshots: run make test (or go test -run TestStorefrontInChromium ./deploy/local/cmd/launcher) first"; exit 1; }
	cp $(RUN_DIR)/screenshots/*.png docs/screenshots/

dashboards: ## regenerate observability/grafana/dashboards/*.json from the Go code in observability/dashboards
	$(GO) test ./observability/dashboards -run TestJSONIsCurrent -update

EBPF := observability/ebpf

bench-ebpf: build ## the eBPF probe's cost: the gateway's throughput and CPU per request without and with it, ns per BPF event (root)
	$(GO) build -o $(BIN)/ ./$(EBPF)/cmd/probe-bench
	$(BIN)/probe-bench -target $(BIN)/gateway -probe $(BIN)/probe -path /healthz -rounds 5 -phase 5s

ebpf-tools: ## install clang, llvm, libbpf-dev and bpftool from apt when missing (needs root)
	@missing=""; \
	command -v clang >/dev/null || missing+=" clang"; \
	command -v llvm-strip >/dev/null || missing+=" llvm"; \
	command -v bpftool >/dev/null || missing+=" bpftool"; \
	[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=" libbpf-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# vmlinux.h is committed: the generated objects then depend only on committed
# files, so ebpf-check gives the same answer on every machine, and CO-RE
# relocates the kernel types at load time, so any kernel with BTF runs them.
# Refresh it (make ebpf-vmlinux) only when a program needs newer kernel types.
$(EBPF)/bpf/vmlinux.h:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

ebpf-vmlinux: ebpf-tools ## replace observability/ebpf/bpf/vmlinux.h by this kernel's types (bpftool btf dump)
	rm -f $(EBPF)/bpf/vmlinux.h
	$(MAKE) $(EBPF)/bpf/vmlinux.h

ebpf-generate: ebpf-tools $(EBPF)/bpf/vmlinux.h ## compile the eBPF probe's programs and regenerate their Go bindings (commit them)
	$(EBPF)/generate.sh

ebpf-check: ebpf-tools ## fail if the eBPF probe's committed objects and Go bindings are not what ebpf-generate makes
	$(EBPF)/check-generated.sh

clean: ## remove .run/ (databases, broker data, binaries)
	rm -rf $(RUN_DIR)
