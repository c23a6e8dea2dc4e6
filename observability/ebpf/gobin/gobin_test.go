package gobin_test

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/microshop/microshop/observability/ebpf/gobin"
	"github.com/microshop/microshop/observability/ebpf/internal/targettest"
)

func TestReadHTTPServer(t *testing.T) {
	exe := targettest.Build(t, t.TempDir(), "httptarget")
	got, err := gobin.ReadHTTPServer(exe)
	if err != nil {
		t.Fatal(err)
	}

	// The toolchain running this test built the target, so reflect knows
	// the exported fields' offsets; the go tool's own disassembler and
	// symbol table find the RET instructions and the itab independently.
	start, jbe, rets := objdumpReturns(t, exe, gobin.ServeHTTP)
	want := gobin.HTTPServer{
		GoVersion:      goVersion(t),
		Entry:          jbe,
		Returns:        rets,
		RequestMethod:  fieldOffset(t, reflect.TypeFor[http.Request](), "Method"),
		RequestURL:     fieldOffset(t, reflect.TypeFor[http.Request](), "URL"),
		URLPath:        fieldOffset(t, reflect.TypeFor[url.URL](), "Path"),
		ResponseStatus: got.ResponseStatus, // unexported: checked below and by the probe's agreement test
		ResponseItab:   symbolAddress(t, exe, "go:itab.*net/http.response,net/http.ResponseWriter"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadHTTPServer (-want +got):\n%s", diff)
	}
	if got.ResponseStatus == 0 {
		t.Error("ResponseStatus = 0, net/http.response does not start with status")
	}
	if got.Entry == 0 {
		t.Error("Entry = 0: ServeHTTP does not open with the stack check's JBE")
	}
	t.Logf("%s at %#x: entry probe at +%d, returns at %v", gobin.ServeHTTP, start, got.Entry, got.Returns)
}

func TestReadHTTPServerRefuses(t *testing.T) {
	dir := t.TempDir()
	stripped := filepath.Join(dir, "stripped")
	build(t, "github.com/microshop/microshop/observability/ebpf/internal/httptarget", stripped, "-ldflags=-w")
	noServer := filepath.Join(dir, "noserver")
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build(t, main, noServer)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, exe string
		want      error
	}{
		{"not Go", sh, gobin.ErrNotGo},
		{"no net/http server", noServer, gobin.ErrNoHTTPServer},
		{"no DWARF", stripped, gobin.ErrNoDWARF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gobin.ReadHTTPServer(tt.exe)
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadHTTPServer(%s) = %v, want %v", tt.exe, err, tt.want)
			}
		})
	}
}

func build(t *testing.T, pkg, out string, flags ...string) {
	t.Helper()
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func goVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func fieldOffset(t *testing.T, typ reflect.Type, name string) uint64 {
	t.Helper()
	f, ok := typ.FieldByName(name)
	if !ok {
		t.Fatalf("%v has no field %s", typ, name)
	}
	return uint64(f.Offset)
}

// objdumpReturns lists fn's start, the offset of its first JBE (the stack
// check's) and the offsets of its RET instructions, as go tool objdump
// prints them.
func objdumpReturns(t *testing.T, exe, fn string) (start, jbe uint64, rets []uint64) {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+strings.ReplaceAll(fn, ".", `\.`)+"$", exe).Output()
	if err != nil {
		t.Fatalf("go tool objdump: %v", err)
	}
	// "  server.go:3312\t0x63cb73\t\tc3\t\t\tRET\t\t"
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		cols := strings.Fields(sc.Text())
		if len(cols) < 4 || !strings.HasPrefix(cols[1], "0x") {
			continue
		}
		addr, err := strconv.ParseUint(cols[1], 0, 64)
		if err != nil {
			t.Fatalf("objdump line %q: %v", sc.Text(), err)
		}
		if start == 0 {
			start = addr
		}
		if jbe == 0 && cols[3] == "JBE" && addr > start {
			jbe = addr - start
		}
		if cols[len(cols)-1] == "RET" {
			rets = append(rets, addr-start)
		}
	}
	if start == 0 {
		t.Fatalf("go tool objdump printed no %s:\n%s", fn, out)
	}
	return start, jbe, rets
}

func symbolAddress(t *testing.T, exe, name string) uint64 {
	t.Helper()
	out, err := exec.Command("go", "tool", "nm", exe).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == name {
			addr, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return addr
		}
	}
	t.Fatalf("go tool nm: no %s", name)
	return 0
}
