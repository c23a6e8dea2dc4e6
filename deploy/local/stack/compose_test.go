package stack

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/microshop/microshop/pkg/servicetest"
)

// memoryBudget is what the whole compose stack may take (DESIGN.md:
// "the compose stack ≤ 2 GB"), every replica and the opt-in probe counted.
const memoryBudget = 2 << 30

// program is one of our programs in the compose file: its service name,
// the prefix of its variables and the README whose table documents them.
type program struct {
	service, prefix, readme string
	replicas                int
	required                []string // variables the container must set
}

var programs = []program{
	{"gateway", "GATEWAY_", "services/gateway/README.md", 1, []string{"GATEWAY_HTTP_ADDR", "GATEWAY_PSP_URL", "GATEWAY_JWT_SECRET", "CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	{"order", "ORDER_", "services/order/README.md", 2, []string{"ORDER_HTTP_ADDR", "ORDER_DATABASE_URL", "ORDER_KAFKA_BROKERS", "CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	{"inventory", "INVENTORY_", "services/inventory/README.md", 2, []string{"INVENTORY_HTTP_ADDR", "INVENTORY_DATABASE_URL", "INVENTORY_KAFKA_BROKERS", "CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	{"payment", "PAYMENT_", "services/payment/README.md", 2, []string{"PAYMENT_HTTP_ADDR", "PAYMENT_DATABASE_URL", "PAYMENT_KAFKA_BROKERS", "PAYMENT_PSP_URL", "CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	{"psp", "PSP_", "services/psp/README.md", 1, []string{"PSP_HTTP_ADDR"}},
	{"probe", "PROBE_", "observability/ebpf/README.md", 1, []string{"PROBE_METRICS_ADDR"}},
}

// infrastructure are the other services the stack must have.
var infrastructure = []string{"postgres", "kafka", "consul", "jaeger", "prometheus", "grafana"}

// loadCompose loads the compose files named, relative to the repository
// root, as docker compose does: interpolation on, the ebpf profile active so
// that the probe is checked too, and no variables from the environment
// (the defaults in the file are what a visitor gets).
func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithName("microshop"), cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true), cli.WithProfiles([]string{"ebpf"}), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return project
}

// TestComposeFile checks docker-compose.yaml for the rules of the stack:
// every service there, a healthcheck on each, every dependency waiting
// for health, pinned images, memory limits within the budget, the replicas,
// the probe opt-in with the capabilities it needs, Grafana provisioned.
func TestComposeFile(t *testing.T) {
	project := loadCompose(t, "docker-compose.yaml")
	checkRules(t, project)

	var total int64
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		s := project.Services[name]
		if s.Build == nil {
			if err := pinned(s.Image); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if s.Build.Context != projectRoot(t) || s.Build.Dockerfile != "Dockerfile" || s.Build.Target != name || !slices.Contains(images, name) {
			t.Errorf("%s: built from %q, %q, target %q; want the repository's Dockerfile, its target %s", name, s.Build.Context, s.Build.Dockerfile, s.Build.Target, name)
		}
		total += int64(s.Deploy.Resources.Limits.MemoryBytes) * int64(replicas(s))
	}
	if total > memoryBudget {
		t.Errorf("memory limits add up to %d MiB with every replica, over the budget of %d MiB", total>>20, memoryBudget>>20)
	}
	t.Logf("memory limits: %d MiB in all", total>>20)

	probe := project.Services["probe"]
	if probe.Privileged || !slices.Equal(probe.CapAdd, []string{"SYS_ADMIN", "SYS_PTRACE"}) || !slices.Equal(probe.Profiles, []string{"ebpf"}) || probe.Pid != "host" {
		t.Errorf("probe: privileged %v, capabilities %v, profiles %v, pid %q; want CAP_SYS_ADMIN and CAP_SYS_PTRACE, not privileged (a daemon short of a capability refuses that), in the opt-in profile ebpf, in the host's PID namespace",
			probe.Privileged, probe.CapAdd, probe.Profiles, probe.Pid)
	}
	// Root by number: CI's image of it is FROM scratch, without a passwd
	// file to look a user name up in ("unable to find user root").
	if probe.User != "0:0" {
		t.Errorf("probe: user %q, want 0:0", probe.User)
	}
	// It watches the processes by the names of their executables, which
	// are the programs' names in their images (TestDockerfile).
	var watched []string
	if v := probe.Environment["PROBE_PROCESSES"]; v != nil {
		watched = strings.Split(*v, ",")
	}
	if want := []string{"gateway", "order", "inventory", "payment", "psp"}; !slices.Equal(watched, want) {
		t.Errorf("probe: PROBE_PROCESSES %q, want %q", watched, want)
	}
	grafana := project.Services["grafana"]
	for target, source := range map[string]string{
		"/etc/grafana/provisioning":   "observability/grafana/provisioning",
		"/var/lib/grafana/dashboards": "observability/grafana/dashboards",
	} {
		if !slices.ContainsFunc(grafana.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Target == target && v.Source == filepath.Join(projectRoot(t), source)
		}) {
			t.Errorf("grafana: %s not mounted at %s", source, target)
		}
	}
}

// checkRules checks what holds in every variant of the stack, the
// official images' and CI's local stand-ins; every service is there but
// those without.
func checkRules(t *testing.T, project *types.Project, without ...string) {
	t.Helper()
	for _, name := range append(slices.Clone(infrastructure), "gateway", "order", "inventory", "payment", "psp", "probe") {
		if _, ok := project.Services[name]; !ok && !slices.Contains(without, name) {
			t.Errorf("no service %s", name)
		}
	}
	for name, s := range project.Services {
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends on %s with condition %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 {
			t.Errorf("%s: no memory limit", name)
		}
	}
	for _, p := range programs {
		s, ok := project.Services[p.service]
		if !ok {
			continue
		}
		if got := replicas(s); got != p.replicas {
			t.Errorf("%s: %d replicas, want %d", p.service, got, p.replicas)
		}
		if want := []string{"CMD", "/usr/local/bin/" + p.service, "healthcheck"}; s.HealthCheck != nil && !slices.Equal([]string(s.HealthCheck.Test), want) {
			t.Errorf("%s: healthcheck %q, want %q, the program's healthcheck mode where its image has it", p.service, s.HealthCheck.Test, want)
		}
		checkEnvironment(t, p, s.Environment)
	}
}

// checkEnvironment checks a program's environment against its README: its
// own variables each a row of the configuration table, the ecosystem's
// (OTEL_*, CONSUL_HTTP_*) each named in the README, the required ones set,
// and the listen address on every interface.
func checkEnvironment(t *testing.T, p program, env types.MappingWithEquals) {
	t.Helper()
	root := projectRoot(t)
	documented, err := servicetest.DocumentedVars(filepath.Join(root, p.readme), p.prefix)
	if err != nil {
		t.Fatal(err)
	}
	text := readFile(t, filepath.Join(root, p.readme))
	for k, v := range env {
		switch {
		case v == nil || *v == "":
			t.Errorf("%s: %s is empty", p.service, k)
		case strings.HasPrefix(k, p.prefix):
			if !slices.Contains(documented, k) {
				t.Errorf("%s: %s is not in the configuration table of %s", p.service, k, p.readme)
			}
		case strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "CONSUL_HTTP_"):
			if !strings.Contains(text, "`"+k+"`") {
				t.Errorf("%s: %s is not named in %s", p.service, k, p.readme)
			}
		default:
			t.Errorf("%s: %s is neither the program's variable nor the ecosystem's", p.service, k)
		}
	}
	for _, k := range p.required {
		if env[k] == nil {
			t.Errorf("%s: %s not set", p.service, k)
		}
	}
	for _, k := range []string{p.prefix + "HTTP_ADDR", p.prefix + "METRICS_ADDR"} {
		if v := env[k]; v != nil && !strings.HasPrefix(*v, "0.0.0.0:") {
			t.Errorf("%s: %s=%s, want 0.0.0.0:<port>, reachable from the other containers", p.service, k, *v)
		}
	}
}

// pinned reports whether image names an explicit version: a tag that is
// not latest and has a digit, or a digest.
func pinned(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return fmt.Errorf("image %q has no tag", image)
	}
	tag := image[i+1:]
	if tag == "latest" || !strings.ContainsAny(tag, "0123456789") {
		return fmt.Errorf("image %q: tag %q is not a version", image, tag)
	}
	return nil
}

func replicas(s types.ServiceConfig) int {
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

func projectRoot(t *testing.T) string {
	t.Helper()
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
