package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Event kinds of tcp.c (enum event_kind).
const (
	tcpOpen       = 1
	tcpClose      = 2
	tcpFailed     = 3
	tcpRetransmit = 4
)

// Run reads the events of the BPF programs into the metrics until ctx
// ends. Call it once.
func (p *Probe) Run(ctx context.Context) error {
	httpEvents, err := ringbuf.NewReader(p.http.HttpEvents)
	if err != nil {
		return fmt.Errorf("read HTTP events: %w", err)
	}
	tcpEvents, err := ringbuf.NewReader(p.tcp.TcpEvents)
	if err != nil {
		httpEvents.Close()
		return fmt.Errorf("read TCP events: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		httpEvents.Close() // unblocks Read
		tcpEvents.Close()
	})
	defer stop()

	var (
		wg   sync.WaitGroup
		errs = make([]error, 2)
	)
	wg.Go(func() {
		var e httpHttpEvent
		errs[0] = readEvents(httpEvents, &e, func() { p.metrics.http(p.name(e.Tgid), &e) })
	})
	wg.Go(func() {
		var e tcpTcpEvent
		errs[1] = readEvents(tcpEvents, &e, func() { p.metrics.tcp(p.name(e.Tgid), &e) })
	})
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// drainInterval is how often the readers drain the ring buffers: the BPF
// programs do not wake them for each event (see bpf/ringbuf.h), so metrics
// lag the kernel by up to this much.
const drainInterval = 100 * time.Millisecond

// readEvents copies each record of rd into e and calls handle, until rd is
// closed.
func readEvents[E any](rd *ringbuf.Reader, e *E, handle func()) error {
	var rec ringbuf.Record
	size := int(unsafe.Sizeof(*e))
	for {
		rd.SetDeadline(time.Now().Add(drainInterval))
		err := rd.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue // drained
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		case err != nil:
			return err
		}
		if len(rec.RawSample) < size {
			return fmt.Errorf("event of %d bytes, want %d", len(rec.RawSample), size)
		}
		// The record is the C struct bpf2go mirrored in E, in this host's
		// byte order; encoding/binary would take microseconds per event
		// to walk its arrays by reflection.
		*e = *(*E)(unsafe.Pointer(&rec.RawSample[0]))
		handle()
	}
}

// httpLabels are the labels of one request's event.
func httpLabels(e *httpHttpEvent) (method, path, status string) {
	method = cString(e.Method[:e.MethodLen])
	path = cString(e.Path[:e.PathLen])
	if e.PathTruncated != 0 {
		path += "..."
	}
	switch {
	case e.ResponseKnown == 0:
		status = "unknown"
	case e.Status == 0: // the handler wrote nothing: net/http sends 200 after it returns
		status = "200"
	default:
		status = fmt.Sprint(e.Status)
	}
	return method, path, status
}

func cString(b []int8) string {
	s := make([]byte, len(b))
	for i, c := range b {
		s[i] = byte(c)
	}
	return string(s)
}

// peer is the remote end of a TCP event: address and port for a connection
// the target opened, the address alone for one it accepted (whose remote
// port is ephemeral).
func peer(e *tcpTcpEvent) string {
	var addr netip.Addr
	if e.Family == 2 { // AF_INET
		addr = netip.AddrFrom4([4]byte(e.Daddr[:4]))
	} else {
		addr = netip.AddrFrom16(e.Daddr).Unmap()
	}
	if e.Inbound != 0 {
		return addr.String()
	}
	return netip.AddrPortFrom(addr, e.Dport).String()
}

func direction(e *tcpTcpEvent) string {
	if e.Inbound != 0 {
		return "inbound"
	}
	return "outbound"
}

// sumPerCPU adds up the values of a per-CPU array's single element.
func sumPerCPU(m *ebpf.Map, log *slog.Logger) float64 {
	var values []uint64
	if err := m.Lookup(uint32(0), &values); err != nil {
		log.Warn("read lost events", slog.Any("err", err))
		return 0
	}
	var sum uint64
	for _, v := range values {
		sum += v
	}
	return float64(sum)
}

func seconds(ns uint64) float64 { return (time.Duration(ns)).Seconds() }
