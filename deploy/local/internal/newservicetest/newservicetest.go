// Package newservicetest gives the tests of make new-service
// (deploy/local/cmd/newservice) and of the workshop's lab 10 a place to
// generate a service without touching the repository.
package newservicetest

import (
	"os"
	"path"
	"path/filepath"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/pkg/servicetest"
)

// Root returns a new directory that make new-service can generate into as
// into the repository, removed at the test's end: a go.work using the
// repository's pkg and proto by absolute path (so that their packages,
// compiled for the repository's own tests, come from the build cache) with
// the repository's replace directives; copies of the Dockerfile and of the
// launcher's list; pkg and proto linked where a generated go.mod's replace
// directives (for its tidy outside the workspace) look for them; an empty
// services/. The other modules are left out: their replace directives
// would conflict with the generated one's.
func Root(t testing.TB) string {
	t.Helper()
	repo, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	text, err := os.ReadFile(filepath.Join(repo, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	work, err := modfile.ParseWork("go.work", text, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uses []*modfile.Use
	for _, use := range work.Use {
		if dir := path.Clean(use.Path); dir == "pkg" || dir == "proto" {
			uses = append(uses, &modfile.Use{Path: filepath.Join(repo, dir), ModulePath: use.ModulePath})
		}
	}
	if len(uses) != 2 {
		t.Fatalf("go.work uses %v, want pkg and proto among them", work.Use)
	}
	work.SetUse(uses)
	files := map[string][]byte{"go.work": modfile.Format(work.Syntax)}
	for _, name := range []string{"Dockerfile", added.File} {
		if files[name], err = os.ReadFile(filepath.Join(repo, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		file := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"pkg", "proto"} {
		if err := os.Symlink(filepath.Join(repo, dir), filepath.Join(root, dir)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}
