# CI's stand-in for the official prom/prometheus image (make
# compose-images): Debian's Prometheus (2.42, as pinned in
# docker-compose.yaml) on the debootstrapped base, run as the image runs it.
ARG BASE
FROM ${BASE}
RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
