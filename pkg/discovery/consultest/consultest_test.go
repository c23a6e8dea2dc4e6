package consultest_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/discovery/consultest"
)

func TestStart(t *testing.T) {
	consul := consultest.Start(t)
	host, _, err := net.SplitHostPort(consul.Addr)
	if err != nil {
		t.Fatalf("SplitHostPort(%q): %v", consul.Addr, err)
	}
	if host != "127.0.0.1" {
		t.Errorf("agent listens on %s, want 127.0.0.1 only", host)
	}
	kv := consul.Client().KV()
	if _, err := kv.Put(&api.KVPair{Key: "microshop/test", Value: []byte("1")}, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	pair, _, err := kv.Get("microshop/test", nil)
	if err != nil || pair == nil || string(pair.Value) != "1" {
		t.Fatalf("get = %v, %v; want the value put", pair, err)
	}
	self, err := consul.Client().Agent().Self()
	if err != nil {
		t.Fatalf("agent self: %v", err)
	}
	// -dev, and the UI off as DESIGN.md runs it.
	config := self["DebugConfig"]
	if got := fmt.Sprint(config["DevMode"]); got != "true" {
		t.Errorf("DevMode = %s, want true", got)
	}
	if got := fmt.Sprint(config["UIConfig"].(map[string]any)["Enabled"]); got != "false" {
		t.Errorf("UI enabled = %s, want false", got)
	}
	if got := fmt.Sprint(config["DisableUpdateCheck"]); got != "true" {
		t.Errorf("DisableUpdateCheck = %s, want true", got)
	}
}

func TestStopRestart(t *testing.T) {
	consul := consultest.Start(t)
	client := consul.Client()
	if _, err := client.KV().Put(&api.KVPair{Key: "k", Value: []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	consul.Stop()
	if _, _, err := client.KV().Get("k", nil); err == nil {
		t.Errorf("get from a stopped agent succeeded")
	}
	consul.Restart()
	pair, _, err := client.KV().Get("k", nil)
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if pair != nil {
		t.Errorf("a restarted dev agent still holds %s=%s, want nothing", pair.Key, pair.Value)
	}
}

// TestMissingBinary checks the contract with CI: without the binary a test
// skips on a developer machine and fails under CI.
func TestMissingBinary(t *testing.T) {
	tests := []struct {
		name string
		ci   string
		want string
	}{
		{name: "developer machine", ci: "", want: "skip: consul unavailable"},
		{name: "CI", ci: "true", want: "fatal: consul unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONSUL_BIN", t.TempDir()+"/no-consul")
			t.Setenv("CI", tt.ci)
			got := outcome(func(tb testing.TB) { consultest.Start(tb) })
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("Start without the binary: %q, want it to start with %q", got, tt.want)
			}
		})
	}
}

// stop ends a recordingT's test function, as t.Fatalf's runtime.Goexit
// would.
type stop struct{ how string }

// recordingT is a testing.TB that records how the test ended.
type recordingT struct{ testing.TB }

func (recordingT) Helper()        {}
func (recordingT) Cleanup(func()) {}
func (recordingT) Skipf(format string, args ...any) {
	panic(stop{"skip: " + fmt.Sprintf(format, args...)})
}
func (recordingT) Fatalf(format string, args ...any) {
	panic(stop{"fatal: " + fmt.Sprintf(format, args...)})
}

// outcome runs f with a recordingT and returns how it ended.
func outcome(f func(testing.TB)) (how string) {
	defer func() {
		if s, ok := recover().(stop); ok {
			how = s.how
		}
	}()
	f(recordingT{})
	return "returned"
}
