package database

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// slowStatement is the duration beyond which a statement is logged.
const slowStatement = 200 * time.Millisecond

// newLogger returns GORM's slog logger for log: it logs, at warn, the
// statements that failed or took longer than slowStatement, never their
// values (they may be personal data).
func newLogger(log *slog.Logger) logger.Interface {
	inner := logger.NewSlogLogger(log, logger.Config{
		SlowThreshold:             slowStatement,
		LogLevel:                  logger.Warn,
		IgnoreRecordNotFoundError: true,
		ParameterizedQueries:      true,
	})
	return quietLogger{Interface: inner, level: logger.Warn}
}

// quietLogger skips GORM's logger for the statements it would not log.
// GORM's Trace renders every statement's SQL text with its values (the
// callback fc) before it decides whether to log it: at saturation that was
// 2–5 % of the services' CPU (docs/benchmarks.md, "Where the CPU goes") for
// lines never written. Below Info, only a failed or slow statement can be
// logged, and only those reach the logger underneath.
type quietLogger struct {
	logger.Interface
	level logger.LogLevel
}

func (l quietLogger) LogMode(level logger.LogLevel) logger.Interface {
	return quietLogger{Interface: l.Interface.LogMode(level), level: level}
}

func (l quietLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	failed := err != nil && !errors.Is(err, gorm.ErrRecordNotFound)
	if l.level < logger.Info && !failed && time.Since(begin) <= slowStatement {
		return
	}
	l.Interface.Trace(ctx, begin, fc, err)
}
