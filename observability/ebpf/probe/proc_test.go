package probe

import "testing"

// TestNamed: PROBE_PROCESSES names an executable by its file name, any
// copy of it, or by its absolute path, that file only — so that a stack's
// probe does not count another stack's program of the same name.
func TestNamed(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		exe   string
		want  bool
	}{
		{"file name", []string{"gateway", "order"}, "/tmp/a/bin/gateway", true},
		{"another file name", []string{"gateway", "order"}, "/tmp/a/bin/inventory", false},
		{"the path", []string{"/tmp/a/bin/gateway"}, "/tmp/a/bin/gateway", true},
		{"the path, not clean", []string{"/tmp/a/./bin//gateway"}, "/tmp/a/bin/gateway", true},
		{"another stack's copy", []string{"/tmp/a/bin/gateway"}, "/tmp/b/bin/gateway", false},
		{"a relative path is a name", []string{"bin/gateway"}, "/tmp/a/bin/gateway", false},
		{"none", nil, "/tmp/a/bin/gateway", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := named(tt.names, tt.exe); got != tt.want {
				t.Errorf("named(%q, %q) = %v, want %v", tt.names, tt.exe, got, tt.want)
			}
		})
	}
}
