package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/modfile"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/deploy/local/internal/newservicetest"
)

func TestNewSpec(t *testing.T) {
	got, err := newSpec("shipping", "shipment")
	if err != nil {
		t.Fatal(err)
	}
	want := spec{Name: "shipping", Prefix: "SHIPPING", Record: "shipment", RecordTitle: "Shipment",
		Records: "shipments", RecordsTitle: "Shipments", Topic: "order.events"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("newSpec (-want +got):\n%s", diff)
	}
}

func TestNewSpecRejects(t *testing.T) {
	tests := []struct {
		name, service, record, wantErr string
	}{
		{"no name", "", "job", "-name (NAME): is empty"},
		{"capitals", "Shipping", "job", "not a lowercase letter"},
		{"hyphen", "ship-ping", "job", "not a lowercase letter"},
		{"underscore", "ship_ping", "job", "not a lowercase letter"},
		{"digit first", "1ship", "job", "not a lowercase letter"},
		{"keyword", "func", "job", "Go keyword"},
		{"predeclared", "string", "job", "predeclared in Go"},
		{"one letter", "s", "job", "shorter than 2"},
		{"too long", strings.Repeat("s", 31), "job", "longer than 30"},
		{"a service of the shop", "order", "job", "a service of the shop"},
		{"the payment provider", "psp", "job", "a service of the shop"},
		{"a program of the stack", "consul", "job", "a program of the native stack"},
		{"a package of the service", "db", "job", "a name the generated code uses"},
		{"an import of the service", "kafka", "job", "a name the generated code uses"},
		{"bad record", "shipping", "Shipment", "-record (RECORD): \"Shipment\" is not a lowercase letter"},
		{"record is the domain's Service", "shipping", "service", "-record (RECORD): \"service\" is taken"},
		{"records is the service's name", "shipments", "shipment", "its plural \"shipments\" is the service's name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newSpec(tt.service, tt.record)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("newSpec(%q, %q) = %v, want an error containing %q", tt.service, tt.record, err, tt.wantErr)
			}
		})
	}
}

func TestPlural(t *testing.T) {
	tests := []struct{ noun, want string }{
		{"shipment", "shipments"}, {"delivery", "deliveries"}, {"day", "days"},
		{"box", "boxes"}, {"address", "addresses"}, {"batch", "batches"}, {"job", "jobs"},
	}
	for _, tt := range tests {
		if got := plural(tt.noun); got != tt.want {
			t.Errorf("plural(%q) = %q, want %q", tt.noun, got, tt.want)
		}
	}
}

func TestWithDockerfileCopy(t *testing.T) {
	in := "FROM x\nCOPY pkg/go.mod pkg/go.sum pkg/\nCOPY services/order/go.mod services/order/go.sum services/order/\n" +
		"COPY services/psp/go.mod services/psp/go.sum services/psp/\nCOPY deploy/local/go.mod deploy/local/go.sum deploy/local/\n"
	got, err := withDockerfileCopy([]byte(in), "shipping")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(in, "services/psp/\n", "services/psp/\nCOPY services/shipping/go.mod services/shipping/go.sum services/shipping/\n", 1)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("withDockerfileCopy (-want +got):\n%s", diff)
	}
	if _, err := withDockerfileCopy([]byte("FROM x\n"), "shipping"); err == nil {
		t.Error("withDockerfileCopy of a Dockerfile without a service's COPY succeeded, want an error")
	}
}

// fakeRoot is a repository root with what generate reads, and dockerfile.
func fakeRoot(t *testing.T, dockerfile string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.work":    "go 1.26.8\n\nuse ./pkg\n",
		"Dockerfile": dockerfile,
		added.File:   "# none yet\n",
	}
	for name, content := range files {
		file := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestRefuses: generate changes nothing when services/<name> exists or the
// Dockerfile has no place for the module.
func TestRefuses(t *testing.T) {
	tests := []struct {
		name       string
		existing   bool
		dockerfile string
		wantErr    string
	}{
		{"service exists", true, "COPY services/psp/go.mod services/psp/go.sum services/psp/\n", "services/shipping exists: not overwriting it"},
		{"no place in the Dockerfile", false, "FROM x\n", "the Dockerfile has no line COPY services/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, tt.dockerfile)
			existing := filepath.Join(root, "services", "shipping")
			if tt.existing {
				if err := os.MkdirAll(existing, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(existing, "mine.go"), []byte("package mine\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, root)
			var out bytes.Buffer
			err := run(t.Context(), []string{"-name", "shipping", "-record", "shipment", "-root", root}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
				t.Errorf("the repository changed (-before +after):\n%s", diff)
			}
		})
	}
}

// snapshot returns every file under root by path.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[strings.TrimPrefix(path, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGeneratedServicePassesItsTests generates a service as make
// new-service does, in a workspace of its own whose pkg and proto are the
// repository's (newservicetest.Root), and
// runs what make test runs on it: go vet, the go.mod tidiness check and
// go test — its wiring test against real SQLite, PostgreSQL and the
// broker. It checks the registrations too: go.work, the launcher's list,
// the Dockerfile.
func TestGeneratedServicePassesItsTests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a generated service; run without -short")
	}
	root := newservicetest.Root(t)
	list, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(added.File)))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := added.Parse(string(list))
	if err != nil {
		t.Fatal(err)
	}
	wantOffset := added.NextOffset(listed)
	// The lab's service, unless the repository has it already (the lab
	// was done in it): then another.
	name := "shipping"
	for _, a := range listed {
		if a.Name == name {
			name = "delivery"
		}
	}

	var out bytes.Buffer
	if err := run(t.Context(), []string{"-name", name, "-record", "shipment", "-root", root}, &out); err != nil {
		t.Fatalf("generate: %v\n%s", err, out.String())
	}
	t.Logf("new-service said:\n%s", out.String())

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if work, err := modfile.ParseWork("go.work", []byte(read("go.work")), nil); err != nil || !usesDir(work, "./services/"+name) {
		t.Errorf("go.work does not use ./services/%s (%v):\n%s", name, err, read("go.work"))
	}
	after, err := added.Parse(read(added.File))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(listed, added.Service{Name: name, PortOffset: wantOffset}), after); diff != "" {
		t.Errorf("%s (-want +got):\n%s", added.File, diff)
	}
	if copy := fmt.Sprintf("\nCOPY services/%[1]s/go.mod services/%[1]s/go.sum services/%[1]s/\n", name); !strings.Contains(read("Dockerfile"), copy) {
		t.Errorf("the Dockerfile does not copy services/%s's go.mod and go.sum", name)
	}
	if err := run(t.Context(), []string{"-name", name, "-record", "shipment", "-root", root}, &out); err == nil {
		t.Errorf("generating %s a second time succeeded, want a refusal", name)
	}

	service := filepath.Join(root, "services", name)
	for _, step := range [][]string{
		{"vet", "./..."},
		{"mod", "tidy", "-diff"},
		{"test", "-count=1", "./..."},
	} {
		cmd := exec.CommandContext(t.Context(), "go", step...)
		cmd.Dir = service
		if step[0] == "mod" {
			cmd.Env = append(os.Environ(), "GOWORK=off") // as make lint checks it
		}
		output, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in services/%s: %v\n%s", strings.Join(step, " "), name, err, output)
		}
		t.Logf("go %s:\n%s", strings.Join(step, " "), output)
	}
}

func usesDir(work *modfile.WorkFile, dir string) bool {
	for _, use := range work.Use {
		if use.Path == dir {
			return true
		}
	}
	return false
}
