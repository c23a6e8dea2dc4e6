#!/usr/bin/env bash
# build-images.sh — build the local stand-in images of CI's compose stack
# (deploy/compose/local.yaml names them): our programs FROM scratch from
# static binaries built here as the Dockerfile builds them, PostgreSQL and
# Prometheus from Debian's packages and Consul and Jaeger from the binaries
# of tools/ (.run/tools, make slow-tools) on a debootstrapped Debian base.
# No registry is reached. Docker's legacy builder (no buildx here) caches
# the layers, so a second run takes seconds. Each program's image runs it
# as /usr/local/bin/<program>, so that the eBPF probe (image probe, profile
# ebpf) tells the services apart by their processes' names.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=.run/compose
export DOCKER_BUILDKIT=0
build() { # quiet, but for a failure
	local log
	log=$(docker build -q "$@" 2>&1) || { echo "$log" >&2; return 1; }
}

version=$(git describe --always --dirty 2>/dev/null || echo dev)
mkdir -p "$out/bin"
# As the Dockerfile builds them: not stripped, the probe reads the symbols
# and DWARF of the Go HTTP servers it traces.
CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/microshop/microshop/pkg/telemetry.stampedVersion=$version" -o "$out/bin/" \
	./services/gateway/cmd/gateway ./services/order/cmd/order ./services/inventory/cmd/inventory \
	./services/payment/cmd/payment ./services/psp/cmd/psp ./deploy/local/cmd/broker \
	./observability/ebpf/cmd/probe
for p in gateway order inventory payment psp broker probe; do
	build -f deploy/compose/program.Dockerfile --target "$p" -t "microshop-local/$p:dev" "$out/bin"
done

base=microshop-local/debian:bookworm
deploy/compose/debian-base.sh "$base"
build -f deploy/compose/postgres.Dockerfile --build-arg BASE="$base" -t microshop-local/postgres:dev deploy/compose
build -f deploy/compose/prometheus.Dockerfile --build-arg BASE="$base" -t microshop-local/prometheus:dev deploy/compose
for tool in consul jaeger; do
	# A context of the binary alone: .run/tools holds others.
	mkdir -p "$out/$tool" && ln -f ".run/tools/$tool" "$out/$tool/$tool"
	build -f deploy/compose/tool.Dockerfile --build-arg BASE="$base" --build-arg BINARY="$tool" -t "microshop-local/$tool:dev" "$out/$tool"
done
