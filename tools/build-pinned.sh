#!/usr/bin/env bash
# build-pinned.sh NAME PACKAGE OUT — build PACKAGE from the tools module
# tools/NAME (Consul, Jaeger: programs too slow to rebuild on every clone)
# and install it as OUT.
#
# The binary is kept in a cache outside the work tree, keyed by the module's
# pins (a hash of tools/NAME/go.mod and go.sum), so a fresh clone, a CI run
# or `make clean` gets it back in a second, and changing a pin builds anew.
# Cache directory: $MICROSHOP_TOOLS_CACHE, default ~/.cache/microshop/tools.
set -euo pipefail
name=$1 pkg=$2 out=$3
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/tools/$name"
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
cache="${MICROSHOP_TOOLS_CACHE:-$HOME/.cache/microshop/tools}/$name-$key"
if [ ! -x "$cache/$name" ]; then
	echo "building $name ($pkg) once for pins $key into $cache; the first build takes minutes" >&2
	mkdir -p "$cache.tmp"
	(cd "$mod" && GOWORK=off go build -trimpath -o "$cache.tmp/$name" "$pkg")
	rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/$name" "$out.tmp" && mv "$out.tmp" "$out"
