// Command newservice adds a service to the shop (make new-service):
//
//	go run ./deploy/local/cmd/newservice -name shipping -record shipment
//
// It generates services/<name>, a service in the shape of the others — main
// → run, config.go and the README's configuration table, goose migrations,
// a domain package with its Store, a GORM store, a consumer of the order
// service's events that creates one <record> per confirmed order
// (idempotently), GET /v1/<records>/{order_id}, and a wiring test — built on
// pkg/sagaservice, so it registers in Consul, traces, serves /metrics and
// drains like every service. Then it makes the service part of the
// repository:
//
//   - go.mod tidied (go mod tidy) and the module added to go.work (go work use);
//   - a line "<name> <port offset>" appended to
//     deploy/local/internal/added/services.txt, the list the launcher starts
//     in make run and make run-full and the Makefile builds, lints and tests;
//   - the module's go.mod and go.sum copied in the Dockerfile's
//     download layer (TestDockerfile wants every workspace module there).
//
// The port offset is the lowest free one (4 to 9, then 11 and up): the
// service listens on 8080 + offset natively.
//
// It refuses a name that is not a lowercase identifier, is a Go keyword or
// predeclared name, is taken by a process of the shop or would collide with
// the generated code's own names, and it never overwrites: services/<name>
// must not exist. If a step fails, it undoes what it did.
//
// -root is the repository (default: the working directory, as make runs it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "new-service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("newservice", flag.ContinueOnError)
	fs.SetOutput(stdout)
	name := fs.String("name", "", "the service's name: a lowercase identifier, e.g. shipping (required)")
	record := fs.String("record", "job", "what the service keeps per confirmed order, a lowercase identifier in the singular, e.g. shipment")
	root := fs.String("root", ".", "the repository's root (holding go.work)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	spec, err := newSpec(*name, *record)
	if err != nil {
		return err
	}
	return generate(ctx, *root, spec, stdout)
}
