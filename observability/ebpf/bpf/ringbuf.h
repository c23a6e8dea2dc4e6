// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// Waking the reader for every event costs more than the event: the kernel
// schedules an irq_work and the reader a context switch. The probe's reader
// drains its ring buffers on a short timer instead (probe.drainInterval),
// and is woken early only when a buffer fills past a quarter.

static __always_inline __u64 wakeup_flags(void *ringbuf)
{
	__u64 size = bpf_ringbuf_query(ringbuf, BPF_RB_RING_SIZE);
	return bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) > size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}
