package probe

// The BPF programs of ../bpf are compiled by `make ebpf-generate` (clang,
// llvm-strip, libbpf's headers); their objects and Go bindings are committed.
//go:generate ../generate.sh
