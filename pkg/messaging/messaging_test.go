package messaging_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/messaging"
)

// startKafka is provided by the kafkatest package once it exists; see messaging_kafka_test.go.

func TestPingFailsWithoutBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	// A listener that accepts and says nothing is not Kafka.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	tests := []struct {
		name    string
		brokers []string
	}{
		{"none configured", nil},
		{"closed port", []string{"127.0.0.1:1"}},
		{"not a kafka broker", []string{silent.Addr().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if err := (messaging.Config{Brokers: tt.brokers}).Ping(ctx); err == nil {
				t.Errorf("Ping(%v) = nil, want an error", tt.brokers)
			}
		})
	}
}
