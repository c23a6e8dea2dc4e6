package config_test

import (
	"fmt"
	"time"

	"github.com/microshop/microshop/pkg/config"
)

func Example() {
	env := map[string]string{ // os.Getenv in main
		"ORDER_HTTP_ADDR":        ":8082",
		"ORDER_SHUTDOWN_TIMEOUT": "ten",
	}
	r := config.New(func(k string) string { return env[k] }, "ORDER_")
	addr := r.Addr("HTTP_ADDR", ":8080")
	timeout := r.Duration("SHUTDOWN_TIMEOUT", 10*time.Second)
	workers := r.Int("CONSUMER_CONCURRENCY", 8, 1, 1024)

	fmt.Println(addr, timeout, workers)
	fmt.Println(r.Err())
	// Output:
	// :8082 10s 8
	// ORDER_SHUTDOWN_TIMEOUT: "ten" is not a positive duration (use e.g. 500ms, 10s, 1m)
}

func ExampleRedact() {
	fmt.Println(config.Redact("postgres://order:s3cret@db:5432/order?sslmode=disable"))
	// Output: postgres://order:xxxxx@db:5432/order?sslmode=disable
}
