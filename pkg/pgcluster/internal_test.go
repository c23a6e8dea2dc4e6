package pgcluster

import (
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewestFirst(t *testing.T) {
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{
			name: "numeric order, not lexical",
			dirs: []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/10/bin"},
			want: []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/10/bin", "/usr/lib/postgresql/9.6/bin"},
		},
		{
			name: "minor versions",
			dirs: []string{"/usr/lib/postgresql/9.4/bin", "/usr/lib/postgresql/9.10/bin"},
			want: []string{"/usr/lib/postgresql/9.10/bin", "/usr/lib/postgresql/9.4/bin"},
		},
		{
			name: "non-numeric versions dropped",
			dirs: []string{"/usr/lib/postgresql/old/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/16beta/bin"},
			want: []string{"/usr/lib/postgresql/16/bin"},
		},
		{
			name: "none",
			dirs: nil,
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newestFirst(tt.dirs)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("newestFirst(%q) (-want +got):\n%s", tt.dirs, diff)
			}
		})
	}
}

// TestShellQuote checks that sh reads a quoted word back as the original,
// which is what pg_ctl relies on when it passes -o to the server.
func TestShellQuote(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "plain", in: "unix_socket_directories=/tmp/pgcluster-1"},
		{name: "empty value", in: "unix_socket_directories="},
		{name: "space", in: "unix_socket_directories=/tmp/my dir"},
		{name: "single quote", in: "unix_socket_directories=/tmp/it's"},
		{name: "shell syntax", in: `a"b$c;d` + "`e`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), "sh", "-c", "printf %s "+shellQuote(tt.in)).Output()
			if err != nil {
				t.Fatalf("run sh: %v", err)
			}
			if got := string(out); got != tt.in {
				t.Errorf("sh read shellQuote(%q) as %q", tt.in, got)
			}
		})
	}
}
