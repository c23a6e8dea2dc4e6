package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNativePrometheusConfigIsCurrent: observability/prometheus/native.yml,
// which promtool checks in observability/prometheus, is what the launcher
// writes for its default ports. With -update it writes the file.
func TestNativePrometheusConfigIsCurrent(t *testing.T) {
	// The processes of the default flags, in the order run starts them.
	targets := []scrapeTarget{
		{job: "psp", addr: "127.0.0.1:8090"},
		{job: "inventory", addr: "127.0.0.1:8082"},
		{job: "payment", addr: "127.0.0.1:8083"},
		{job: "order", addr: "127.0.0.1:8081"},
		{job: "gateway", addr: "127.0.0.1:8080"},
	}
	got := prometheusConfig(targets, "rules/*.yml", "127.0.0.1:9090")
	file := filepath.Join("..", "..", "..", "..", "observability", "prometheus", "native.yml")
	if os.Getenv("UPDATE_NATIVE_PROMETHEUS") != "" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is not what the launcher writes for its default ports; rerun this test with UPDATE_NATIVE_PROMETHEUS=1:\n%s", file, got)
	}
}
