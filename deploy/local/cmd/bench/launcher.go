package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// launcher is the launcher process running the stack. Its output (every
// line of every process) goes to a file, not to bench's stdout: the services
// log each request.
type launcher struct {
	cmd   *exec.Cmd
	ready chan struct{} // closed at "all processes ready"
	done  chan struct{} // closed when the process has exited and err is set
	err   error         // the exit error of cmd.Wait; read after done
}

// startLauncher starts the launcher at path with args, its output going to
// logPath; env is added to bench's environment, which the launcher and the
// programs it starts inherit.
func startLauncher(path, logPath string, env []string, args ...string) (*launcher, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	l := &launcher{cmd: exec.Command(path, args...), ready: make(chan struct{}), done: make(chan struct{})}
	if len(env) > 0 {
		l.cmd.Env = append(os.Environ(), env...)
	}
	l.cmd.Stderr = l.cmd.Stdout
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := l.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start launcher: %w", err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		s.Buffer(make([]byte, 64*1024), 1024*1024)
		isReady := false
		for s.Scan() {
			line := s.Text()
			fmt.Fprintln(logFile, line)
			if !isReady && strings.Contains(line, "all processes ready") {
				isReady = true
				close(l.ready)
			}
		}
		l.err = l.cmd.Wait()
		logFile.Close()
		close(l.done)
	}()
	return l, nil
}

func (l *launcher) pid() int { return l.cmd.Process.Pid }

// waitReady waits for the launcher's "all processes ready".
func (l *launcher) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.ready:
		return nil
	case <-l.done:
		return fmt.Errorf("launcher exited (%v) before all processes were ready", l.err)
	case <-t.C:
		return fmt.Errorf("launcher: processes not ready within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop sends SIGINT and waits up to timeout for the launcher to exit; it
// returns an error unless it exited 0. After the timeout it kills it.
func (l *launcher) stop(timeout time.Duration) error {
	select {
	case <-l.done:
		return fmt.Errorf("launcher exited before the end: %v", l.err)
	default:
	}
	if err := l.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.done:
		return l.err
	case <-t.C:
		_ = l.cmd.Process.Kill()
		<-l.done
		return errors.New("launcher did not exit within " + timeout.String() + " of SIGINT; killed")
	}
}
