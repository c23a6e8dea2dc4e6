package labs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/microshop/microshop/deploy/local/internal/labs"
	"github.com/microshop/microshop/pkg/servicetest"
)

// TestEveryLabHasItsFolder: each lab of All has a unique number, its
// folder under labs/ with a README that names its check, and a row in the
// index, labs/README.md.
func TestEveryLabHasItsFolder(t *testing.T) {
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(root, "labs", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, lab := range labs.All() {
		if seen[lab.Number] {
			t.Errorf("lab %d: listed twice in All", lab.Number)
		}
		seen[lab.Number] = true
		if lab.Check == nil || lab.Title == "" {
			t.Errorf("lab %d: no check or no title", lab.Number)
		}
		readme, err := os.ReadFile(filepath.Join(root, "labs", lab.Dir, "README.md"))
		if err != nil {
			t.Errorf("lab %d: %v", lab.Number, err)
			continue
		}
		check := "make lab-" + strconv.Itoa(lab.Number) + "-check"
		if !strings.Contains(string(readme), check) {
			t.Errorf("labs/%s/README.md never says %q", lab.Dir, check)
		}
		row := regexp.MustCompile(`(?m)^\| *` + strconv.Itoa(lab.Number) + ` *\| *\[[^]]*\]\(` + regexp.QuoteMeta(lab.Dir) + `/`)
		if !row.Match(index) {
			t.Errorf("labs/README.md has no row for lab %d linking %s/", lab.Number, lab.Dir)
		}
	}
}
