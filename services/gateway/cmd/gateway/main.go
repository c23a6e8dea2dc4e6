// Command gateway runs the public edge of the shop: the REST API under
// /api/v1 that customers, admins and the storefront call. It owns no
// database; it authenticates callers and routes their requests to the
// inventory and order services (and, for admins, to the payment provider
// simulator's fault settings).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/httpapi"
	"github.com/microshop/microshop/services/gateway/internal/storefront"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

func main() { os.Exit(process.Main("gateway", defaultHTTPAddr, run)) }

// run serves until ctx ends, then drains in-flight requests.
//
// The gateway's readiness deliberately does not include the services
// behind it: one slow upstream must not take the whole edge out of the
// load balancer. Each route reports its upstream's failure instead. In the
// full mode (CONSUL_HTTP_ADDR set) it is ready once Consul has told it
// where the services are.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "gateway", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	key := []byte(cfg.JWTSecret)
	if len(key) == 0 {
		key = []byte(rand.Text() + rand.Text())
		log.Warn("GATEWAY_JWT_SECRET is not set: signing tokens with a random key, so they do not survive a restart and are not shared between replicas")
	}
	tokens, err := auth.NewTokens(key, cfg.TokenTTL, time.Now)
	if err != nil {
		return fmt.Errorf("configuration: GATEWAY_JWT_SECRET: %w", err)
	}
	proc, err := process.Start(ctx, "gateway", cfg.Config, getenv, log, process.WithLimit(customer(tokens), limitRoutes))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.Close()) }()
	breakers, err := proc.Breakers(ctx, cfg.BreakerRules)
	if err != nil {
		return err
	}
	retries, err := upstream.NewRetries(cfg.RetryRatio, float64(cfg.RetryReserve), proc.Telemetry.Registry)
	if err != nil {
		return err
	}
	var resolvers []lifecycle.Task
	// service returns the client of a service behind the gateway: its
	// instances from Consul in the full mode, the configured URL's in the
	// embedded one; behind its breaker; retried on another instance.
	service := func(name, url string) (*upstream.Client, error) {
		var instances discovery.Resolver
		if proc.Consul == nil {
			var err error
			if instances, err = staticResolver(url); err != nil {
				return nil, fmt.Errorf("configuration: %w", err)
			}
		} else {
			r := discovery.NewConsulResolver(proc.Consul, name, discovery.ResolverOptions{Logger: log})
			resolvers = append(resolvers, lifecycle.Task{Name: name + " resolver", Run: r.Run})
			proc.Checks.Add(name+" discovery", synced(r))
			instances, url = r, "http://"+name // the host is each instance's
		}
		wrap := func(next http.RoundTripper) http.RoundTripper {
			return breakers.RoundTripper(name, proc.Telemetry.Transport(name, next))
		}
		return upstream.NewBalanced(name, url, discovery.NewBalancer(name, instances), cfg.UpstreamTimeout, wrap, retries)
	}
	inventory, err := service("inventory", cfg.InventoryURL)
	if err != nil {
		return err
	}
	orders, err := service("order", cfg.OrderURL)
	if err != nil {
		return err
	}
	// The payment provider is a third party at a configured URL, in every
	// mode; the gateway only reaches its admin API.
	psp, err := upstream.New("psp", cfg.PSPURL, cfg.UpstreamTimeout, func(next http.RoundTripper) http.RoundTripper {
		return proc.Telemetry.Transport("psp", next)
	})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	up := httpapi.Upstreams{Inventory: inventory, Orders: orders, PSP: psp}
	api, err := httpapi.New(ctx, log, auth.DemoDirectory(), tokens, up)
	if err != nil {
		return err
	}
	api.Register(proc.Router)
	// The storefront's pages call the API above in process, through the
	// same router: its checks are the API's.
	opts := storefront.Options{API: proc.Router, Tokens: tokens, Breakers: breakers, Metrics: proc.Telemetry.Registry, Log: log}
	if cfg.JaegerURL != "" {
		// Traced and measured like every outbound call of the gateway.
		hc := &http.Client{Transport: proc.Telemetry.Transport("jaeger", http.DefaultTransport)}
		if opts.Traces, err = jaegerquery.New(cfg.JaegerURL, hc); err != nil {
			return fmt.Errorf("configuration: GATEWAY_JAEGER_URL: %w", err)
		}
	}
	shop, err := storefront.New(opts)
	if err != nil {
		return err
	}
	shop.Register(proc.Router)

	return proc.Run(ctx, resolvers...)
}

// limitRoutes are the priorities of the gateway's routes: browsing is shed
// first, a checkout in progress (placing an order, polling it) last, an
// admin's request never. GATEWAY_LIMIT_RULES, or Consul's
// microshop/gateway/limit, may override each route, and set the budgets
// of each customer ("user"): none by default, because the demo has two
// customers whom every load test, benchmark and chaos run logs in as.
var limitRoutes = map[string]limit.Route{
	"GET /images/:file":                                  {Priority: limit.Low},
	"GET /api/v1/openapi.json":                           {Priority: limit.Low},
	"GET /api/v1/products":                               {Priority: limit.Low},
	"GET /api/v1/products/:sku":                          {Priority: limit.Low},
	"POST /api/v1/orders":                                {Priority: limit.High},
	"GET /api/v1/orders/:id":                             {Priority: limit.High},
	"POST /api/v1/admin/products/:sku/stock-adjustments": {Priority: limit.Critical},
	"GET /api/v1/admin/psp/faults":                       {Priority: limit.Critical},
	"PUT /api/v1/admin/psp/faults":                       {Priority: limit.Critical},
}

// customer names the user of a request for the limiter's per-user
// budgets: the subject of a valid bearer token, "" for anyone else (whom
// the route then refuses, or serves anonymously).
func customer(tokens *auth.Tokens) func(*http.Request) string {
	return func(r *http.Request) string {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return ""
		}
		u, err := tokens.Verify(token)
		if err != nil {
			return ""
		}
		return u.ID
	}
}

// staticResolver is the one instance at a configured URL.
func staticResolver(rawURL string) (discovery.StaticResolver, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream URL %q has no host", rawURL)
	}
	return discovery.NewStaticResolver(u.Host), nil
}

// synced is a readiness check that passes once r has had Consul's first
// answer: before, the gateway knows no instance to send a request to.
func synced(r *discovery.ConsulResolver) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-r.Synced():
			return nil
		default:
			return errors.New("no answer from consul yet")
		}
	}
}
