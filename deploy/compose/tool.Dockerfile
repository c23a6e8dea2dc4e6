# CI's stand-in for the official Consul and Jaeger images (make
# compose-images): the binary tools/build-pinned.sh built from the pinned
# module, on the debootstrapped base (it links glibc; the base's wget runs
# docker-compose.yaml's healthchecks). The context is the binary's directory.
# The binary keeps its name, as in the official images, so that its process
# is named after it; the shell only execs it (an entrypoint cannot take a
# build argument), passing the command's arguments on.
ARG BASE
FROM ${BASE}
ARG BINARY
ENV MICROSHOP_TOOL=${BINARY}
COPY ${BINARY} /usr/local/bin/
ENTRYPOINT ["/bin/sh", "-c", "exec \"/usr/local/bin/$MICROSHOP_TOOL\" \"$@\"", "sh"]
