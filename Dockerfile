# The image of one microshop Go program, picked by the PROGRAM argument (its
# package directory):
#
#   docker build --build-arg PROGRAM=services/order/cmd/order -t microshop/order .
#
# PROGRAM is one of services/{gateway,order,inventory,payment,psp}/cmd/<name>,
# deploy/local/cmd/broker or observability/ebpf/cmd/probe. Every program is
# static (CGO_ENABLED=0), built with -trimpath, its version stamped from
# VERSION, and runs as a non-root user on a distroless static base; its
# healthcheck mode ("<program> healthcheck") needs neither curl nor a shell.
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
ARG PROGRAM
ARG VERSION=(devel)
ARG TARGETOS=linux
ARG TARGETARCH
RUN test -n "${PROGRAM}" || { echo "set --build-arg PROGRAM=<package directory>, e.g. services/order/cmd/order" >&2; exit 1; }
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build \
      -ldflags "-s -w -X github.com/microshop/microshop/pkg/telemetry.stampedVersion=${VERSION}" \
      -o /out/program ./${PROGRAM}

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/program /program
# distroless's nonroot user; numeric, so that it also holds on scratch.
USER 65532:65532
ENTRYPOINT ["/program"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/program", "healthcheck"]
