package main

import (
	"bufio"
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

// process is one program the launcher runs.
type process struct {
	name string
	path string
	args []string
	env  []string // added to the launcher's own environment
	// url is where the process serves: http:// URLs are probed at /readyz,
	// kafka:// ones with a Kafka request.
	url string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited; then err is set
	err    error
	output sync.WaitGroup // the goroutines copying its output
}

// supervise starts procs in order, each once the previous is ready; waits
// for ctx to end or for any process to exit; then stops the started ones in
// reverse order. An interrupt during start-up is a normal stop, not an error.
func supervise(ctx context.Context, out *prefixer, procs []process, readyTimeout, stopTimeout time.Duration) error {
	started, err := startAll(ctx, out, procs, readyTimeout)
	if err == nil && ctx.Err() == nil {
		var b strings.Builder
		b.WriteString("all processes ready; press Ctrl-C to stop")
		for _, p := range started {
			fmt.Fprintf(&b, "\n  %-10s %s", p.name, p.url)
		}
		out.Printf("launcher", "%s", b.String())

		select {
		case <-ctx.Done():
		case p := <-anyExited(started):
			err = fmt.Errorf("%s exited unexpectedly: %v", p.name, p.err)
		}
	}
	out.Printf("launcher", "stopping in reverse order")
	errs := []error{err}
	for i := len(started) - 1; i >= 0; i-- {
		errs = append(errs, started[i].stop(out, stopTimeout))
	}
	return errors.Join(errs...)
}

// startAll starts procs one after another, waiting for each to be ready. It
// returns the ones it started, also when it fails or ctx ends midway.
func startAll(ctx context.Context, out *prefixer, procs []process, readyTimeout time.Duration) ([]*process, error) {
	var started []*process
	for i := range procs {
		p := &procs[i]
		if err := p.start(out); err != nil {
			return started, err
		}
		started = append(started, p)
		if err := p.waitReady(ctx, readyTimeout); err != nil {
			if ctx.Err() != nil {
				return started, nil
			}
			return started, err
		}
		out.Printf("launcher", "%s ready at %s", p.name, p.url)
	}
	return started, nil
}

func (p *process) start(out *prefixer) error {
	p.cmd = exec.Command(p.path, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C reaches only the
		// launcher, which then stops everything in order.
		Setpgid: true,
		// If the launcher itself dies, the kernel asks the child to stop.
		Pdeathsig: syscall.SIGTERM,
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	out.Printf("launcher", "started %s pid=%d", p.name, p.cmd.Process.Pid)
	for _, r := range []io.Reader{stdout, stderr} {
		p.output.Go(func() { out.Copy(p.name, r) })
	}
	p.exited = make(chan struct{})
	go func() {
		p.output.Wait() // Wait closes the pipes: read them to the end first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// waitReady polls the process until it is ready, it exits, or the timeout.
func (p *process) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = p.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.name, timeout, last)
		case <-tick.C:
		}
	}
}

func (p *process) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if broker, ok := strings.CutPrefix(p.url, "kafka://"); ok {
		return messaging.Config{Brokers: []string{broker}, ClientID: "launcher"}.Ping(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", resp.Status)
	}
	return nil
}

// stop sends SIGTERM, waits up to timeout, then kills. It returns an error
// unless the process exited 0 (an already-exited process reports how it did).
func (p *process) stop(out *prefixer, timeout time.Duration) error {
	select {
	case <-p.exited:
	default:
		out.Printf("launcher", "stopping %s", p.name)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(timeout):
			out.Printf("launcher", "%s did not stop within %s; killing it", p.name, timeout)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	code := p.cmd.ProcessState.ExitCode()
	out.Printf("launcher", "%s exited with code %d", p.name, code)
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// anyExited returns a channel that yields the first of procs to exit.
func anyExited(procs []*process) <-chan *process {
	ch := make(chan *process, len(procs))
	for _, p := range procs {
		go func() {
			<-p.exited
			ch <- p
		}()
	}
	return ch
}

// prefixer writes whole lines from many processes to one writer, each
// prefixed with its process's name, so lines never interleave mid-way.
type prefixer struct {
	mu sync.Mutex
	w  io.Writer
}

func newPrefixer(w io.Writer) *prefixer { return &prefixer{w: w} }

func (p *prefixer) line(name, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%-9s | %s\n", name, text)
}

// Printf writes one formatted line under name; a multi-line message keeps the
// prefix on every line.
func (p *prefixer) Printf(name, format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		p.line(name, l)
	}
}

// Copy writes every line read from r under name until r ends.
func (p *prefixer) Copy(name string, r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		p.line(name, s.Text())
	}
	// Keep draining after an over-long line so the writer never blocks.
	_, _ = io.Copy(io.Discard, r)
}

// Writer returns an io.Writer whose lines are written under name.
func (p *prefixer) Writer(name string) io.Writer {
	r, w := io.Pipe()
	go p.Copy(name, r)
	return w
}
