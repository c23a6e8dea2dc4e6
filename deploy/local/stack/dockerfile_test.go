package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseDockerfile parses path with BuildKit's parser into its stages and
// the arguments before the first FROM.
func parseDockerfile(t *testing.T, path string) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	result, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	stages, args, err := instructions.Parse(result.AST, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return stages, args
}

// runtime is what a program's image looks like when it runs.
type runtime struct {
	user, entrypoint, healthcheck string
}

// runtimeOf returns the USER, ENTRYPOINT and HEALTHCHECK of a stage.
func runtimeOf(s instructions.Stage) runtime {
	var r runtime
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			r.user = c.User
		case *instructions.EntrypointCommand:
			r.entrypoint = strings.Join(c.CmdLine, " ")
		case *instructions.HealthCheckCommand:
			r.healthcheck = strings.Join(c.Health.Test, " ")
		}
	}
	return r
}

// images are the build targets of the Dockerfile, one per program, each
// named after its program (and its package directory's base name).
var images = []string{"gateway", "order", "inventory", "payment", "psp", "broker", "probe"}

// runtimeOfImage is what the image of program must run: the program under
// its own name, so that its process is named after it (the eBPF probe
// watches processes by name), non-root, its healthcheck the program's own
// mode.
func runtimeOfImage(program string) runtime {
	bin := "/usr/local/bin/" + program
	return runtime{user: "65532:65532", entrypoint: bin, healthcheck: "CMD " + bin + " healthcheck"}
}

// TestDockerfile checks the Dockerfile of our programs: the base images
// are arguments, one build stage compiles every program static and trimmed
// with the version stamped, and each program's stage runs its binary under
// its own name, non-root, its healthcheck the program's own mode. CI's
// stand-in (deploy/compose/program.Dockerfile, FROM scratch with the
// binaries built on the host) must have the same stages, run the same way.
func TestDockerfile(t *testing.T) {
	root := projectRoot(t)
	stages, args := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	var argNames []string
	for _, a := range args {
		for _, kv := range a.Args {
			argNames = append(argNames, kv.Key)
		}
	}
	for _, want := range []string{"GO_IMAGE", "RUNTIME_IMAGE"} {
		if !slices.Contains(argNames, want) {
			t.Errorf("Dockerfile: no argument %s before the first FROM", want)
		}
	}
	if len(stages) != 1+len(images) || stages[0].BaseName != "${GO_IMAGE}" || stages[0].Name != "build" {
		t.Fatalf("Dockerfile: stages %v, want a build FROM ${GO_IMAGE} and a stage per program %v", stageBases(stages), images)
	}
	build := stageSource(stages[0])
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "stampedVersion=${VERSION}", "GOARCH=${TARGETARCH}", "-o /out/"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: the build stage has no %q", want)
		}
	}
	// Stripped binaries (-s: no symbol table, -w: no DWARF) would hide the
	// services' HTTP servers from the probe.
	for _, strip := range []string{"-s ", "-w "} {
		if strings.Contains(build, strip) {
			t.Errorf("Dockerfile: the build stage strips the binaries (%q): the probe cannot trace their HTTP servers", strip)
		}
	}
	for i, name := range images {
		st := stages[1+i]
		if st.Name != name || st.BaseName != "${RUNTIME_IMAGE}" {
			t.Errorf("Dockerfile: stage %d is %q FROM %s, want %q FROM ${RUNTIME_IMAGE}", 1+i, st.Name, st.BaseName, name)
			continue
		}
		// The build stage builds the program: a package directory ending
		// in cmd/<program>, so go build -o /out/ names it <program>.
		if !strings.Contains(build, "/cmd/"+name+" ") && !strings.Contains(build, "/cmd/"+name+"\n") {
			t.Errorf("Dockerfile: the build stage builds no ./…/cmd/%s", name)
		}
		if src, want := stageSource(st), "COPY --from=build /out/"+name+" /usr/local/bin/"; !strings.Contains(src, want) {
			t.Errorf("Dockerfile: stage %s has no %q", name, want)
		}
		if got, want := runtimeOf(st), runtimeOfImage(name); got != want {
			t.Errorf("Dockerfile: stage %s runs %+v, want %+v", name, got, want)
		}
	}
	// The layer of downloaded modules needs every module's requirements.
	work, err := modfile.ParseWork("go.work", []byte(readFile(t, filepath.Join(root, "go.work"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	// And the build context must hold every module of the workspace:
	// go.work names them all, and go refuses a workspace with one missing.
	patterns, err := ignorefile.ReadAll(strings.NewReader(readFile(t, filepath.Join(root, ".dockerignore"))))
	if err != nil {
		t.Fatal(err)
	}
	ignored, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, use := range work.Use {
		dir := strings.TrimPrefix(use.Path, "./")
		if copy := fmt.Sprintf("COPY %[1]s/go.mod %[1]s/go.sum %[1]s/", dir); !strings.Contains(readFile(t, filepath.Join(root, "Dockerfile")), copy) {
			t.Errorf("Dockerfile: no %q for the workspace's module %s", copy, dir)
		}
		if out, err := ignored.MatchesOrParentMatches(dir + "/go.mod"); err != nil || out {
			t.Errorf(".dockerignore leaves the workspace's module %s out of the build context (%v)", dir, err)
		}
	}

	local, _ := parseDockerfile(t, filepath.Join(root, "deploy/compose/program.Dockerfile"))
	var localNames []string
	for _, st := range local {
		localNames = append(localNames, st.Name)
		if st.BaseName != "scratch" {
			t.Errorf("program.Dockerfile: stage %s FROM %s, want scratch", st.Name, st.BaseName)
		}
		if src, want := stageSource(st), "COPY "+st.Name+" /usr/local/bin/"; !strings.Contains(src, want) {
			t.Errorf("program.Dockerfile: stage %s has no %q", st.Name, want)
		}
		if got, want := runtimeOf(st), runtimeOfImage(st.Name); got != want {
			t.Errorf("program.Dockerfile: stage %s runs %+v, want the Dockerfile's %+v", st.Name, got, want)
		}
	}
	if !slices.Equal(localNames, images) {
		t.Errorf("program.Dockerfile: stages %v, want the Dockerfile's %v", localNames, images)
	}
}

func stageBases(stages []instructions.Stage) []string {
	var s []string
	for _, st := range stages {
		s = append(s, st.BaseName)
	}
	return s
}

// stageSource is the text of a stage's instructions.
func stageSource(s instructions.Stage) string {
	var b strings.Builder
	for _, c := range s.Commands {
		if c, ok := c.(interface{ String() string }); ok {
			b.WriteString(c.String())
			b.WriteByte('\n')
		}
	}
	return b.String()
}
