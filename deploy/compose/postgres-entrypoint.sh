#!/bin/sh
# The entrypoint of CI's PostgreSQL stand-in (postgres.Dockerfile): on an
# empty data directory, initdb with POSTGRES_PASSWORD for the user postgres,
# password logins from anywhere, and the init scripts run once; then the
# server on every interface, with the arguments given (e.g. -c fsync=off).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pw=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" > "$pw"
	initdb -D "$PGDATA" -U postgres --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pw"
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	for f in /docker-entrypoint-initdb.d/*.sql; do
		[ -e "$f" ] && psql -v ON_ERROR_STOP=1 -q -U postgres -f "$f"
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
