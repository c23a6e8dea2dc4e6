// Package messaging holds what a service needs to talk to Kafka with
// segmentio/kafka-go: the client configuration and a readiness check.
package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// Config is a service's Kafka client configuration.
type Config struct {
	// Brokers are the bootstrap broker addresses (host:port); at least one.
	Brokers []string
	// ClientID identifies the service to the brokers (in their logs and quotas).
	ClientID string
}

// Ping connects to the first reachable bootstrap broker and asks for its
// supported API versions, proving it speaks Kafka. It is the readiness check.
func (c Config) Ping(ctx context.Context) error {
	if len(c.Brokers) == 0 {
		return errors.New("ping kafka: no brokers configured")
	}
	d := &kafka.Dialer{ClientID: c.ClientID}
	var errs []error
	for _, addr := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		}
		_, err = conn.ApiVersions()
		conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return fmt.Errorf("ping kafka: %w", errors.Join(errs...))
}
