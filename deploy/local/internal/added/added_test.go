package added_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/deploy/local/internal/added"
)

// TestEmbeddedListParses: the list the launcher is built with is valid.
func TestEmbeddedListParses(t *testing.T) {
	if _, err := added.Services(); err != nil {
		t.Fatalf("%s: %v", added.File, err)
	}
}

func TestParse(t *testing.T) {
	got, err := added.Parse("# comment\n\nshipping 4\n  loyalty   11  \n")
	if err != nil {
		t.Fatal(err)
	}
	want := []added.Service{{Name: "shipping", PortOffset: 4}, {Name: "loyalty", PortOffset: 11}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
	}{
		{"one field", "shipping\n", "want <name> <port offset>"},
		{"three fields", "shipping 4 5\n", "want <name> <port offset>"},
		{"capitals", "Shipping 4\n", "is not a lowercase letter"},
		{"hyphen", "ship-ping 4\n", "is not a lowercase letter"},
		{"keyword", "func 4\n", "Go keyword"},
		{"built-in name", "order 4\n", "built-in process"},
		{"twice", "shipping 4\nshipping 5\n", "listed twice"},
		{"built-in offset", "shipping 10\n", "port offset 10 is psp's"},
		{"offset taken", "shipping 4\nloyalty 4\n", "port offset 4 is shipping's"},
		{"negative offset", "shipping -1\n", "not a whole number"},
		{"not a number", "shipping four\n", "not a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := added.Parse(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.text, err, tt.wantErr)
			}
		})
	}
}

func TestOffsets(t *testing.T) {
	tests := []struct {
		name     string
		services []added.Service
		wantNext int
		wantMax  int
	}{
		{"none added", nil, 4, 10},
		{"one added", []added.Service{{"shipping", 4}}, 5, 10},
		{"4 to 9 taken", []added.Service{{"a", 4}, {"b", 5}, {"c", 6}, {"d", 7}, {"e", 8}, {"f", 9}}, 11, 10},
		{"beyond the simulator", []added.Service{{"a", 12}}, 4, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := added.NextOffset(tt.services); got != tt.wantNext {
				t.Errorf("NextOffset = %d, want %d", got, tt.wantNext)
			}
			if got := added.MaxOffset(tt.services); got != tt.wantMax {
				t.Errorf("MaxOffset = %d, want %d", got, tt.wantMax)
			}
		})
	}
}
