package servicetest

import (
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CheckConfigDocumented fails the test unless the variables that load reads
// and the ones the README's configuration table lists (rows starting
// "| `PREFIX...`") are the same set, so the table cannot drift from the code.
func CheckConfigDocumented(t testing.TB, readme, prefix string, load func(getenv func(string) string) error) {
	t.Helper()
	var read []string
	if err := load(func(k string) string { read = append(read, k); return "" }); err != nil {
		t.Fatalf("load configuration with defaults: %v", err)
	}
	documented, err := DocumentedVars(readme, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range read {
		if !slices.Contains(documented, k) {
			t.Errorf("%s is read but not documented in %s", k, readme)
		}
	}
	for _, k := range documented {
		if !slices.Contains(read, k) {
			t.Errorf("%s is documented in %s but never read", k, readme)
		}
	}
	if len(read) == 0 {
		t.Error("load read no variables at all")
	}
}

// CheckConfigRejected runs run once per entry of bad, with only that
// variable set to its bad value, and fails unless run refuses to start with
// an error naming the variable.
func CheckConfigRejected(t *testing.T, run RunFunc, bad map[string]string) {
	t.Helper()
	for key, value := range bad {
		t.Run(key, func(t *testing.T) {
			getenv := func(k string) string {
				if k == key {
					return value
				}
				return ""
			}
			err := run(t.Context(), getenv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("run with %s=%q = %v, want an error naming %s", key, value, err, key)
			}
		})
	}
}

// DocumentedVars returns the variables named prefix* in the first column
// of readme's configuration table, in the order of its rows.
func DocumentedVars(readme, prefix string) ([]string, error) {
	text, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	var documented []string
	row := regexp.MustCompile("(?m)^\\| `(" + regexp.QuoteMeta(prefix) + "[A-Z0-9_]+)`")
	for _, m := range row.FindAllStringSubmatch(string(text), -1) {
		documented = append(documented, m[1])
	}
	return documented, nil
}
