package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"go/types"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"

	"github.com/microshop/microshop/deploy/local/internal/added"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// templates mirror the tree of services/<name>: a path segment NAME is the
// service's name, RECORDS its records' plural, and ".tmpl" is dropped.
//
//go:embed all:template
var templates embed.FS

// portBase is the launcher's default -port-base: the gateway's port.
const portBase = 8080

// spec is what the templates are executed with.
type spec struct {
	Name   string // shipping
	Prefix string // SHIPPING, its variables' prefix without the underscore

	Record       string // shipment
	RecordTitle  string // Shipment
	Records      string // shipments
	RecordsTitle string // Shipments

	Topic     string // the order events' topic
	GoVersion string // go.work's go version
	Offset    int    // port offset from the launcher's -port-base
	Port      int    // portBase + Offset
}

// reserved are the names a service or its records may not take, and why.
func reserved() map[string]string {
	why := map[string]string{}
	for name := range added.Builtin() {
		why[name] = "a service of the shop"
	}
	for _, name := range []string{"broker", "consul", "jaeger", "prometheus", "probe", "postgres", "launcher", "chaos", "bench", "newservice"} {
		why[name] = "a program of the native stack"
	}
	// The generated code's packages, imports and identifiers: a service
	// or record named so would not compile, or shadow one of them.
	for _, name := range []string{
		"cmd", "internal", "main", "db", "httpapi", "kafkaapi", "migrations", "checkoutv1", "config", "logging",
		"process", "sagaservice", "database", "messaging", "problem", "health", "outbox", "poll", "servicetest",
		"kafkatest", "pgtest", "context", "errors", "fmt", "io", "slog", "os", "time", "http", "json", "filepath",
		"regexp", "strconv", "strings", "testing", "embed", "gin", "kafka", "gorm", "clause", "uuid", "cmp",
		"timestamppb", "run", "cfg", "err", "log", "svc", "events", "ctx", "getenv", "stdout", "row", "insert",
		"msg", "event", "confirmed", "ok", "id", "handler", "service", "store", "status", "broker", "cluster",
		"databases", "env", "ready", "want", "got", "order", "missing", "metrics", "dead", "msgs", "value",
		"values", "resp", "body", "url", "series", "loadconfig",
	} {
		if _, ok := why[name]; !ok {
			why[name] = "a name the generated code uses"
		}
	}
	return why
}

// checkName reports why name cannot name a service or record, or nil.
func checkName(name string) error {
	if err := added.ValidName(name); err != nil {
		return err
	}
	if len(name) < 2 {
		return fmt.Errorf("%q is shorter than 2 characters", name)
	}
	if why, ok := reserved()[name]; ok {
		return fmt.Errorf("%q is taken: %s", name, why)
	}
	if types.Universe.Lookup(name) != nil {
		return fmt.Errorf("%q is predeclared in Go", name)
	}
	return nil
}

// newSpec checks name and record and returns the spec of their service.
func newSpec(name, record string) (spec, error) {
	if err := checkName(name); err != nil {
		return spec{}, fmt.Errorf("-name (NAME): %w", err)
	}
	if err := checkName(record); err != nil {
		return spec{}, fmt.Errorf("-record (RECORD): %w", err)
	}
	records := plural(record)
	if err := checkName(records); err != nil {
		return spec{}, fmt.Errorf("-record (RECORD): its plural %w", err)
	}
	if records == name {
		return spec{}, fmt.Errorf("-record (RECORD): its plural %q is the service's name", records)
	}
	return spec{
		Name: name, Prefix: strings.ToUpper(name),
		Record: record, RecordTitle: title(record), Records: records, RecordsTitle: title(records),
		Topic: checkoutv1.TopicOrderEvents,
	}, nil
}

// plural is English's regular plural of a lowercase noun: shipment →
// shipments, delivery → deliveries, box → boxes.
func plural(noun string) string {
	switch {
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"), strings.HasSuffix(noun, "z"),
		strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	}
	return noun + "s"
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// render executes every template with s and returns the files of
// services/<name> by slash-separated path; Go files gofmt-formatted.
func render(s spec) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(templates, "template", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		text, err := fs.ReadFile(templates, name)
		if err != nil {
			return err
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, s); err != nil {
			return err
		}
		out := strings.TrimSuffix(strings.TrimPrefix(name, "template/"), ".tmpl")
		var segments []string
		for _, seg := range strings.Split(out, "/") {
			seg = strings.ReplaceAll(seg, "RECORDS", s.Records)
			segments = append(segments, strings.ReplaceAll(seg, "NAME", s.Name))
		}
		out = path.Join(segments...)
		content := b.Bytes()
		if strings.HasSuffix(out, ".go") {
			if content, err = format.Source(content); err != nil {
				return fmt.Errorf("%s: %w", name, err) // a template that is not Go: a bug here
			}
		}
		files[out] = content
		return nil
	})
	return files, err
}

// dockerfileCopy matches the Dockerfile's copy of a service's go.mod and
// go.sum into the download layer.
var dockerfileCopy = regexp.MustCompile(`(?m)^COPY services/[a-z0-9]+/go\.mod services/[a-z0-9]+/go\.sum services/[a-z0-9]+/\n`)

// withDockerfileCopy returns dockerfile with the copy of name's go.mod and
// go.sum after the last service's.
func withDockerfileCopy(dockerfile []byte, name string) ([]byte, error) {
	all := dockerfileCopy.FindAllIndex(dockerfile, -1)
	if len(all) == 0 {
		return nil, errors.New("the Dockerfile has no line COPY services/<name>/go.mod services/<name>/go.sum services/<name>/ to add the new service's after")
	}
	at := all[len(all)-1][1]
	line := fmt.Sprintf("COPY services/%[1]s/go.mod services/%[1]s/go.sum services/%[1]s/\n", name)
	return slices.Concat(dockerfile[:at], []byte(line), dockerfile[at:]), nil
}

// generate writes services/<s.Name> under root and registers it (see the
// command's doc). A failed step undoes the ones before it.
func generate(ctx context.Context, root string, s spec, stdout io.Writer) (err error) {
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	read := func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(root, filepath.FromSlash(rel))) }
	goWork, err := read("go.work")
	if err != nil {
		return fmt.Errorf("%w (-root must be the repository's root)", err)
	}
	work, err := modfile.ParseWork("go.work", goWork, nil)
	if err != nil {
		return err
	}
	if work.Go == nil {
		return errors.New("go.work has no go version")
	}
	s.GoVersion = work.Go.Version
	dir := "services/" + s.Name
	for _, use := range work.Use {
		if path.Clean(use.Path) == dir {
			return fmt.Errorf("go.work uses ./%s already", dir)
		}
	}
	list, err := read(added.File)
	if err != nil {
		return err
	}
	services, err := added.Parse(string(list))
	if err != nil {
		return fmt.Errorf("%s: %w", added.File, err)
	}
	for _, a := range services {
		if a.Name == s.Name {
			return fmt.Errorf("%s lists %s already", added.File, s.Name)
		}
	}
	s.Offset = added.NextOffset(services)
	s.Port = portBase + s.Offset
	newList := append(bytes.TrimRight(slices.Clone(list), "\n"), '\n')
	newList = append(newList, added.Service{Name: s.Name, PortOffset: s.Offset}.Line()...)
	if _, err := added.Parse(string(newList)); err != nil {
		return fmt.Errorf("%s with %s: %w", added.File, s.Name, err)
	}
	dockerfile, err := read("Dockerfile")
	if err != nil {
		return err
	}
	newDockerfile, err := withDockerfileCopy(dockerfile, s.Name)
	if err != nil {
		return err
	}
	files, err := render(s)
	if err != nil {
		return fmt.Errorf("render the templates: %w", err)
	}

	// From here on the repository changes; undo reverts it on failure.
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		for _, u := range slices.Backward(undo) {
			err = errors.Join(err, u())
		}
	}()
	serviceDir := filepath.Join(root, filepath.FromSlash(dir))
	if err := os.Mkdir(serviceDir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: not overwriting it", dir)
		}
		return err
	}
	undo = append(undo, func() error { return os.RemoveAll(serviceDir) })
	for _, name := range slices.Sorted(maps.Keys(files)) {
		file := filepath.Join(serviceDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, files[name], 0o644); err != nil {
			return err
		}
	}
	// The go command is the authority on go.mod, go.sum and go.work. The
	// tidy runs outside the workspace, as make lint checks it: it adds
	// what pkg and proto require at their versions, nothing newer.
	if err := goCommand(ctx, serviceDir, []string{"GOWORK=off"}, "mod", "tidy"); err != nil {
		return err
	}
	restore := func(rel string, content []byte) func() error {
		return func() error { return os.WriteFile(filepath.Join(root, filepath.FromSlash(rel)), content, 0o644) }
	}
	undo = append(undo, restore("go.work", goWork))
	if err := goCommand(ctx, root, nil, "work", "use", "./"+dir); err != nil {
		return err
	}
	undo = append(undo, restore(added.File, list))
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(added.File)), newList, 0o644); err != nil {
		return err
	}
	undo = append(undo, restore("Dockerfile", dockerfile))
	if err := os.WriteFile(filepath.Join(root, "Dockerfile"), newDockerfile, 0o644); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "created %s/ (%d files): the %s service, one %s per confirmed order\n", dir, len(files), s.Name, s.Record)
	fmt.Fprintf(stdout, "added ./%s to go.work, \"%s %d\" to %s, its go.mod to the Dockerfile\n", dir, s.Name, s.Offset, added.File)
	fmt.Fprintf(stdout, "next: make run (or make run-full), then GET http://127.0.0.1:%d/v1/%s/<order id> once an order is confirmed;\n", s.Port, s.Records)
	fmt.Fprintf(stdout, "      go test ./%s/... runs its wiring test; %s/README.md says what it does\n", dir, dir)
	return nil
}

// goCommand runs the go command in dir with env added, failing with its
// output.
func goCommand(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}
