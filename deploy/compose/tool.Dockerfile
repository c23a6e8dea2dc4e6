# CI's stand-in for the official Consul and Jaeger images (make
# compose-images): the binary tools/build-pinned.sh built from the pinned
# module, on the debootstrapped base (it links glibc; the base's wget runs
# docker-compose.yaml's healthchecks). The context is the binary's directory.
ARG BASE
FROM ${BASE}
ARG BINARY
COPY ${BINARY} /usr/local/bin/program
ENTRYPOINT ["/usr/local/bin/program"]
