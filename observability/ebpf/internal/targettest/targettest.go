// Package targettest builds and runs internal/httptarget, the HTTP server
// the probe's tests attach to.
package targettest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles internal/httptarget into dir as the executable name and
// returns its path.
func Build(t testing.TB, dir, name string) string {
	t.Helper()
	exe := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", exe, "github.com/microshop/microshop/observability/ebpf/internal/httptarget")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build httptarget: %v\n%s", err, out)
	}
	return exe
}

// Target is a running httptarget.
type Target struct {
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// Cmd is its process.
	Cmd *exec.Cmd
}

// Start runs the executable exe until the test ends or Stop is called, and
// waits until it listens.
func Start(t testing.TB, exe string) *Target {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start httptarget: %v", err)
	}
	tg := &Target{Cmd: cmd}
	t.Cleanup(tg.Stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("httptarget did not say where it listens: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("httptarget said %q", line)
	}
	tg.URL = "http://" + addr
	return tg
}

// Stop kills the target and waits for it to exit; calling it again does
// nothing.
func (tg *Target) Stop() {
	if tg.Cmd.ProcessState != nil {
		return
	}
	tg.Cmd.Process.Kill()
	tg.Cmd.Wait()
}

// Count is the number of requests the target served with one method, path
// and status, as the target counted them.
type Count struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Count  int    `json:"count"`
}

// Counts asks the target for its own counts.
func (tg *Target) Counts(ctx context.Context) ([]Count, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL+"/counts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /counts: %s", resp.Status)
	}
	var counts []Count
	return counts, json.NewDecoder(resp.Body).Decode(&counts)
}
