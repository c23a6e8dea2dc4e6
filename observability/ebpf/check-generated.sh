#!/usr/bin/env bash
# check-generated.sh fails when the committed BPF objects and Go bindings
# of probe/ are not what generate.sh makes now from the committed sources
# (bpf/*.c and bpf/vmlinux.h): it regenerates into a temporary directory and
# compares byte for byte. clang's BPF output is reproducible (same bytes on
# every run and in every checkout directory), but only for one clang
# version: the project's is Debian 12's clang 14. Without clang the check
# is skipped, or fails under CI=true. `make lint` runs it (target ebpf-check).
set -euo pipefail

cd "$(dirname "$0")"
for tool in clang llvm-strip; do
	if ! command -v "$tool" >/dev/null; then
		if [[ ${CI:-} == true ]]; then
			echo "observability/ebpf: $tool is missing (make ebpf-generate installs it)"
			exit 1
		fi
		echo "observability/ebpf: $tool is missing, generated BPF code not checked (make ebpf-generate installs it)"
		exit 0
	fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./generate.sh "$tmp" >/dev/null

stale=0
for f in "$tmp"/*; do
	name=probe/$(basename "$f")
	if [[ ! -e $name ]]; then
		echo "observability/ebpf/$name: missing"
		stale=1
	elif ! cmp -s "$f" "$name"; then
		echo "observability/ebpf/$name: differs from the generated file"
		stale=1
	fi
done
for f in probe/*_bpfel.*; do
	if [[ ! -e $tmp/$(basename "$f") ]]; then
		echo "observability/ebpf/$f: generated from no BPF program (delete it)"
		stale=1
	fi
done
if ((stale)); then
	echo "the generated BPF code of observability/ebpf is stale: run make ebpf-generate and commit the result ($(clang --version | head -n 1); committed with Debian clang version 14.0.6)"
	exit 1
fi
