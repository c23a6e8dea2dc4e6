package supervise_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
)

// TestKillAndRestart: Kill ends a running process as a crash would, and the
// same Process starts again; Stop of a process that exits 0 is no error.
func TestKillAndRestart(t *testing.T) {
	var buf logtest.Buffer
	var lines []string // appended by the hook, one call at a time; read after the processes exited
	out := supervise.NewOutput(&buf, func(name, text string) { lines = append(lines, name+":"+text) })
	p := &supervise.Process{Name: "sleeper", Path: "/bin/sh", Args: []string{"-c", "echo up; exec sleep 60"}}
	for round := range 2 {
		if err := p.Start(out); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		// Kill once it has written its line, so that both rounds show it.
		wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
		poll.Until(wait, t, fmt.Sprintf("round %d's output line", round), func() bool {
			return strings.Count(buf.String(), "sleeper   | up") > round
		})
		stop()
		if !p.Kill() {
			t.Fatalf("round %d: Kill of a running process = false", round)
		}
		select {
		case <-p.Exited():
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: not exited after Kill", round)
		}
		if p.Err() == nil {
			t.Errorf("round %d: Err after SIGKILL = nil, want the signal", round)
		}
		if p.Kill() {
			t.Errorf("round %d: Kill of an exited process = true", round)
		}
	}
	if n := strings.Count(buf.String(), "sleeper   | up"); n != 2 {
		t.Errorf("output has %d prefixed \"up\" lines, want 2:\n%s", n, buf.String())
	}
	if len(lines) == 0 {
		t.Error("the line hook saw nothing")
	}

	ok := &supervise.Process{Name: "true", Path: "/bin/true"}
	if err := ok.Start(out); err != nil {
		t.Fatal(err)
	}
	<-ok.Exited()
	if err := ok.Stop(out, time.Second); err != nil {
		t.Errorf("Stop of a process that exited 0 = %v, want nil", err)
	}
}

// TestRunRestarts: Run starts a process marked Restart again when it dies
// (here killed as kill -9 would), and keeps the others running; a process
// not marked Restart that exits ends the run with an error.
func TestRunRestarts(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	var buf logtest.Buffer
	out := supervise.NewOutput(&buf, nil)
	restarted := &supervise.Process{Name: "service", Path: "/bin/sh", Args: []string{"-c", "echo up; exec sleep 60"},
		URL: ready.URL, Restart: true}
	infra := &supervise.Process{Name: "infra", Path: "/bin/sh", Args: []string{"-c", "exec sleep 60"}, URL: ready.URL}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- supervise.Run(ctx, out, []*supervise.Process{infra, restarted}, 10*time.Second, 5*time.Second)
	}()

	wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	poll.Until(wait, t, "all processes ready and the service's line", func() bool {
		return strings.Contains(buf.String(), "all processes ready") && strings.Contains(buf.String(), "service   | up")
	})
	restarted.Kill()
	poll.Until(wait, t, "the killed service ready again", func() bool {
		return strings.Contains(buf.String(), "service ready again") && strings.Count(buf.String(), "service   | up") == 2
	})
	cancel()
	<-done // sleep dies of SIGTERM, which Run reports: its error says nothing here
	if !strings.Contains(buf.String(), "service exited unexpectedly (signal: killed); restarting it") {
		t.Errorf("no restart line in the output:\n%s", buf.String())
	}

	var buf2 logtest.Buffer
	go func() {
		done <- supervise.Run(t.Context(), supervise.NewOutput(&buf2, nil), []*supervise.Process{infra}, 10*time.Second, 5*time.Second)
	}()
	poll.Until(wait, t, "infra ready", func() bool { return strings.Contains(buf2.String(), "all processes ready") })
	infra.Kill()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "infra exited unexpectedly") {
			t.Errorf("Run after its process without Restart died = %v, want \"infra exited unexpectedly\"", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running after its process without Restart died")
	}
}
