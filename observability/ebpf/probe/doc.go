// Package probe watches Go HTTP servers and TCP connections of chosen
// processes from the kernel, with eBPF, and counts what it sees as
// Prometheus metrics — without a line of code in the watched programs.
//
//   - HTTP RED: uprobes on net/http.serverHandler.ServeHTTP of each target
//     executable, at its entry and at each of its RET instructions (not a
//     uretprobe: those crash Go programs). The entry records method, path
//     and start time under the goroutine (the g pointer, register r14 of
//     Go's amd64 ABI); the return reads the status from the response writer
//     and emits one event. Field offsets come from the target's DWARF when
//     it is added (package gobin). Metric ebpf_http_server_request_duration_seconds.
//   - TCP per peer: BTF tracepoints sock:inet_sock_set_state (opens, closes
//     and their durations, failed connection attempts) and
//     tcp:tcp_retransmit_skb (retransmissions). Metrics ebpf_tcp_*.
//
// The BPF programs are in ../bpf; bpf2go compiles them into the committed
// http_x86_bpfel.* and tcp_x86_bpfel.* (make ebpf-generate). Loading needs
// root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN), kernel BTF and a kernel
// not locked down for confidentiality; [Check] says which is missing.
//
// A [Probe] is safe for concurrent use. Programs are linux/amd64 only.
package probe
