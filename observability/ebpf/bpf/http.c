// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// HTTP requests served by Go programs, seen from uprobes on
// net/http.serverHandler.ServeHTTP: its entry records the request (start
// time, where its method, path and status are) under the goroutine that
// runs it, and each of its RET instructions (Go programs crash under
// uretprobes, whose trampoline corrupts the moving goroutine stacks) reads
// them into one event. The path is the one the request arrived with, also
// when the handler set another (Gin's trailing-slash redirect does). Field offsets come per process from the target's DWARF
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

struct go_string {
	__u64 ptr;
	__u64 len;
};

// Keeps struct http_event in the object's BTF, where bpf2go finds it: no
// map or variable has it as its type.
const struct http_event *unused_http_event __attribute__((unused));

// inflight is a request being served, keyed by its goroutine: what the
// entry learnt, kept small (the map's update and the RET's lookup copy
// it). The bytes of method and path are read at the RET, straight into
// the event: Go strings are immutable, and the request keeps them.
struct inflight {
	__u64 start_ns;
	__u64 status; // address of the *net/http.response's status, 0 if the writer is another type
	struct go_string method;
	struct go_string path;
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
	// An LRU list per CPU instead of one behind a lock: cheaper updates.
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct goroutine);
	__type(value, struct inflight);
} requests SEC(".maps");

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

SEC("uprobe/serve_http")
int serve_http(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_offsets *off = bpf_map_lookup_elem(&go_targets, &tgid);
	if (!off)
		return 0;

	struct inflight r = {.start_ns = bpf_ktime_get_ns()};
	// ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request) in the
	// Go register ABI: sh in ax, rw's itab and data in bx and cx, req in di.
	void *req = (void *)ctx->di;
	if (ctx->cx && (!off->response_itab || ctx->bx == off->response_itab))
		r.status = ctx->cx + off->response_status;
	bpf_probe_read_user(&r.method, sizeof(r.method), req + off->request_method);
	__u64 url = 0;
	if (bpf_probe_read_user(&url, sizeof(url), req + off->request_url) == 0 && url)
		bpf_probe_read_user(&r.path, sizeof(r.path), (void *)url + off->url_path);

	struct goroutine g = {.g = ctx->r14, .tgid = tgid};
	bpf_map_update_elem(&requests, &g, &r, BPF_ANY);
	return 0;
}

SEC("uprobe/serve_http_return")
int serve_http_return(struct pt_regs *ctx)
{
	__u64 end_ns = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct goroutine g = {.g = ctx->r14, .tgid = tgid};
	struct inflight *r = bpf_map_lookup_elem(&requests, &g);
	if (!r)
		return 0;

	struct http_event *e = bpf_ringbuf_reserve(&http_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&http_lost, &zero);
		if (lost)
			*lost += 1;
		bpf_map_delete_elem(&requests, &g);
		return 0;
	}
	e->duration_ns = end_ns - r->start_ns;
	e->tgid = tgid;
	e->status = 0;
	e->response_known = 0;
	__s64 status = 0;
	if (r->status && bpf_probe_read_user(&status, sizeof(status), (void *)r->status) == 0) {
		e->status = status;
		e->response_known = 1;
	}
	__u64 n = r->method.len < METHOD_LEN ? r->method.len : METHOD_LEN;
	e->method_len = 0;
	if (bpf_probe_read_user(e->method, n & (2 * METHOD_LEN - 1), (void *)r->method.ptr) == 0)
		e->method_len = n;
	n = r->path.len < PATH_LEN - 1 ? r->path.len : PATH_LEN - 1;
	e->path_len = 0;
	e->path_truncated = 0;
	if (bpf_probe_read_user(e->path, n & (PATH_LEN - 1), (void *)r->path.ptr) == 0) {
		e->path_len = n;
		e->path_truncated = r->path.len > n;
	}
	bpf_ringbuf_submit(e, wakeup_flags(&http_events));
	bpf_map_delete_elem(&requests, &g);
	return 0;
}
