package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
)

// TestRun wires the gateway in-process behind a real listener.
func TestRun(t *testing.T) {
	env := map[string]string{"GATEWAY_HTTP_ADDR": servicetest.FreeAddr(t)}
	svc := servicetest.Start(t, run, env, "GATEWAY_HTTP_ADDR")

	tests := []struct {
		path       string
		wantStatus int
		wantType   string
	}{
		{"/healthz", http.StatusOK, "application/json"},
		{"/readyz", http.StatusOK, "application/json"},
		{"/api/v1/nothing-here", http.StatusNotFound, problem.ContentType},
	}
	for _, tt := range tests {
		resp, err := http.Get(svc.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantType {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
		}
	}

	if err := svc.Stop(); err != nil {
		t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
	}
	if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
		t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	for _, key := range []string{"GATEWAY_HTTP_ADDR", "GATEWAY_SHUTDOWN_TIMEOUT", "GATEWAY_LOG_LEVEL"} {
		t.Run(key, func(t *testing.T) {
			getenv := func(k string) string {
				if k == key {
					return "not valid"
				}
				return ""
			}
			err := run(t.Context(), getenv, &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("run = %v, want an error naming %s", err, key)
			}
		})
	}
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "GATEWAY_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}
