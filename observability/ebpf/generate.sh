#!/usr/bin/env bash
# generate.sh [dir] compiles the BPF programs of bpf/ with clang and writes
# their objects and Go bindings (bpf2go, pinned in go.mod) into dir, by
# default probe/, where they are committed. `make ebpf-generate` runs it;
# check-generated.sh runs it into a temporary directory.
#
# clang runs from probe/ whatever dir is, and bpf2go maps the source
# directory out of the debug information, so the output depends only on the
# sources, bpf/vmlinux.h, libbpf's headers and the clang version.
set -euo pipefail

out=$(realpath "${1:-$(dirname "$0")/probe}")
cd "$(dirname "$0")/probe"
bpf2go() {
	go tool bpf2go -cc clang -strip llvm-strip -target amd64 -go-package probe -output-dir "$out" "$@"
}
bpf2go -type http_event -type go_offsets http ../bpf/http.c
bpf2go -type tcp_event tcp ../bpf/tcp.c
