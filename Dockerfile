# The images of the microshop Go programs, one build target per program:
#
#   docker build --target order -t microshop/order .
#
# Targets: gateway, order, inventory, payment, psp, broker (deploy/local's
# Kafka-protocol broker) and probe (the eBPF probe). Each image holds its
# program at /usr/local/bin/<program> and runs it from there, so that the
# process is named after the program (its /proc/<pid>/exe and comm): the
# eBPF probe, which watches processes by name in the host's PID namespace,
# tells gateway from order in containers too. A Dockerfile cannot take an
# entrypoint from a build argument, hence a stage per program.
#
# One build stage compiles every program in one go build: the images share
# its layer and its compile work (the legacy builder runs the stages before
# the target too; they are a COPY each). Every program is static
# (CGO_ENABLED=0), built with -trimpath, its version stamped from VERSION,
# and keeps its symbol table and DWARF (no -s -w: the probe reads them to
# trace a Go HTTP server); it runs as a non-root user on a distroless static
# base; its healthcheck mode ("<program> healthcheck") needs neither curl nor
# a shell. The probe's container runs as root (docker-compose.yaml).
#
# The base images are arguments so that a machine without a registry can
# substitute local ones; docker-compose.yaml builds with the defaults, and CI
# (make compose-test) builds the same runtime from binaries built on the
# host, FROM scratch (deploy/compose/program.Dockerfile).
# Works with BuildKit (TARGETARCH: docker buildx build --platform linux/arm64)
# and with the legacy builder of docker-compose v1 (the host's architecture).
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local
# The modules' requirements first, so that a change of code reuses the
# downloaded modules' layer.
COPY go.work go.work.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY proto/go.mod proto/go.sum proto/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/order/go.mod services/order/go.sum services/order/
COPY services/inventory/go.mod services/inventory/go.sum services/inventory/
COPY services/payment/go.mod services/payment/go.sum services/payment/
COPY services/psp/go.mod services/psp/go.sum services/psp/
COPY deploy/local/go.mod deploy/local/go.sum deploy/local/
COPY observability/go.mod observability/go.sum observability/
COPY observability/ebpf/go.mod observability/ebpf/go.sum observability/ebpf/
COPY loadtest/go.mod loadtest/go.sum loadtest/
RUN go mod download
COPY . .
ARG VERSION=(devel)
ARG TARGETOS=linux
ARG TARGETARCH
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build \
      -ldflags "-X github.com/microshop/microshop/pkg/telemetry.stampedVersion=${VERSION}" \
      -o /out/ \
      ./services/gateway/cmd/gateway ./services/order/cmd/order ./services/inventory/cmd/inventory \
      ./services/payment/cmd/payment ./services/psp/cmd/psp ./deploy/local/cmd/broker \
      ./observability/ebpf/cmd/probe

# The user is distroless's nonroot, numeric so that it also holds on scratch.

FROM ${RUNTIME_IMAGE} AS gateway
COPY --from=build /out/gateway /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gateway"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/gateway", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS order
COPY --from=build /out/order /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/order"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/order", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS inventory
COPY --from=build /out/inventory /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/inventory"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/inventory", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS payment
COPY --from=build /out/payment /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/payment"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/payment", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS psp
COPY --from=build /out/psp /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/psp"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/psp", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS broker
COPY --from=build /out/broker /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/broker"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/broker", "healthcheck"]

FROM ${RUNTIME_IMAGE} AS probe
COPY --from=build /out/probe /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/probe"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/probe", "healthcheck"]
