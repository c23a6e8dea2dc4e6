// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// TCP connections of the target processes, from BTF tracepoints (tp_btf:
// no tracefs needed, the kernel's own types): sock:inet_sock_set_state for
// opens, closes and failed connection attempts, tcp:tcp_retransmit_skb for
// retransmissions. State changes often run in softirq context, where the
// current task is whoever was interrupted, so a connection is attributed
// once, where the owner is certain, and remembered by socket: an outbound
// one at connect() (CLOSE -> SYN_SENT runs in the caller), an inbound one by
// the port it was accepted on (listeners, filled at listen() and by the
// probe for sockets that were listening before it started).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "ringbuf.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

enum event_kind {
	EVENT_OPEN = 1,       // established
	EVENT_CLOSE = 2,      // an established connection closed; duration set
	EVENT_FAILED = 3,     // SYN_SENT -> CLOSE: refused, reset or timed out
	EVENT_RETRANSMIT = 4, // one segment retransmitted
};

// tcp_event is one change of a target's connection (struct tcpEvent in Go).
struct tcp_event {
	__u64 duration_ns; // EVENT_CLOSE: from established to closed
	__u32 tgid;
	__u16 family;
	__u16 dport;       // host byte order
	__u8 kind;
	__u8 inbound;      // accepted, not connected
	__u8 pad[6];
	__u8 daddr[16];    // IPv4 in the first four bytes
};

// Keeps struct tcp_event in the object's BTF, where bpf2go finds it.
const struct tcp_event *unused_tcp_event __attribute__((unused));

// conn is what is known of a target's socket.
struct conn {
	__u64 established_ns; // 0 until established
	__u32 tgid;
	__u8 inbound;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); // tgid
	__type(value, __u8);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16); // local port, host byte order
	__type(value, __u32); // tgid
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // struct sock *
	__type(value, struct conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} tcp_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tcp_lost SEC(".maps");

static void emit(const struct sock *sk, const struct conn *c, __u8 kind, __u64 duration_ns)
{
	struct tcp_event *e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&tcp_lost, &zero);
		if (lost)
			*lost += 1;
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->duration_ns = duration_ns;
	e->tgid = c->tgid;
	e->kind = kind;
	e->inbound = c->inbound;
	e->family = sk->__sk_common.skc_family;
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == AF_INET)
		__builtin_memcpy(e->daddr, &sk->__sk_common.skc_daddr, 4);
	else
		__builtin_memcpy(e->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	bpf_ringbuf_submit(e, wakeup_flags(&tcp_events));
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u64 key = (__u64)sk;
	__u16 lport = sk->__sk_common.skc_num;

	if (newstate == TCP_LISTEN) { // listen(): the caller's context
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (bpf_map_lookup_elem(&targets, &tgid))
			bpf_map_update_elem(&listeners, &lport, &tgid, BPF_ANY);
		return 0;
	}
	if (oldstate == TCP_LISTEN) {
		// LISTEN -> SYN_RECV is a new child socket cloned from the listener.
		if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&listeners, &lport);
		return 0;
	}
	if (newstate == TCP_SYN_SENT) { // connect(): the caller's context
		struct conn c = {.tgid = bpf_get_current_pid_tgid() >> 32};
		if (bpf_map_lookup_elem(&targets, &c.tgid))
			bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
		return 0;
	}
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV) { // accepted
		__u32 *tgid = bpf_map_lookup_elem(&listeners, &lport);
		if (!tgid)
			return 0;
		struct conn c = {.tgid = *tgid, .inbound = 1, .established_ns = bpf_ktime_get_ns()};
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
		emit(sk, &c, EVENT_OPEN, 0);
		return 0;
	}

	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT) {
		c->established_ns = bpf_ktime_get_ns();
		emit(sk, c, EVENT_OPEN, 0);
	} else if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_SYN_SENT)
			emit(sk, c, EVENT_FAILED, 0);
		else if (c->established_ns)
			emit(sk, c, EVENT_CLOSE, bpf_ktime_get_ns() - c->established_ns);
		bpf_map_delete_elem(&conns, &key);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		emit(sk, c, EVENT_RETRANSMIT, 0);
	return 0;
}
