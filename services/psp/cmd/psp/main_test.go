package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
)

// TestRun runs the simulator in-process and charges a card through it.
func TestRun(t *testing.T) {
	env := map[string]string{"PSP_HTTP_ADDR": servicetest.FreeAddr(t), "PSP_HANG": "1h"}
	svc := servicetest.Start(t, run, env, "PSP_HTTP_ADDR")

	var ready health.Report
	getJSON(t, svc.URL+"/readyz", http.StatusOK, &ready)
	if diff := cmp.Diff(health.Report{Status: health.StatusReady, Checks: map[string]health.Result{}}, ready); diff != "" {
		t.Errorf("readiness mismatch (-want +got):\n%s", diff)
	}

	charge := func(key, card string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, svc.URL+"/v1/charges",
			strings.NewReader(`{"amount":1999,"currency":"EUR","card_number":"`+card+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		return http.DefaultClient.Do(req)
	}
	resp, err := charge("wiring-1", "4242424242424242")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Status string }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || got.Status != "succeeded" {
		t.Fatalf("charge = %d %+v (%v), want 201 succeeded", resp.StatusCode, got, err)
	}
	getJSON(t, svc.URL+"/v1/charges?idempotency_key=wiring-1", http.StatusOK, &got)

	// A charge of the hanging card is held for PSP_HANG (an hour here);
	// stopping the service releases it, so the drain still succeeds.
	held := make(chan int, 1)
	go func() {
		resp, err := charge("wiring-hang", "4000000000000259")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	poll.Until(wait, t, "the held charge recorded", func() bool {
		resp, err := http.Get(svc.URL + "/v1/charges?idempotency_key=wiring-hang")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	if err := svc.Stop(); err != nil {
		t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
	}
	if code := <-held; code != http.StatusCreated {
		t.Errorf("held charge answered %d at shutdown, want 201", code)
	}
	if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
		t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
	}
}

func getJSON(t *testing.T, url string, wantStatus int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"PSP_HTTP_ADDR":        "nowhere",
		"PSP_SHUTDOWN_TIMEOUT": "soon",
		"PSP_LOG_LEVEL":        "chatty",
		"PSP_HANG":             "-1s",
	})
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "PSP_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}
