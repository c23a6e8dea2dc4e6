package process

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/lifecycle"
)

// HealthcheckArg is the argument that runs a program in healthcheck mode
// (Main): "order healthcheck".
const HealthcheckArg = "healthcheck"

// healthcheckTimeout bounds one probe; a container runtime's own timeout
// (compose's healthcheck.timeout) should be longer.
const healthcheckTimeout = 3 * time.Second

// Main is the body of the main of every program built on Process. Run as
// "<program> healthcheck", it probes the program's own /readyz (Healthcheck)
// and returns 0 when ready, 1 otherwise, printing why on standard error —
// so that an image without curl or a shell, FROM scratch or distroless, can
// be health-checked by Docker, compose or Kubernetes' exec probes. Otherwise
// it is lifecycle.Main(name, run). httpAddr is the program's default
// HTTP_ADDR, as it passes it to ReadConfig; the variables are read with the
// prefix of name in capitals ("ORDER_").
func Main(name, httpAddr string, run lifecycle.RunFunc) int {
	if len(os.Args) == 2 && os.Args[1] == HealthcheckArg {
		ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
		defer cancel()
		if err := Healthcheck(ctx, name, httpAddr, os.Getenv); err != nil {
			fmt.Fprintln(os.Stderr, name+" healthcheck:", err)
			return 1
		}
		return 0
	}
	return lifecycle.Main(name, run)
}

// Healthcheck asks the program name, configured through getenv as it
// would be when serving (its HTTP_ADDR, default httpAddr), whether it is
// ready: nil if its /readyz answers 200. A wildcard listen host (0.0.0.0,
// ::, none) is probed on the loopback interface.
func Healthcheck(ctx context.Context, name, httpAddr string, getenv func(string) string) error {
	env := config.New(getenv, strings.ToUpper(name)+"_")
	cfg := ReadConfig(env, httpAddr)
	if err := env.Err(); err != nil {
		return err
	}
	return health.Probe(ctx, cfg.HTTP.Addr)
}
