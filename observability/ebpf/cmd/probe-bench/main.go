// Command probe-bench measures what the eBPF probe costs the program it
// watches: throughput and CPU per request of a target HTTP server with and
// without the probe attached, in alternating rounds of one run (so that a
// machine busy with something else slows both sides alike), then the time
// the kernel spends in each BPF program per event.
//
// It starts the target executable listening on a free port (the port is
// passed in the variable named by -addr-env), loads it with -concurrency
// keep-alive clients sending GET -path for -phase, and between rounds starts
// or stops the probe executable (cmd/probe) watching the target's PID. CPU
// is read from /proc/<pid>/stat: the target's includes the uprobes, which
// run in its threads; the probe's own process is reported beside it. The
// last phase runs the probe with PROBE_PROGRAM_STATS=true and divides each
// program's run time by its run count.
//
// -probe may name several probe executables, comma-separated (a build of
// another commit beside this one): each round then measures without and
// with each of them in turn, so that they are compared side by side.
//
// Usage (as root):
//
//	probe-bench [-target .run/bin/gateway] [-probe .run/bin/probe] [-path /healthz] [-rounds 5] [-phase 5s] [-concurrency 8]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	target, probe, path, addrEnv string
	rounds, concurrency          int
	phase                        time.Duration
}

// sample is what one phase measured.
type sample struct {
	requests  int
	elapsed   time.Duration
	targetCPU time.Duration
	probeCPU  time.Duration
}

func (s *sample) add(o sample) {
	s.requests += o.requests
	s.elapsed += o.elapsed
	s.targetCPU += o.targetCPU
	s.probeCPU += o.probeCPU
}

func (s sample) rate() float64 { return float64(s.requests) / s.elapsed.Seconds() }

func (s sample) perRequest(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(s.requests)
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("probe-bench", flag.ContinueOnError)
	fs.StringVar(&o.target, "target", ".run/bin/gateway", "the HTTP server to watch")
	fs.StringVar(&o.addrEnv, "addr-env", "GATEWAY_HTTP_ADDR", "the variable that tells the target its listen address")
	fs.StringVar(&o.probe, "probe", ".run/bin/probe", "the probe executable, or several comma-separated to compare them")
	fs.StringVar(&o.path, "path", "/healthz", "the path requested")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds of one phase without and one with the probe")
	fs.IntVar(&o.concurrency, "concurrency", 8, "keep-alive clients")
	fs.DurationVar(&o.phase, "phase", 5*time.Second, "length of one phase")
	if err := fs.Parse(args); err != nil {
		return err
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	target := exec.CommandContext(ctx, o.target)
	target.Env = append(os.Environ(), o.addrEnv+"="+addr)
	if err := target.Start(); err != nil {
		return fmt.Errorf("start target: %w", err)
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	url := "http://" + addr + o.path
	if err := waitUntil(ctx, func() bool { return get(url) == nil }); err != nil {
		return fmt.Errorf("target never answered %s: %w", url, err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency}}
	fmt.Fprintf(stdout, "target %s (pid %d), GET %s, %d clients, %d rounds of %v without and with each probe\n",
		o.target, target.Process.Pid, o.path, o.concurrency, o.rounds, o.phase)

	probes := strings.Split(o.probe, ",")
	fmt.Fprintf(stdout, "load average at the start: %s", loadAverage())
	without, with := sample{}, make([]sample, len(probes))
	for round := 1; round <= o.rounds; round++ {
		off, err := measure(ctx, client, url, o, target.Process.Pid, 0)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("round %d: without %.0f req/s %.1f µs CPU/req", round, off.rate(), off.perRequest(off.targetCPU))
		without.add(off)
		for i, exe := range probes {
			p, err := startProbe(ctx, exe, target.Process.Pid, false)
			if err != nil {
				return err
			}
			on, err := measure(ctx, client, url, o, target.Process.Pid, p.cmd.Process.Pid)
			p.stop()
			if err != nil {
				return err
			}
			line += fmt.Sprintf("; with %s %.0f req/s %.1f µs CPU/req (+ probe %.2f µs/req)",
				exe, on.rate(), on.perRequest(on.targetCPU), on.perRequest(on.probeCPU))
			with[i].add(on)
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "load average at the end: %s", loadAverage())

	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "| | requests/s | target CPU µs/request | probe process CPU µs/request | throughput | target CPU per request |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|")
	fmt.Fprintf(stdout, "| without a probe | %.0f | %.1f | — | | |\n", without.rate(), without.perRequest(without.targetCPU))
	for i, exe := range probes {
		w := with[i]
		fmt.Fprintf(stdout, "| with %s | %.0f | %.1f | %.2f | %+.1f %% | %+.1f %% |\n", exe, w.rate(), w.perRequest(w.targetCPU), w.perRequest(w.probeCPU),
			100*(w.rate()/without.rate()-1), 100*(w.perRequest(w.targetCPU)/without.perRequest(without.targetCPU)-1))
	}

	// Time in the BPF programs per event, from the kernel's statistics.
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "| probe | BPF program | runs | ns per run |")
	fmt.Fprintln(stdout, "|---|---|---|---|")
	for _, exe := range probes {
		if err := programStats(ctx, client, url, o, target.Process.Pid, exe, stdout); err != nil {
			return err
		}
	}
	return nil
}

// programStats runs one phase with the probe exe and the kernel's BPF
// statistics on, checks that the probe counted every request, and prints
// each program's runs and time per run.
func programStats(ctx context.Context, client *http.Client, url string, o options, pid int, exe string, stdout io.Writer) error {
	p, err := startProbe(ctx, exe, pid, true)
	if err != nil {
		return err
	}
	defer p.stop()
	s, err := measure(ctx, client, url, o, pid, p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	// The probe started after the target's readiness checks and the
	// phases before: every request it saw is one of this phase's.
	series := fmt.Sprintf(`ebpf_http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route=%q,process=%q}`,
		o.path, filepath.Base(o.target))
	var body string
	err = waitUntil(ctx, func() bool {
		body, err = getBody(p.metricsURL)
		return err == nil && metricValue(body, series) >= float64(s.requests)
	})
	if err != nil || metricValue(body, series) != float64(s.requests) {
		return fmt.Errorf("%s counted %.0f of the %d requests answered 200 (%v)", exe, metricValue(body, series), s.requests, err)
	}
	for _, prog := range []string{"serve_http", "serve_http_return", "inet_sock_set_state", "tcp_retransmit_skb"} {
		runs := metricValue(body, `ebpf_probe_program_runs_total{program="`+prog+`"}`)
		secs := metricValue(body, `ebpf_probe_program_run_seconds_total{program="`+prog+`"}`)
		perRun := 0.0
		if runs > 0 {
			perRun = secs * 1e9 / runs
		}
		fmt.Fprintf(stdout, "| %s | %s | %.0f | %.0f |\n", exe, prog, runs, perRun)
	}
	fmt.Fprintf(stdout, "| %s | (%d requests answered 200, as many counted) | | |\n", exe, s.requests)
	return nil
}

// loadAverage is /proc/loadavg, as uptime prints it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err.Error() + "\n"
	}
	return string(b)
}

// measure sends requests for one phase and reads the CPU the target (and
// the probe, if probePID is not 0) used meanwhile.
func measure(ctx context.Context, client *http.Client, url string, o options, targetPID, probePID int) (sample, error) {
	t0, err := cpuTime(targetPID)
	if err != nil {
		return sample{}, err
	}
	p0, _ := cpuTime(probePID)
	start := time.Now()
	deadline := start.Add(o.phase)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		n     atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	// Requests are not cut at the deadline: each one sent is answered and
	// counted, so that the probe's count can be compared with n.
	for range o.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", url, resp.Status)
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						errMu.Lock()
						first = errors.Join(first, err)
						errMu.Unlock()
						cancel()
					}
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return sample{}, first
	}
	t1, err := cpuTime(targetPID)
	if err != nil {
		return sample{}, err
	}
	p1, _ := cpuTime(probePID)
	return sample{requests: int(n.Load()), elapsed: elapsed, targetCPU: t1 - t0, probeCPU: p1 - p0}, nil
}

// cpuTime is the user and system time of process pid and its threads, from
// /proc/<pid>/stat; 0 for pid 0.
func cpuTime(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th, in clock ticks (USER_HZ, 100).
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

type probeProcess struct {
	cmd        *exec.Cmd
	metricsURL string
}

// startProbe runs the probe watching pid and waits until it traces the
// target's HTTP server.
func startProbe(ctx context.Context, exe string, pid int, stats bool) (*probeProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = []string{
		"PROBE_METRICS_ADDR=" + addr,
		"PROBE_PROCESSES=",
		"PROBE_PIDS=" + strconv.Itoa(pid),
		"PROBE_PROGRAM_STATS=" + strconv.FormatBool(stats),
		"PROBE_LOG_LEVEL=warn",
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start probe: %w", err)
	}
	p := &probeProcess{cmd: cmd, metricsURL: "http://" + addr + "/metrics"}
	err = waitUntil(ctx, func() bool {
		body, err := getBody(p.metricsURL)
		return err == nil && metricValue(body, `ebpf_probe_targets{http="true"}`) == 1
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("the probe never traced pid %d: %w", pid, err)
	}
	return p, nil
}

func (p *probeProcess) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

// metricValue finds the sample named by series (name and labels, exactly
// as the exposition format prints them) in body; 0 if absent.
func metricValue(body, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func get(url string) error {
	_, err := getBody(url)
	return err
}

func getBody(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// waitUntil polls cond for up to 30s.
func waitUntil(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out after 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
