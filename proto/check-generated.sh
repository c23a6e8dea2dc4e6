#!/usr/bin/env bash
# check-generated.sh [dir] fails when the committed Go code of the .proto files
# in dir (default: the directory of this script) is not what `make proto`
# would generate now: it regenerates into a temporary directory with the
# pinned buf and protoc-gen-go of .run/tools and compares file by file, so a
# hand edit, a .proto changed without regenerating, a deleted .proto's
# leftover .pb.go and a different generator version all fail.
# `make lint` runs it (target proto-check).
set -euo pipefail

dir=${1:-$(dirname "$0")}
cd "$dir"
buf=../.run/tools/buf # as buf.gen.yaml finds protoc-gen-go: relative to dir
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$buf" generate --output "$tmp"

stale=0
report() {
	echo "$dir/${1#./}: $2"
	stale=1
}
# Every file the generator writes must be committed, byte for byte.
while IFS= read -r f; do
	if [[ ! -e $f ]]; then
		report "$f" "missing"
	elif ! cmp -s "$tmp/$f" "$f"; then
		report "$f" "differs from the generated code:"
		diff -u --label "committed ${f#./}" --label "generated ${f#./}" "$f" "$tmp/$f" | head -n 20 || true
	fi
done < <(cd "$tmp" && find . -name '*.pb.go' | sort)
# Every committed .pb.go must still be generated (its .proto not deleted).
while IFS= read -r f; do
	[[ -e $tmp/$f ]] || report "$f" "generated from no .proto (delete it)"
done < <(find . -name '*.pb.go' | sort)

if ((stale)); then
	echo "the generated Go code of $dir is stale: run make proto, and commit the result"
	exit 1
fi
