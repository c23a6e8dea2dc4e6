package checkoutv1_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckGeneratedBites runs proto/check-generated.sh, the staleness check
// of `make lint`, on copies of proto/ changed the ways generated code goes
// stale, and requires it to fail on each and pass on the unchanged copy.
func TestCheckGeneratedBites(t *testing.T) {
	protoDir, err := filepath.Abs("../../..") // this package is proto/microshop/checkout/v1
	if err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(filepath.Dir(protoDir), ".run", "tools")
	for _, tool := range []string{"buf", "protoc-gen-go"} {
		if _, err := os.Stat(filepath.Join(tools, tool)); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("%s not built (run make tools): %v", tool, err)
			}
			t.Fatalf("%s not built: %v", tool, err)
		}
	}
	const pkg = "microshop/checkout/v1"

	tests := []struct {
		name       string
		edit       func(t *testing.T, dir string)
		wantFail   bool
		wantOutput string
	}{
		{"committed code unchanged", func(*testing.T, string) {}, false, ""},
		{"generated file edited by hand",
			appendTo(pkg+"/envelope.pb.go", "\n// edited by hand\n"), true,
			"proto/" + pkg + "/envelope.pb.go: differs from the generated code"},
		{".proto changed without regenerating",
			replaceIn(pkg+"/order.proto", "message OrderConfirmed {\n", "message OrderConfirmed {\n  // When.\n  string note = 2;\n"), true,
			"proto/" + pkg + "/order.pb.go: differs from the generated code"},
		{"generated file missing",
			remove(pkg + "/money.pb.go"), true,
			"proto/" + pkg + "/money.pb.go: missing"},
		{"generated file of a deleted .proto left behind",
			appendTo(pkg+"/refund.pb.go", "package checkoutv1\n"), true,
			"proto/" + pkg + "/refund.pb.go: generated from no .proto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The copy sits where buf.gen.yaml expects it: a proto/ next to
			// .run/tools.
			root := t.TempDir()
			dir := filepath.Join(root, "proto")
			if err := os.CopyFS(dir, os.DirFS(protoDir)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(root, ".run"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tools, filepath.Join(root, ".run", "tools")); err != nil {
				t.Fatal(err)
			}
			tt.edit(t, dir)

			cmd := exec.Command("bash", "proto/check-generated.sh", "proto")
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Fatalf("check-generated.sh failed = %t, want %t; error %v, output:\n%s", failed, tt.wantFail, err, out)
			}
			if !tt.wantFail {
				return
			}
			for _, want := range []string{tt.wantOutput, "run make proto"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("check-generated.sh output does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// appendTo returns an edit that appends text to the file at path in the copy,
// creating it if need be.
func appendTo(path, text string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, err := os.OpenFile(filepath.Join(dir, path), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// replaceIn returns an edit that replaces old, which must occur, by new in
// the file at path in the copy.
func replaceIn(path, old, new string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s does not contain %q", path, old)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// remove returns an edit that deletes the file at path in the copy.
func remove(path string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, path)); err != nil {
			t.Fatal(err)
		}
	}
}
