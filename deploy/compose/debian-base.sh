#!/usr/bin/env bash
# debian-base.sh IMAGE — load into Docker, as IMAGE, a Debian bookworm root
# file system made with debootstrap from Debian's packages: the base of CI's
# stand-ins for the official PostgreSQL, Prometheus, Consul and Jaeger images
# (no image registry reaches the CI machine). wget is in it so that the
# healthchecks of docker-compose.yaml, written for the official images, work
# unchanged.
#
# The root file system is cached as a tarball outside the work tree, keyed
# by the suite, the packages and this script, like tools/build-pinned.sh
# keys its binaries: $MICROSHOP_IMAGES_CACHE, default ~/.cache/microshop/images.
# debootstrap itself is installed by `make debootstrap`.
set -euo pipefail
image=$1
suite=bookworm
mirror=http://deb.debian.org/debian
packages=postgresql-15,prometheus,wget,ca-certificates
key=$( (echo "$suite $mirror $packages"; cat "$0") | sha256sum | cut -c1-16)
cache="${MICROSHOP_IMAGES_CACHE:-$HOME/.cache/microshop/images}"
tarball="$cache/debian-$suite-$key.tar"
if docker image inspect "$image" >/dev/null 2>&1 &&
	[ "$(docker image inspect -f '{{index .Config.Labels "microshop.key"}}' "$image")" = "$key" ]; then
	exit 0
fi
if [ ! -f "$tarball" ]; then
	echo "debootstrapping Debian $suite with $packages once for key $key into $tarball; it takes minutes" >&2
	root=$(mktemp -d "$cache.root.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/root.XXXXXX"; })
	trap 'rm -rf "$root"' EXIT
	debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
	# Nothing of the package manager's caches in the image.
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	mkdir -p "$cache"
	tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
docker import --change "LABEL microshop.key=$key" --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	"$tarball" "$image" >/dev/null
