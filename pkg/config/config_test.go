package config_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/config"
)

type settings struct {
	Name     string
	Workers  int
	Timeout  time.Duration
	Addr     string
	Brokers  []string
	Database string
	Level    slog.Level
	Crash    float64
}

func read(env map[string]string) (settings, error) {
	r := config.New(func(k string) string { return env[k] }, "SVC_")
	s := settings{
		Name:     r.String("NAME", "svc"),
		Workers:  r.Int("WORKERS", 4, 1, 64),
		Timeout:  r.Duration("TIMEOUT", 5*time.Second),
		Addr:     r.Addr("ADDR", "127.0.0.1:8080"),
		Brokers:  r.Addrs("BROKERS", []string{"127.0.0.1:9092"}),
		Database: r.URL("DATABASE_URL", "sqlite:svc.db", "sqlite", "postgres"),
		Level:    r.LogLevel("LOG_LEVEL", slog.LevelInfo),
		Crash:    r.Probability("CRASH", 0),
	}
	return s, r.Err()
}

func TestReaderDefaultsAndValues(t *testing.T) {
	defaults := settings{
		Name: "svc", Workers: 4, Timeout: 5 * time.Second, Addr: "127.0.0.1:8080",
		Brokers: []string{"127.0.0.1:9092"}, Database: "sqlite:svc.db", Level: slog.LevelInfo,
	}
	tests := []struct {
		name string
		env  map[string]string
		want settings
	}{
		{name: "empty environment gives defaults", env: nil, want: defaults},
		{name: "blank values count as unset", env: map[string]string{"SVC_NAME": "  ", "SVC_WORKERS": ""}, want: defaults},
		{
			name: "every variable set",
			env: map[string]string{
				"SVC_NAME": "orders", "SVC_WORKERS": "8", "SVC_TIMEOUT": "250ms", "SVC_ADDR": ":0",
				"SVC_BROKERS": "a:1, b:2", "SVC_DATABASE_URL": "postgres://u:p@h:5432/db", "SVC_LOG_LEVEL": "debug", "SVC_CRASH": "0.25",
			},
			want: settings{
				Name: "orders", Workers: 8, Timeout: 250 * time.Millisecond, Addr: ":0",
				Brokers: []string{"a:1", "b:2"}, Database: "postgres://u:p@h:5432/db", Level: slog.LevelDebug, Crash: 0.25,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.env)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		key, value string
		wantInErr  string
	}{
		{"SVC_WORKERS", "many", `SVC_WORKERS: "many" is not an integer from 1 to 64`},
		{"SVC_WORKERS", "0", `SVC_WORKERS: "0" is not an integer from 1 to 64`},
		{"SVC_TIMEOUT", "ten", `SVC_TIMEOUT: "ten" is not a positive duration`},
		{"SVC_TIMEOUT", "-1s", `SVC_TIMEOUT: "-1s" is not a positive duration`},
		{"SVC_ADDR", "localhost", `SVC_ADDR: "localhost" is not a host:port address`},
		{"SVC_ADDR", "h:99999", `SVC_ADDR: "h:99999" is not a host:port address`},
		{"SVC_BROKERS", "a:1,,b:2", `SVC_BROKERS: "a:1,,b:2" is not a comma-separated list`},
		{"SVC_DATABASE_URL", "mysql://secret@h/db", `SVC_DATABASE_URL: is not a URL with scheme sqlite, postgres`},
		{"SVC_LOG_LEVEL", "loud", `SVC_LOG_LEVEL: "loud" is not a log level`},
		{"SVC_CRASH", "1.5", `SVC_CRASH: "1.5" is not a probability from 0 to 1`},
		{"SVC_CRASH", "NaN", `SVC_CRASH: "NaN" is not a probability from 0 to 1`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := read(map[string]string{tt.key: tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
}

func TestReaderReportsEveryProblem(t *testing.T) {
	_, err := read(map[string]string{"SVC_WORKERS": "x", "SVC_TIMEOUT": "y"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, key := range []string{"SVC_WORKERS", "SVC_TIMEOUT"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

func TestURLErrorDoesNotLeakPassword(t *testing.T) {
	_, err := read(map[string]string{"SVC_DATABASE_URL": "mysql://user:hunter2@h/db"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v, want an error without the password", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://user:hunter2@h:5432/db", "postgres://user:xxxxx@h:5432/db"},
		{"postgres://user@h/db", "postgres://user@h/db"},
		{"sqlite:.run/order.db", "sqlite:.run/order.db"},
		{"::bad", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := config.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckNamesTheVariable(t *testing.T) {
	r := config.New(func(string) string { return "" }, "SVC_")
	r.Check("RULES", nil)
	if err := r.Err(); err != nil {
		t.Fatalf("Check(nil) recorded %v", err)
	}
	r.Check("RULES", errors.New("decode: unexpected EOF"))
	if err := r.Err(); err == nil || err.Error() != "SVC_RULES: decode: unexpected EOF" {
		t.Errorf("Err() = %v, want SVC_RULES: decode: unexpected EOF", err)
	}
}
