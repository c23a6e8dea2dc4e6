// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// HTTP requests served by Go programs, seen from uprobes on
// net/http.serverHandler.ServeHTTP: its entry records the request (method,
// path, start time) under the goroutine that runs it, and each of its RET
// instructions (Go programs crash under uretprobes, whose trampoline
// corrupts the moving goroutine stacks) reads the response status and emits
// one event. Field offsets come per process from the target's DWARF
// (map go_targets), so no Go version is baked in here.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "ringbuf.h"

#define METHOD_LEN 8
#define PATH_LEN 128 // a power of two: lengths are masked with PATH_LEN - 1

char __license[] SEC("license") = "Dual MIT/GPL";

// go_offsets is what the probe learnt from one target's DWARF and symbols.
struct go_offsets {
	__u64 request_method;  // net/http.Request.Method (string)
	__u64 request_url;     // net/http.Request.URL (*url.URL)
	__u64 url_path;        // net/url.URL.Path (string)
	__u64 response_status; // net/http.response.status (int)
	// Address of the itab (*net/http.response, net/http.ResponseWriter): a
	// response writer of another type (HTTP/2) has no status there. 0: unknown.
	__u64 response_itab;
};

// http_event is one served request (struct httpEvent in Go).
struct http_event {
	__u64 duration_ns;
	__u32 tgid;
	__u16 status;   // 0: the handler wrote nothing, net/http then sends 200
	__u8 method_len;
	__u8 path_len;  // bytes of path kept (at most PATH_LEN - 1)
	__u8 path_truncated;
	__u8 response_known; // 0: the writer was not a *net/http.response
	char method[METHOD_LEN];
	char path[PATH_LEN];
};

// inflight is a request being served, keyed by its goroutine.
struct inflight {
	__u64 start_ns;
	__u64 response; // *net/http.response, 0 if the writer is another type
	struct http_event event;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); // tgid
	__type(value, struct go_offsets);
} go_targets SEC(".maps");

// goroutine identifies a goroutine: its runtime.g pointer (register r14 of
// the Go ABI) in its process. Processes of one executable put their
// goroutines at the same addresses.
struct goroutine {
	__u64 g;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH); // a handler that panics never returns
	__uint(max_entries, 65536);
	__type(key, struct goroutine);
	__type(value, struct inflight);
} requests SEC(".maps");

// A per-CPU scratch value: struct inflight is too big for the BPF stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inflight);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} http_events SEC(".maps");

// http_lost counts events the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} http_lost SEC(".maps");

struct go_string {
	__u64 ptr;
	__u64 len;
};

SEC("uprobe/serve_http")
int serve_http(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_offsets *off = bpf_map_lookup_elem(&go_targets, &tgid);
	if (!off)
		return 0;

	__u32 zero = 0;
	struct inflight *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->start_ns = bpf_ktime_get_ns();
	r->event.tgid = tgid;

	// ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request) in the
	// Go register ABI: sh in ax, rw's itab and data in bx and cx, req in di.
	void *req = (void *)ctx->di;
	if (!off->response_itab || ctx->bx == off->response_itab)
		r->response = ctx->cx;

	struct go_string s;
	if (bpf_probe_read_user(&s, sizeof(s), req + off->request_method) == 0) {
		__u64 n = s.len < METHOD_LEN ? s.len : METHOD_LEN;
		if (bpf_probe_read_user(r->event.method, n & (2 * METHOD_LEN - 1), (void *)s.ptr) == 0)
			r->event.method_len = n;
	}
	__u64 url = 0;
	if (bpf_probe_read_user(&url, sizeof(url), req + off->request_url) == 0 && url &&
	    bpf_probe_read_user(&s, sizeof(s), (void *)url + off->url_path) == 0) {
		__u64 n = s.len < PATH_LEN - 1 ? s.len : PATH_LEN - 1;
		if (bpf_probe_read_user(r->event.path, n & (PATH_LEN - 1), (void *)s.ptr) == 0) {
			r->event.path_len = n;
			r->event.path_truncated = s.len > n;
		}
	}

	struct goroutine g = {.g = ctx->r14, .tgid = tgid};
	bpf_map_update_elem(&requests, &g, r, BPF_ANY);
	return 0;
}

SEC("uprobe/serve_http_return")
int serve_http_return(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct goroutine g = {.g = ctx->r14, .tgid = tgid};
	struct inflight *r = bpf_map_lookup_elem(&requests, &g);
	if (!r)
		return 0;
	struct go_offsets *off = bpf_map_lookup_elem(&go_targets, &tgid);

	struct http_event *e = bpf_ringbuf_reserve(&http_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&http_lost, &zero);
		if (lost)
			*lost += 1;
		bpf_map_delete_elem(&requests, &g);
		return 0;
	}
	__builtin_memcpy(e, &r->event, sizeof(*e));
	e->duration_ns = bpf_ktime_get_ns() - r->start_ns;
	__s64 status = 0;
	if (off && r->response &&
	    bpf_probe_read_user(&status, sizeof(status), (void *)r->response + off->response_status) == 0) {
		e->status = status;
		e->response_known = 1;
	}
	bpf_ringbuf_submit(e, wakeup_flags(&http_events));
	bpf_map_delete_elem(&requests, &g);
	return 0;
}
