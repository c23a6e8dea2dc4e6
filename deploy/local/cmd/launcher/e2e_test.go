package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
)

// programs are the packages `make run` builds into .run/bin, but the
// services added with make new-service (addedServices).
var programs = []string{
	"github.com/microshop/microshop/services/gateway/cmd/gateway",
	"github.com/microshop/microshop/services/order/cmd/order",
	"github.com/microshop/microshop/services/inventory/cmd/inventory",
	"github.com/microshop/microshop/services/payment/cmd/payment",
	"github.com/microshop/microshop/services/psp/cmd/psp",
	"github.com/microshop/microshop/deploy/local/cmd/broker",
	"github.com/microshop/microshop/deploy/local/cmd/launcher",
	"github.com/microshop/microshop/observability/ebpf/cmd/probe",
}

// stackEnv shortens the checkout's deadlines in the stacks the test runs,
// so that the order paid with the hanging card is cancelled within seconds
// (the defaults take 15s). The charge deadline stays well above the PSP
// timeout, as services/payment/README.md requires, so a card that answers
// is never taken for a hanging one. The launcher passes its environment on
// to the services.
var stackEnv = []string{"ORDER_CHARGE_TIMEOUT=5s", "PAYMENT_PSP_TIMEOUT=1s"}

// addedServices returns the services added with make new-service
// (deploy/local/internal/added), which the launcher starts too, and their
// programs.
func addedServices(t *testing.T) ([]added.Service, []string) {
	t.Helper()
	services, err := added.Services()
	if err != nil {
		t.Fatal(err)
	}
	var programs []string
	for _, s := range services {
		programs = append(programs, "github.com/microshop/microshop/services/"+s.Name+"/cmd/"+s.Name)
	}
	return services, programs
}

// serviceOffsets returns the services' ports relative to the launcher's
// -port-base: the shop's own and the added ones.
func serviceOffsets(services []added.Service) map[string]int {
	offsets := added.Builtin()
	for _, s := range services {
		offsets[s.Name] = s.PortOffset
	}
	return offsets
}

// TestNativeStack is the end-to-end smoke test: it builds every program,
// runs the launcher as `make run` and `make run-full` do, checks every
// /readyz, shops through the gateway, stops it with SIGINT and checks that
// every process exited 0 and that none is left behind.
func TestNativeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the whole stack; run without -short")
	}
	dir := worldReadableTempDir(t) // the postgres user must reach the cluster under it
	bin := filepath.Join(dir, "bin")
	services, addedPrograms := addedServices(t)
	offsets := serviceOffsets(services)
	buildPrograms(t, bin, append(slices.Clone(programs), addedPrograms...))

	for _, mode := range []string{"embedded", "full"} {
		t.Run(mode, func(t *testing.T) {
			runDir := filepath.Join(dir, mode)
			base, broker := freePortRange(t, added.MaxOffset(services)+1), freePortRange(t, 1)
			args := []string{"-mode", mode, "-dir", runDir, "-bin", bin,
				"-port-base", strconv.Itoa(base), "-broker-port", strconv.Itoa(broker)}
			env := stackEnv
			// The full stack is observed, as make run-full's is: Jaeger
			// and Prometheus too, inventory logging each command handled.
			var jaegerPort, prometheusPort, consulPort, probePort int
			if mode == "full" {
				jaegerBin, prometheusBin := observabilityTools(t)
				jaegerPort, prometheusPort = freePortRange(t, 2)+1, freePortRange(t, 1)
				otlpPort := freePortRange(t, 2) + 1
				root, err := servicetest.RepoRoot()
				if err != nil {
					t.Fatal(err)
				}
				consulBin := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")
				consulPort = freePortRange(t, 4)
				args = append(args, "-consul", consulBin, "-consul-port", strconv.Itoa(consulPort))
				args = append(args, "-jaeger", jaegerBin, "-prometheus", prometheusBin,
					"-observability", filepath.Join(root, "observability"),
					"-jaeger-port", strconv.Itoa(jaegerPort), "-otlp-port", strconv.Itoa(otlpPort),
					"-prometheus-port", strconv.Itoa(prometheusPort))
				probePort = freePortRange(t, 1)
				args = append(args, "-probe", filepath.Join(bin, "probe"), "-probe-port", strconv.Itoa(probePort))
				env = append(slices.Clone(stackEnv), "INVENTORY_LOG_LEVEL=debug")
			}
			l := startLauncher(t, env, filepath.Join(bin, "launcher"), args...)
			l.waitForLine(t, "all processes ready", 3*time.Minute)
			probed := mode == "full" && !strings.Contains(l.output(), "eBPF probe not started")
			if mode == "full" && !probed {
				if os.Getenv("CI") == "true" {
					t.Fatalf("the launcher did not start the eBPF probe, which CI's machine can load:\n%s", l.output())
				}
				t.Logf("the eBPF probe cannot load here (run as root to include it): its dashboard is not checked")
			}

			for name, offset := range offsets {
				url := fmt.Sprintf("http://127.0.0.1:%d/readyz", base+offset)
				resp, err := http.Get(url)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: GET %s = %d, want 200", name, url, resp.StatusCode)
				}
			}

			if mode == "full" {
				want := map[string][]string{}
				for name, offset := range offsets {
					if name != "psp" {
						want[name] = []string{fmt.Sprintf("127.0.0.1:%d", base+offset)}
					}
				}
				t.Run("registered", func(t *testing.T) { registeredInConsul(t, consulPort, want) })
			}

			t.Run("shop", func(t *testing.T) {
				shop(t, fmt.Sprintf("http://127.0.0.1:%d", base), fmt.Sprintf("http://127.0.0.1:%d", base+pspOffset))
			})
			if mode == "full" {
				t.Run("observe", func(t *testing.T) {
					processes := map[string]string{}
					for name, offset := range offsets {
						processes[name] = fmt.Sprintf("http://127.0.0.1:%d", base+offset)
					}
					if probed {
						processes["probe"] = fmt.Sprintf("http://127.0.0.1:%d", probePort)
					}
					observe(t, processes, fmt.Sprintf("http://127.0.0.1:%d", jaegerPort),
						fmt.Sprintf("http://127.0.0.1:%d", prometheusPort), l)
				})
			}

			if err := l.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if err := l.wait(time.Minute); err != nil {
				t.Fatalf("launcher after SIGINT: %v, want exit 0\n%s", err, l.output())
			}

			pids := l.startedPIDs()
			started := []string{"broker", "psp", "inventory", "payment", "order"}
			for _, s := range services {
				started = append(started, s.Name)
			}
			started = append(started, "gateway")
			if mode == "full" {
				first := []string{"consul", "jaeger"}
				if probed {
					first = append(first, "probe")
				}
				started = append(first, append(started, "prometheus")...)
			}
			for _, name := range started {
				if _, ok := pids[name]; !ok {
					t.Errorf("launcher never reported starting %s", name)
				}
				if !strings.Contains(l.output(), "launcher  | "+name+" exited with code 0") {
					t.Errorf("%s did not exit with code 0", name)
				}
			}
			stopped := slices.Clone(started)
			slices.Reverse(stopped)
			if got, want := l.exitOrder(), stopped; !slices.Equal(got, want) {
				t.Errorf("processes exited in order %v, want the reverse of start-up %v", got, want)
			}
			for name, pid := range pids {
				if alive(pid) {
					t.Errorf("%s (pid %d) is still running after the launcher exited", name, pid)
				}
			}
			if left := processesMentioning(runDir); len(left) > 0 {
				t.Errorf("processes left behind that use %s: %v", runDir, left)
			}
			if t.Failed() {
				t.Logf("launcher output:\n%s", l.output())
			}
		})
	}
}

type launcher struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	added chan struct{} // receives after each new line
	done  chan error
}

// startLauncher runs the launcher at path with args, and env added to the
// test's environment.
func startLauncher(t *testing.T, env []string, path string, args ...string) *launcher {
	t.Helper()
	l := &launcher{cmd: exec.Command(path, args...), added: make(chan struct{}, 1), done: make(chan error, 1)}
	l.cmd.Env = append(os.Environ(), env...)
	l.cmd.Stderr = l.cmd.Stdout
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, s.Text())
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
		l.done <- l.cmd.Wait()
	}()
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Signal(syscall.SIGINT)
			_ = l.wait(time.Minute)
		}
	})
	return l
}

func (l *launcher) output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *launcher) waitForLine(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(l.output(), substr) {
		select {
		case <-l.added:
		case err := <-l.done:
			l.done <- err
			t.Fatalf("launcher exited (%v) before printing %q:\n%s", err, substr, l.output())
		case <-deadline:
			t.Fatalf("no %q within %s:\n%s", substr, timeout, l.output())
		}
	}
}

func (l *launcher) wait(timeout time.Duration) error {
	select {
	case err := <-l.done:
		l.done <- err
		return err
	case <-time.After(timeout):
		_ = l.cmd.Process.Kill()
		return errors.New("launcher did not exit in time")
	}
}

var exitedLine = regexp.MustCompile(`launcher  \| (\S+) exited with code`)

// exitOrder lists the processes in the order the launcher saw them exit.
func (l *launcher) exitOrder() []string {
	var names []string
	for _, m := range exitedLine.FindAllStringSubmatch(l.output(), -1) {
		names = append(names, m[1])
	}
	return names
}

var startedLine = regexp.MustCompile(`launcher  \| started (\S+) pid=(\d+)`)

func (l *launcher) startedPIDs() map[string]int {
	pids := map[string]int{}
	for _, m := range startedLine.FindAllStringSubmatch(l.output(), -1) {
		pid, _ := strconv.Atoi(m[2])
		pids[m[1]] = pid
	}
	return pids
}

// alive reports whether pid is a running process; a zombie waiting for its
// parent to reap it has already exited.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) && alive(pid) {
			found = append(found, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return found
}

// buildPrograms builds packages into the directory bin.
func buildPrograms(t *testing.T, bin string, packages []string) {
	t.Helper()
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"}, packages...)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// freePortRange returns the first of n consecutive ports on 127.0.0.1 that
// are free now. They are drawn below Linux's ephemeral range (32768 and up
// by default), which the kernel hands to outgoing connections: a port
// drawn there can be taken by any client between this check and the
// process's bind (seen in CI as "address already in use").
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 10000 + rand.IntN(22000-n)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// worldReadableTempDir is t.TempDir for directories other users must enter
// (t.TempDir's are private to the test's user).
func worldReadableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "microshop-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// registeredInConsul checks that Consul holds, for each service of want,
// exactly the instances at want's addresses (host:port), each with its
// check passing, and nothing of the payment provider, a third party.
func registeredInConsul(t *testing.T, consulPort int, want map[string][]string) {
	client, err := api.NewClient(&api.Config{Address: "127.0.0.1:" + strconv.Itoa(consulPort)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for name, addrs := range want {
		poll.UntilNil(ctx, t, name+" registered and passing in consul", func() error {
			entries, _, err := client.Health().Service(name, "", true, nil)
			if err != nil {
				return err
			}
			var got []string
			for _, e := range entries {
				got = append(got, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
			}
			slices.Sort(got)
			if !slices.Equal(got, slices.Sorted(slices.Values(addrs))) {
				return fmt.Errorf("passing instances at %v, want %v", got, addrs)
			}
			return nil
		})
	}
	if services, _, err := client.Catalog().Services(nil); err != nil || services["psp"] != nil {
		t.Errorf("catalog services %v (%v): want no psp, a third party", services, err)
	}
}
