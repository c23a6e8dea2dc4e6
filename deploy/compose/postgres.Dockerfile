# CI's stand-in for the official postgres image (make compose-images):
# Debian's PostgreSQL 15 on the debootstrapped base (debian-base.sh), with an
# entrypoint that does what the official one does for docker-compose.yaml —
# initialise the cluster with POSTGRES_PASSWORD, run
# /docker-entrypoint-initdb.d/*.sql once, then serve on every interface.
ARG BASE
FROM ${BASE}
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
