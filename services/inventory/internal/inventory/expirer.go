package inventory

import (
	"context"
	"log/slog"
	"time"
)

// Expirer expires overdue reservations in the background: it calls
// Service.ExpireStale at start and then every interval, so the units of
// abandoned checkouts go back on sale. Every replica may run one; they race
// safely.
type Expirer struct {
	service  *Service
	interval time.Duration
	log      *slog.Logger
}

// DefaultExpiryInterval is the interval of an Expirer given none.
const DefaultExpiryInterval = 30 * time.Second

// NewExpirer returns an Expirer of service's reservations running every
// interval (DefaultExpiryInterval if not positive) and logging to log.
// Start it with Run.
func NewExpirer(service *Service, interval time.Duration, log *slog.Logger) *Expirer {
	if interval <= 0 {
		interval = DefaultExpiryInterval
	}
	return &Expirer{service: service, interval: interval, log: log}
}

// Run expires overdue reservations until ctx ends, then returns. It logs how
// many it expired each time there were some, and errors, which it retries at
// the next interval. Call it once, in its own goroutine.
func (e *Expirer) Run(ctx context.Context) {
	e.log.Info("reservation expirer started", slog.String("interval", e.interval.String()))
	defer e.log.Info("reservation expirer stopped")
	ticker := time.NewTicker(e.interval)
	defer ticker.Stop()
	for {
		n, err := e.service.ExpireStale(ctx)
		if n > 0 {
			e.log.InfoContext(ctx, "reservations expired", slog.Int("expired", n))
		}
		if err != nil && ctx.Err() == nil { // an error from shutting down is no news
			e.log.ErrorContext(ctx, "expire stale reservations", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
