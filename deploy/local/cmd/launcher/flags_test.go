package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlagsReplicas(t *testing.T) {
	full := []string{"-mode", "full", "-consul", "consul"}
	o, err := parseFlags(append(full, "-replicas", "2"), io.Discard)
	if err != nil || o.replicas != 2 {
		t.Fatalf("parseFlags(-mode full -consul consul -replicas 2) = %d replicas, %v; want 2, nil", o.replicas, err)
	}
	if o, err := parseFlags(nil, io.Discard); err != nil || o.replicas != 1 {
		t.Errorf("default = %d replicas, %v; want 1", o.replicas, err)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		errHas string
	}{
		{"none", append(full, "-replicas", "0"), "-replicas: 0 is not from 1 to 9"},
		{"too many", append(full, "-replicas", "10"), "-replicas: 10 is not from 1 to 9"},
		{"SQLite files", []string{"-consul", "consul", "-replicas", "2"}, "-mode=full"},
		{"no Consul", []string{"-mode", "full", "-replicas", "2"}, "-consul"},
		{"ports past 65535", append(full, "-replicas", "3", "-port-base", "65400"), "leaves no port for replica 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.errHas)
			}
		})
	}
}
