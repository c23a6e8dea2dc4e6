package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/microshop/microshop/observability/ebpf/gobin"
)

// Settings configure a Probe. Log and Registerer are required.
type Settings struct {
	// Log receives targets added and dropped, and errors.
	Log *slog.Logger
	// Registerer receives the probe's metrics.
	Registerer prometheus.Registerer
	// Routes are net/http.ServeMux patterns ("GET /orders/{id}") the
	// paths of requests are matched against to label them by route; a path
	// no pattern matches is labelled "unmatched". Empty: the path itself is
	// the route (every distinct path is its own series).
	Routes []string
	// ProgramStats turns on the kernel's run time accounting of BPF
	// programs (all of them, while the probe runs; a few ns per run) and
	// exports it as ebpf_probe_program_run_seconds_total and _runs_total.
	ProgramStats bool
}

// Probe is the BPF programs loaded into the kernel and the processes they
// watch. Create it with Load, run it with Run, watch processes with Sync,
// release it with Close.
type Probe struct {
	log     *slog.Logger
	metrics *metrics

	http     httpObjects
	tcp      tcpObjects
	tcpLinks []link.Link
	stats    io.Closer // nil unless Settings.ProgramStats

	mu          sync.Mutex // guards targets, executables and servers
	targets     map[uint32]*target
	executables map[fileID]*executable
	// servers caches what gobin read from each executable file, kept after
	// its last process exits: a restarted service is not read again.
	servers map[fileID]gobin.HTTPServer

	// names holds the name of every PID ever watched (events outlive their
	// process); apart from mu, so that reading events never waits for
	// Sync reading a new executable.
	namesMu sync.RWMutex
	names   map[uint32]string
}

// target is a watched process.
type target struct {
	name string
	exe  *executable // nil: not a Go HTTP server
}

// fileID identifies an executable file: uprobes belong to the file, and
// processes running one file share them. Size and modification time are
// part of it because a deleted file's inode number is reused.
type fileID struct {
	dev, ino, size uint64
	mtime          syscall.Timespec
}

// executable is a Go HTTP server's file and the uprobes on it.
type executable struct {
	id     fileID
	server gobin.HTTPServer
	links  []link.Link
	users  int // targets running it
}

// Load checks that this process may load the BPF programs (see
// System.Check), loads them and attaches the TCP tracepoints. Nothing is
// watched until Sync adds processes.
func Load(s Settings) (*Probe, error) {
	if err := (System{}).Check(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 account BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w CAP_SYS_RESOURCE to raise RLIMIT_MEMLOCK (kernel before 5.11): %v", ErrMissingCapability, err)
	}
	p := &Probe{
		log:         s.Log,
		targets:     make(map[uint32]*target),
		names:       make(map[uint32]string),
		executables: make(map[fileID]*executable),
		servers:     make(map[fileID]gobin.HTTPServer),
	}
	if err := p.load(s); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Probe) load(s Settings) error {
	if err := loadHttpObjects(&p.http, nil); err != nil {
		return loadError("HTTP", err)
	}
	if err := loadTcpObjects(&p.tcp, nil); err != nil {
		return loadError("TCP", err)
	}
	for _, prog := range []*ebpf.Program{p.tcp.InetSockSetState, p.tcp.TcpRetransmitSkb} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return loadError("TCP tracepoint", err)
		}
		p.tcpLinks = append(p.tcpLinks, l)
	}
	if s.ProgramStats {
		closer, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
		if err != nil {
			return fmt.Errorf("enable BPF run time statistics: %w", err)
		}
		p.stats = closer
	}
	m, err := newMetrics(s.Routes, p)
	if err != nil {
		return err
	}
	p.metrics = m
	return s.Registerer.Register(m)
}

// loadError names the likely cause of a refused BPF load or attach.
func loadError(what string, err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("load %s programs: %w (kernel lockdown, or a seccomp or LSM policy, refuses BPF to this process)", what, err)
	}
	return fmt.Errorf("load %s programs: %w", what, err)
}

// Close detaches and unloads everything; the watched processes are left
// as they were.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, exe := range p.executables {
		errs = append(errs, exe.close())
	}
	clear(p.executables)
	clear(p.targets)
	for _, l := range p.tcpLinks {
		errs = append(errs, l.Close())
	}
	p.tcpLinks = nil
	if p.stats != nil {
		errs = append(errs, p.stats.Close())
		p.stats = nil
	}
	errs = append(errs, p.http.Close(), p.tcp.Close())
	return errors.Join(errs...)
}

// Sync makes the watched processes those of found (names by PID, as
// FindProcesses returns them): it adds the new ones and drops those that
// are gone. A process that cannot be added is logged and retried at the
// next Sync.
func (p *Probe) Sync(found map[uint32]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pid := range p.targets {
		if _, ok := found[pid]; !ok {
			p.remove(pid)
		}
	}
	for pid, name := range found {
		if t, ok := p.targets[pid]; ok {
			if t.name == name {
				continue
			}
			p.remove(pid) // the PID was reused by another program
		}
		if err := p.add(pid, name); err != nil {
			level := slog.LevelWarn
			if errors.Is(err, fs.ErrNotExist) { // exited since the scan
				level = slog.LevelDebug
			}
			p.log.Log(context.Background(), level, "cannot watch process", slog.Uint64("pid", uint64(pid)), slog.String("process", name), slog.Any("err", err))
			p.remove(pid)
		}
	}
}

// add watches pid: its TCP connections, and its HTTP server if it is a
// Go program that has one.
func (p *Probe) add(pid uint32, name string) error {
	t := &target{name: name}
	p.targets[pid] = t
	p.namesMu.Lock()
	p.names[pid] = name
	p.namesMu.Unlock()
	if err := p.tcp.Targets.Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("watch TCP: %w", err)
	}
	ports, err := listeningPorts(pid)
	if err != nil {
		return fmt.Errorf("listening ports: %w", err)
	}
	for _, port := range ports {
		if err := p.tcp.Listeners.Put(port, pid); err != nil {
			return fmt.Errorf("watch TCP port %d: %w", port, err)
		}
	}

	exe, err := p.executable(fmt.Sprintf("/proc/%d/exe", pid))
	if errors.Is(err, errUntraceable) {
		p.log.Info("watching process, TCP only", slog.Uint64("pid", uint64(pid)), slog.String("process", name), slog.String("reason", err.Error()))
		return nil
	}
	if err != nil {
		return err
	}
	t.exe = exe
	exe.users++
	offsets := httpGoOffsets{
		RequestMethod:  exe.server.RequestMethod,
		RequestUrl:     exe.server.RequestURL,
		UrlPath:        exe.server.URLPath,
		ResponseStatus: exe.server.ResponseStatus,
		ResponseItab:   exe.server.ResponseItab,
	}
	if err := p.http.GoTargets.Put(pid, offsets); err != nil {
		return fmt.Errorf("watch HTTP: %w", err)
	}
	p.log.Info("watching process", slog.Uint64("pid", uint64(pid)), slog.String("process", name), slog.String("go", exe.server.GoVersion))
	return nil
}

// errUntraceable: the executable's HTTP server cannot be traced (not Go, no
// net/http server, no DWARF, another architecture); its process is
// watched for TCP only.
var errUntraceable = errors.New("HTTP server not traceable")

// executable returns the uprobed executable at path, attaching the uprobes
// the first time its file is seen.
func (p *Probe) executable(path string) (*executable, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	id := fileID{dev: st.Dev, ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim}
	if exe, ok := p.executables[id]; ok {
		return exe, nil
	}
	server, ok := p.servers[id]
	if !ok {
		var err error
		if server, err = gobin.ReadHTTPServer(path); err != nil {
			return nil, fmt.Errorf("%w: %w", errUntraceable, err)
		}
		p.servers[id] = server
	}
	exe := &executable{id: id, server: server}
	if err := exe.attach(path, p.http.ServeHttp, p.http.ServeHttpReturn); err != nil {
		exe.close()
		return nil, err
	}
	p.executables[id] = exe
	return exe, nil
}

// attach puts the return probes on each RET of ServeHTTP, then the entry
// probe. They fire for every process running the file; the programs ignore
// those not in go_targets.
func (exe *executable) attach(path string, entry, ret *ebpf.Program) error {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return err
	}
	for _, off := range exe.server.Returns {
		l, err := ex.Uprobe(gobin.ServeHTTP, ret, &link.UprobeOptions{Offset: off})
		if err != nil {
			return loadError("HTTP return uprobe", err)
		}
		exe.links = append(exe.links, l)
	}
	l, err := ex.Uprobe(gobin.ServeHTTP, entry, &link.UprobeOptions{Offset: exe.server.Entry})
	if err != nil {
		return loadError("HTTP entry uprobe", err)
	}
	exe.links = append(exe.links, l)
	return nil
}

func (exe *executable) close() error {
	var errs []error
	for _, l := range exe.links {
		errs = append(errs, l.Close())
	}
	exe.links = nil
	return errors.Join(errs...)
}

// remove stops watching pid; the uprobes of its executable go with the
// last process running it.
func (p *Probe) remove(pid uint32) {
	t, ok := p.targets[pid]
	if !ok {
		return
	}
	delete(p.targets, pid)
	p.tcp.Targets.Delete(pid) // errors: not there (add failed early)
	p.http.GoTargets.Delete(pid)
	var (
		port  uint16
		owner uint32
		mine  []uint16
	)
	for it := p.tcp.Listeners.Iterate(); it.Next(&port, &owner); {
		if owner == pid {
			mine = append(mine, port)
		}
	}
	for _, port := range mine {
		p.tcp.Listeners.Delete(port)
	}
	if exe := t.exe; exe != nil {
		if exe.users--; exe.users == 0 {
			if err := exe.close(); err != nil {
				p.log.Warn("detach uprobes", slog.Any("err", err))
			}
			delete(p.executables, exe.id)
		}
	}
	p.log.Info("dropped process", slog.Uint64("pid", uint64(pid)), slog.String("process", t.name))
}

// name is the name of the process pid, watched now or before.
func (p *Probe) name(pid uint32) string {
	p.namesMu.RLock()
	defer p.namesMu.RUnlock()
	if name, ok := p.names[pid]; ok {
		return name
	}
	return "unknown"
}

// counts reports how many processes are watched, and how many of those
// have their HTTP server traced.
func (p *Probe) counts() (targets, http int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		if t.exe != nil {
			http++
		}
	}
	return len(p.targets), http
}
