package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/servicetest"
)

// TestNativePrometheusConfigIsCurrent: observability/prometheus/native.yml,
// which promtool checks in observability/prometheus, is what the launcher
// writes for its default ports. With -update it writes the file.
func TestNativePrometheusConfigIsCurrent(t *testing.T) {
	// The processes of the default flags, in the order run starts them.
	targets := []scrapeTarget{
		{job: "psp", addr: "127.0.0.1:8090"},
		{job: "inventory", addr: "127.0.0.1:8082"},
		{job: "payment", addr: "127.0.0.1:8083"},
		{job: "order", addr: "127.0.0.1:8081"},
		{job: "gateway", addr: "127.0.0.1:8080"},
		{job: "probe", addr: "127.0.0.1:9400"}, // the eBPF probe, when it can load (root)
	}
	got := prometheusConfig(targets, "rules/*.yml", "127.0.0.1:9090")
	file := filepath.Join("..", "..", "..", "..", "observability", "prometheus", "native.yml")
	if os.Getenv("UPDATE_NATIVE_PROMETHEUS") != "" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is not what the launcher writes for its default ports; rerun this test with UPDATE_NATIVE_PROMETHEUS=1:\n%s", file, got)
	}
}

func TestPrometheusConfigOneJobPerService(t *testing.T) {
	targets := []scrapeTarget{
		{job: "order", addr: "127.0.0.1:8081"},
		{job: "order", addr: "127.0.0.1:8181"}, // -replicas 2
		{job: "gateway", addr: "127.0.0.1:8080"},
	}
	got := prometheusConfig(targets, "rules/*.yml", "127.0.0.1:9090")
	for _, want := range []string{
		"  - job_name: order\n    static_configs: [{targets: [\"127.0.0.1:8081\", \"127.0.0.1:8181\"]}]\n",
		"  - job_name: gateway\n    static_configs: [{targets: [\"127.0.0.1:8080\"]}]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "job_name: order"); n != 1 {
		t.Errorf("%d jobs named order, want 1 with both replicas:\n%s", n, got)
	}
	t.Run("promtool check config", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		servicetest.Require(t, "promtool (make prometheus)", err)
		file := filepath.Join(t.TempDir(), "prometheus.yml")
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "config", file).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	})
}

func TestBoolComparisons(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"up == 0", "up == bool 0"},
		{`max(saga_instances{status="COMPENSATING"}) > 0 and sum(x{a!="b"}) >= 1`,
			`max(saga_instances{status="COMPENSATING"}) > bool 0 and sum(x{a!="b"}) >= bool 1`},
		{"a:rate1h > (14.4 * 0.05)\nand b < 2", "a:rate1h > bool (14.4 * 0.05)\nand b < bool 2"},
		{`x{le=~"0.5|1"} != 3`, `x{le=~"0.5|1"} != bool 3`},
	}
	for _, tt := range tests {
		if got := boolComparisons(tt.expr); got != tt.want {
			t.Errorf("boolComparisons(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestProbe: the launcher adds the eBPF probe only when the probe's own
// -check says it can load, and otherwise passes on its reason as
// errNoProbe, so that the stack runs without it. The fakes answer -check
// as the probe does (cmd/probe's TestMissingCapability checks the real one).
func TestProbe(t *testing.T) {
	fake := func(t *testing.T, script string) string {
		path := filepath.Join(t.TempDir(), "probe")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("can load", func(t *testing.T) {
		o := observability{probeBin: fake(t, `[ "$1" = -check ] || exit 1`), probePort: 9400}
		p, err := o.probe(t.Context(), []string{"gateway", "order"})
		if err != nil {
			t.Fatal(err)
		}
		if p.URL != "http://127.0.0.1:9400" || !slices.Contains(p.Env, "PROBE_PROCESSES=gateway,order") {
			t.Errorf("probe process: URL %s, env %v", p.URL, p.Env)
		}
	})
	t.Run("cannot load", func(t *testing.T) {
		o := observability{probeBin: fake(t, `echo "probe: cannot load: missing capability CAP_BPF (or CAP_SYS_ADMIN): run the probe as root or grant them" >&2; exit 2`)}
		_, err := o.probe(t.Context(), []string{"gateway"})
		want := "the eBPF probe cannot load here: missing capability CAP_BPF (or CAP_SYS_ADMIN): run the probe as root or grant them"
		if !errors.Is(err, errNoProbe) || err.Error() != want {
			t.Errorf("err = %v, want errNoProbe: %q", err, want)
		}
	})
	t.Run("broken", func(t *testing.T) {
		o := observability{probeBin: fake(t, `echo "something else" >&2; exit 1`)}
		if _, err := o.probe(t.Context(), []string{"gateway"}); err == nil || errors.Is(err, errNoProbe) {
			t.Errorf("err = %v, want an error other than errNoProbe", err)
		}
	})
}

// TestComposeProbeRoutes: the compose stack's probe (docker-compose.yaml,
// profile ebpf) labels request paths by the same routes as the native
// stack's, so that their series compare.
func TestComposeProbeRoutes(t *testing.T) {
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yaml")},
		cli.WithName("microshop"), cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true), cli.WithProfiles([]string{"ebpf"}), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v := project.Services["probe"].Environment["PROBE_ROUTES"]
	if v == nil {
		t.Fatal("docker-compose.yaml: the probe has no PROBE_ROUTES")
	}
	var got []string
	for r := range strings.SplitSeq(*v, ",") {
		got = append(got, strings.TrimSpace(r))
	}
	if diff := cmp.Diff(probeRoutes, got); diff != "" {
		t.Errorf("docker-compose.yaml: the probe's PROBE_ROUTES differ from the launcher's probeRoutes (-launcher +compose):\n%s", diff)
	}
}
