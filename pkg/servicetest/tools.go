package servicetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Require skips the test when err says a real dependency (what, e.g.
// "jaeger") is missing, or fails it under CI (CI set):
// a test that needs a real part never passes silently without it there.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skipf("%s unavailable (set CI=true to fail instead): %v", what, err)
	}
	t.Fatalf("%s unavailable: %v", what, err)
}

// Tool returns the path of the program name that make builds into
// .run/tools at the root of the repository, or the path in the variable
// envVar if set, after Require: build, e.g. "make slow-tools", is named
// in the message when it is missing.
func Tool(t testing.TB, name, envVar, build string) string {
	t.Helper()
	bin := os.Getenv(envVar)
	var err error
	if bin == "" {
		var root string
		if root, err = RepoRoot(); err == nil {
			bin = filepath.Join(root, ".run", "tools", name)
		}
	}
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		err = fmt.Errorf("%w (%s builds it)", err, build)
	}
	Require(t, name, err)
	return bin
}

// RepoRoot returns the closest directory above the working directory that
// holds go.work: the root of the repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}
