package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/lifecycle"
)

var (
	errBoom   = errors.New("boom")
	errCommit = errors.New("commit failed")
	errListen = errors.New("address in use")
)

// behaviour is what a test task does.
type behaviour int

const (
	waits       behaviour = iota // until stopped, then returns nil
	fails                        // returns errBoom at once
	ends                         // returns nil at once
	failsOnStop                  // until stopped, then returns errCommit
)

// serving is what the test's serve does once every task has started.
type serving int

const (
	untilSignal serving = iota // cancels the caller's context, as SIGTERM does, and drains
	untilTold                  // returns when its context ends, the caller's staying alive
	failsAtOnce                // returns errListen
)

// key is the context key of the value every task and serve must see.
type key struct{}

// probe runs the tasks and serve of one test and records, in order, what
// they did, and every broken rule.
type probe struct {
	started sync.WaitGroup

	mu     sync.Mutex
	events []string
	ctxs   map[string]context.Context
	order  []string
}

func (p *probe) record(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf(format, args...))
}

func (p *probe) recorded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.events...)
}

// task returns a task named name behaving as b.
func (p *probe) task(name string, b behaviour) lifecycle.Task {
	p.started.Add(1)
	p.order = append(p.order, name)
	return lifecycle.Task{Name: name, Run: func(ctx context.Context) error {
		p.mu.Lock()
		p.ctxs[name] = ctx
		p.mu.Unlock()
		if ctx.Value(key{}) != "value" {
			p.record("%s lacks the caller's context values", name)
		}
		p.started.Done()
		switch b {
		case fails:
			p.record("%s returned", name)
			return errBoom
		case ends:
			p.record("%s returned", name)
			return nil
		}
		<-ctx.Done()
		p.checkStillRunning(name)
		p.record("%s returned", name)
		if b == failsOnStop {
			return errCommit
		}
		return nil
	}}
}

// checkStillRunning records an event if a task started before name was
// stopped before name returned: stops must happen one after the other.
func (p *probe) checkStillRunning(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, before := range p.order {
		if before == name {
			return
		}
		if c := p.ctxs[before]; c != nil && c.Err() != nil { // nil: not started yet
			p.events = append(p.events, fmt.Sprintf("%s stopped before %s returned", before, name))
		}
	}
}

// serve returns the serve function of Run, which cancels the caller's
// context with cancel when s is untilSignal.
func (p *probe) serve(s serving, cancel context.CancelFunc) func(context.Context) error {
	return func(ctx context.Context) error {
		if ctx.Value(key{}) != "value" {
			p.record("serve lacks the caller's context values")
		}
		if s == failsAtOnce {
			p.record("serve returned")
			return errListen
		}
		p.started.Wait()
		if s == untilSignal {
			cancel()
		}
		<-ctx.Done()
		p.mu.Lock()
		for name, taskCtx := range p.ctxs {
			if taskCtx.Err() != nil && s == untilSignal {
				p.events = append(p.events, fmt.Sprintf("%s stopped with the caller's context", name))
			}
		}
		p.mu.Unlock()
		p.record("serve returned")
		return nil
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		tasks      []behaviour
		serve      serving
		wantEvents []string
		wantErr    string // "" for nil
		wantIs     error
		wantLogged bool // "background task failed"
	}{
		{
			name:       "a signal drains serving, then stops the tasks last first",
			tasks:      []behaviour{waits, waits, waits},
			serve:      untilSignal,
			wantEvents: []string{"serve returned", "t2 returned", "t1 returned", "t0 returned"},
		},
		{
			name:       "no tasks",
			serve:      untilSignal,
			wantEvents: []string{"serve returned"},
		},
		{
			name:       "a failing task ends serving and its error is returned",
			tasks:      []behaviour{waits, fails, waits},
			serve:      untilTold,
			wantEvents: []string{"t1 returned", "serve returned", "t2 returned", "t0 returned"},
			wantErr:    "t1: boom",
			wantIs:     errBoom,
			wantLogged: true,
		},
		{
			name:       "a task ending on its own ends serving",
			tasks:      []behaviour{ends, waits},
			serve:      untilTold,
			wantEvents: []string{"t0 returned", "serve returned", "t1 returned"},
			wantErr:    "t0: returned before it was stopped",
			wantIs:     lifecycle.ErrTaskEnded,
			wantLogged: true,
		},
		{
			name:       "serve failing stops the tasks",
			tasks:      []behaviour{waits, waits},
			serve:      failsAtOnce,
			wantEvents: []string{"serve returned", "t1 returned", "t0 returned"},
			wantErr:    "address in use",
			wantIs:     errListen,
		},
		{
			name:       "errors of stopping tasks are joined in stop order",
			tasks:      []behaviour{failsOnStop, waits, failsOnStop},
			serve:      failsAtOnce,
			wantEvents: []string{"serve returned", "t2 returned", "t1 returned", "t0 returned"},
			wantErr:    "address in use\nt2: commit failed\nt0: commit failed",
			wantIs:     errCommit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "value"))
			defer cancel()
			p := &probe{ctxs: make(map[string]context.Context)}
			var tasks []lifecycle.Task
			for i, b := range tt.tasks {
				tasks = append(tasks, p.task(fmt.Sprintf("t%d", i), b))
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))

			err := lifecycle.Run(ctx, log, p.serve(tt.serve, cancel), tasks...)

			if diff := cmp.Diff(tt.wantEvents, p.recorded()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if got := errorText(err); got != tt.wantErr {
				t.Errorf("Run = %q, want %q", got, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.wantIs)
			}
			if got := strings.Contains(logs.String(), "background task failed"); got != tt.wantLogged {
				t.Errorf("logged a failure = %v, want %v; logs:\n%s", got, tt.wantLogged, logs.String())
			}
		})
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNoError(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var got context.Context
	run := lifecycle.NoError(func(ctx context.Context) { got = ctx })
	if err := run(ctx); err != nil {
		t.Errorf("NoError(f)(ctx) = %v, want nil", err)
	}
	if got != ctx {
		t.Errorf("f called with %v, want the context passed", got)
	}
}

func TestMainExitStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"run succeeded", nil, 0},
		{"run failed", errors.New("boom"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotCtx context.Context
			got := lifecycle.Main("test", func(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
				gotCtx = ctx
				return tt.err
			})
			if got != tt.want {
				t.Errorf("Main = %d, want %d", got, tt.want)
			}
			if gotCtx.Err() == nil {
				t.Error("run's context is still live after Main returned: its signal handler was not stopped")
			}
		})
	}
}
