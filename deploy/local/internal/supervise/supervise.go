// Package supervise runs the shop's programs as child processes for the
// native launcher and the chaos harness: it starts each in its own process
// group, waits until it is ready (its /readyz answers 200, or the Kafka
// broker answers), copies its output line by line under its name, and stops
// it gracefully (SIGTERM, then SIGKILL after a deadline) or kills it at once.
//
// Why not goreman or another Procfile runner: they start every process at
// once and stop them all at once. A saga needs the broker before the
// services and the services before the gateway, and a graceful stop needs
// the reverse order; the chaos harness also kills and restarts single
// processes.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/microshop/microshop/pkg/messaging"
)

// Process is one program run as a child process. Set its exported fields,
// then Start it; after it exited it may be started again. Start, Stop and
// Kill are called from one goroutine at a time; Exited, Err and WaitReady
// from any.
type Process struct {
	// Name prefixes the process's output lines.
	Name string
	// Path is the executable; Args its arguments.
	Path string
	Args []string
	// Env is added to the supervisor's own environment.
	Env []string
	// URL is where the process serves: http:// URLs are probed at
	// ReadyPath, kafka:// ones with a Kafka request.
	URL string
	// ReadyPath is the path of an http:// URL that answers 200 once the
	// process is ready. Empty means /readyz, the services' readiness check.
	ReadyPath string
	// Restart makes Run start the process again when it exits while the
	// others run (a crash, a kill -9), as a service manager would, instead
	// of stopping them all. A restart that does not become ready stops them.
	Restart bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited; then err is set
	err    error
}

// Run starts procs in order, each once the previous is ready; waits for ctx
// to end or for a process to exit — one marked Restart is started again,
// any other ends the run; then stops the started ones in reverse order. An
// interrupt during start-up is a normal stop, not an error.
func Run(ctx context.Context, out *Output, procs []*Process, readyTimeout, stopTimeout time.Duration) error {
	started, err := StartAll(ctx, out, procs, readyTimeout)
	if err == nil && ctx.Err() == nil {
		var b strings.Builder
		b.WriteString("all processes ready; press Ctrl-C to stop")
		for _, p := range started {
			fmt.Fprintf(&b, "\n  %-10s %s", p.Name, p.URL)
		}
		out.Printf("launcher", "%s", b.String())
		err = supervise(ctx, out, started, readyTimeout)
	}
	out.Printf("launcher", "stopping in reverse order")
	return errors.Join(err, StopAll(out, started, stopTimeout))
}

// supervise waits for ctx to end, restarting each process marked Restart
// that exits meanwhile. It returns an error when another process exits or
// a restarted one does not become ready.
func supervise(ctx context.Context, out *Output, procs []*Process, readyTimeout time.Duration) error {
	exits := make(chan *Process, len(procs)) // one pending exit per process at most
	watch := func(p *Process) {
		exited := p.Exited()
		go func() {
			<-exited
			exits <- p
		}()
	}
	for _, p := range procs {
		watch(p)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-exits:
			if !p.Restart {
				return fmt.Errorf("%s exited unexpectedly: %v", p.Name, p.Err())
			}
			out.Printf("launcher", "%s exited unexpectedly (%v); restarting it", p.Name, p.Err())
			if err := p.Start(out); err != nil {
				return err
			}
			watch(p)
			if err := p.WaitReady(ctx, readyTimeout); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			out.Printf("launcher", "%s ready again at %s", p.Name, p.URL)
		}
	}
}

// StartAll starts procs one after another, waiting for each to be ready. It
// returns the ones it started, also when it fails or ctx ends midway (then
// without an error).
func StartAll(ctx context.Context, out *Output, procs []*Process, readyTimeout time.Duration) ([]*Process, error) {
	var started []*Process
	for _, p := range procs {
		if err := p.Start(out); err != nil {
			return started, err
		}
		started = append(started, p)
		if err := p.WaitReady(ctx, readyTimeout); err != nil {
			if ctx.Err() != nil {
				return started, nil
			}
			return started, err
		}
		out.Printf("launcher", "%s ready at %s", p.Name, p.URL)
	}
	return started, nil
}

// StopAll stops procs in reverse order, each as Stop does, and returns
// their errors joined.
func StopAll(out *Output, procs []*Process, timeout time.Duration) error {
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].Stop(out, timeout))
	}
	return errors.Join(errs...)
}

// Start starts the process and the copying of its output to out.
func (p *Process) Start(out *Output) error {
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C reaches only the
		// supervisor, which then stops everything in order.
		Setpgid: true,
		// If the supervisor itself dies, the kernel asks the child to stop.
		Pdeathsig: syscall.SIGTERM,
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	out.Printf("launcher", "started %s pid=%d", p.Name, cmd.Process.Pid)
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.err = cmd, exited, nil
	p.mu.Unlock()
	var output sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		output.Go(func() { out.Copy(p.Name, r) })
	}
	go func() {
		output.Wait() // Wait closes the pipes: read them to the end first
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Exited returns a channel closed when the process last started has
// exited. Call it after Start.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Err returns how the process exited (nil for exit code 0); it is
// meaningful once Exited is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// WaitReady polls the process until it is ready, it exits, ctx ends or the
// timeout passes.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	exited := p.Exited()
	var last error
	for {
		if last = p.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.Name, p.Err())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.Name, timeout, last)
		case <-tick.C:
		}
	}
}

func (p *Process) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if broker, ok := strings.CutPrefix(p.URL, "kafka://"); ok {
		return messaging.Config{Brokers: []string{broker}, ClientID: "launcher"}.Ping(ctx)
	}
	path := p.ReadyPath
	if path == "" {
		path = "/readyz"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// Stop sends SIGTERM, waits up to timeout, then kills. It returns an error
// unless the process exited 0 (an already-exited process reports how it did).
func (p *Process) Stop(out *Output, timeout time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	select {
	case <-exited:
	default:
		out.Printf("launcher", "stopping %s", p.Name)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(timeout):
			out.Printf("launcher", "%s did not stop within %s; killing it", p.Name, timeout)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	out.Printf("launcher", "%s exited with code %d", p.Name, cmd.ProcessState.ExitCode())
	if err := p.Err(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process's group, as a crash would end it, and
// waits until it has exited. It reports whether it killed a running
// process (false: it had exited already).
func (p *Process) Kill() bool {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	return true
}
