package database

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/microshop/microshop/pkg/logtest"
)

// TestQuietLogger: a fast statement that succeeded (or found no row) is not
// even rendered; a failed or slow one is logged at warn or error, without
// its values; at info every statement is.
func TestQuietLogger(t *testing.T) {
	tests := []struct {
		name      string
		level     logger.LogLevel
		took      time.Duration
		err       error
		wantSQL   bool   // fc called
		wantInLog string // "" for no line
	}{
		{"fast", logger.Warn, time.Millisecond, nil, false, ""},
		{"no row", logger.Warn, time.Millisecond, gorm.ErrRecordNotFound, false, ""},
		{"failed", logger.Warn, time.Millisecond, errors.New("duplicate key"), true, `"level":"ERROR"`},
		{"slow", logger.Warn, time.Second, nil, true, `"level":"WARN"`},
		{"info logs all", logger.Info, time.Millisecond, nil, true, `"level":"INFO"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf logtest.Buffer
			l := newLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).LogMode(tt.level)
			called := false
			fc := func() (string, int64) { called = true; return "INSERT INTO cards VALUES ($1)", 1 }
			l.Trace(context.Background(), time.Now().Add(-tt.took), fc, tt.err)
			if called != tt.wantSQL {
				t.Errorf("statement rendered = %v, want %v", called, tt.wantSQL)
			}
			got := buf.String()
			if tt.wantInLog == "" && got != "" || tt.wantInLog != "" && !strings.Contains(got, tt.wantInLog) {
				t.Errorf("log = %q, want a line with %q (none if empty)", got, tt.wantInLog)
			}
		})
	}
}
