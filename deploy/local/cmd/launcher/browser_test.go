package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/pkg/telemetry/jaegertest"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// Test cards of the payment provider simulator (services/psp/README.md).
const (
	goodCard     = "4242424242424242"
	declinedCard = "4000000000000002"
)

// markupName is the name the browser test gives a product: the storefront
// must show it as text, never run it.
const markupName = `<script>document.title="pwned"</script><b>Bold</b> mug`

// TestStorefrontInChromium runs the whole stack (PostgreSQL, Consul, the
// broker and every service) and drives the gateway's storefront in
// headless Chromium: log in, put two products in the cart, check out with
// the good card and watch the order reach CONFIRMED with every step of the
// saga on its timeline; check out with the declined card and see it
// CANCELLED with its reason and the stock back; a product named with
// markup is shown as text; log out. No page may log a console error, throw
// or open a dialog. Screenshots of the main pages are written to
// .run/screenshots (make screenshots copies them to docs/screenshots).
func TestStorefrontInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack and a browser; run without -short")
	}
	chrome := chromium(t)
	jaeger := jaegertest.Start(t)
	st := startStack(t, stackOptions{replicas: 1,
		env:        []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPHTTP},
		gatewayEnv: []string{"GATEWAY_JAEGER_URL=" + jaeger.QueryURL}})
	renameProduct(t, st.dbURLs["inventory"], "MUG-CLASSIC", markupName)

	shots, err := screenshotDir()
	if err != nil {
		t.Fatal(err)
	}
	b := newChrome(t, chrome)
	base := st.gateway

	// Browsing works for a visitor.
	b.run(t, "catalog", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#catalog li.card`)))

	b.login(t, base, "alice", "alice-demo")
	b.run(t, "catalog as alice", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#catalog li.card`)))
	b.screenshot(t, shots, "catalog")

	// Two products in stock, each added from its own page.
	skus := []string{"BAG-TOTE-CANVAS", "KEYCHAIN-GOPHER"}
	before := map[string]int{}
	for _, sku := range skus {
		before[sku] = b.available(t, base, sku)
		if sku == skus[0] {
			b.screenshot(t, shots, "product")
		}
		b.run(t, "add "+sku, chromedp.Click(chromedp.CSS(`#add`)), chromedp.WaitVisible(chromedp.CSS(`#cart`)))
	}
	b.screenshot(t, shots, "cart")

	confirmed := b.checkout(t, goodCard, "CONFIRMED")
	b.screenshot(t, shots, "order-confirmed")
	// Its page, reloaded, shows its checkout's trace from Jaeger: spans of
	// every service the checkout went through.
	b.waitTrace(t, []string{"gateway", "order", "inventory", "payment", "psp"})
	b.screenshot(t, shots, "order-trace")
	for _, step := range checkoutv1.Steps() {
		if !strings.Contains(confirmed, step+" succeeded") {
			t.Errorf("the confirmed order's timeline lacks %q:\n%s", step+" succeeded", confirmed)
		}
	}
	for _, sku := range skus {
		if got, want := b.available(t, base, sku), before[sku]-1; got != want {
			t.Errorf("%s available after the confirmed order = %d, want %d", sku, got, want)
		}
		before[sku]--
		b.run(t, "add "+sku, chromedp.Click(chromedp.CSS(`#add`)), chromedp.WaitVisible(chromedp.CSS(`#cart`)))
	}

	cancelled := b.checkout(t, declinedCard, "CANCELLED")
	b.screenshot(t, shots, "order-cancelled")
	reason := get(t, b, "cancel reason", chromedp.Text(chromedp.CSS(`#cancel-reason`)))
	if !strings.Contains(reason, "declined") {
		t.Errorf("the cancelled order's reason = %q, want it to say the card was declined", reason)
	}
	for _, want := range []string{checkoutv1.StepChargePayment + " refused", checkoutv1.StepReserveStock + " compensated"} {
		if !strings.Contains(cancelled, want) {
			t.Errorf("the cancelled order's timeline lacks %q:\n%s", want, cancelled)
		}
	}
	for _, sku := range skus {
		if got := b.available(t, base, sku); got != before[sku] {
			t.Errorf("%s available after the cancelled order = %d, want %d (the stock back)", sku, got, before[sku])
		}
	}

	// The name with markup is text: shown as written, nothing of it ran.
	b.run(t, "markup product", chromedp.Navigate(base+"/products/MUG-CLASSIC"), chromedp.WaitVisible(chromedp.CSS(`#product-name`)))
	name := get(t, b, "product name", chromedp.TextContent(chromedp.CSS(`#product-name`)))
	title := get(t, b, "title", chromedp.Title())
	if name != markupName {
		t.Errorf("the product's name reads %q in the page, want the markup as text %q", name, markupName)
	}
	if want := markupName + " · microshop"; title != want {
		t.Errorf("the page's title is %q, want %q (the script in the name must not run)", title, want)
	}
	bolds := get(t, b, "elements in the name", chromedp.Evaluate[int](`document.querySelectorAll('#product-name *').length`))
	if bolds != 0 {
		t.Errorf("the product's name became %d elements, want text only", bolds)
	}

	b.run(t, "log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login-link`)))

	b.login(t, base, "admin", "admin-demo")
	b.run(t, "admin page", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS(`#breakers tr[data-upstream="order"]`)))
	b.screenshot(t, shots, "admin")
	checkAdminLimiters(t, b, st)
	b.run(t, "log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login-link`)))

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// waitTrace reloads the order page the browser is on until its trace's
// waterfall has spans of each of services (spans reach Jaeger in batches,
// the saga's after the page's first load), and checks that every row is a
// span with a bar.
func (b *chrome) waitTrace(t *testing.T, services []string) {
	t.Helper()
	page := get(t, b, "the order page's URL", chromedp.Location())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var got []string
	poll.UntilNil(ctx, t, "the order's trace with spans of "+strings.Join(services, ", "), func() error {
		b.run(t, "reload the order page", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`#trace`)))
		got = get(t, b, "the waterfall's services", chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('#waterfall td.service'), td => td.textContent)`))
		for _, s := range services {
			if !slices.Contains(got, s) {
				return fmt.Errorf("the waterfall has spans of %q, none of %s", slices.Compact(slices.Sorted(slices.Values(got))), s)
			}
		}
		return nil
	})
	bars := get(t, b, "the waterfall's bars", chromedp.Evaluate[int](`document.querySelectorAll('#waterfall td.bar svg rect').length`))
	if bars != len(got) {
		t.Errorf("the waterfall has %d rows and %d bars, want a bar per span", len(got), bars)
	}
	t.Logf("the order's trace on its page: %d spans of %v", len(got), slices.Compact(slices.Sorted(slices.Values(got))))
}

// checkAdminLimiters changes the gateway's limiter rules live in Consul
// KV and wants the admin page, logged in as admin, to show the algorithm
// and the limit the gateway's /metrics reports: the page reads the real
// limiter (pkg/limit), not a copy of the rules.
func checkAdminLimiters(t *testing.T, b *chrome, st *stack) {
	t.Helper()
	kv := &api.KVPair{Key: "microshop/gateway/limit", Value: []byte(`{"adaptive": "gradient2"}`)}
	if _, err := st.consul.Client().KV().Put(kv, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	poll.UntilNil(ctx, t, "the gateway's /metrics to report gradient2 in force", func() error {
		m, err := limiterMetrics(ctx, st.gateway)
		if err != nil {
			return err
		}
		if m[`limiter_algorithm{algorithm="gradient2"}`] != 1 {
			return fmt.Errorf("limiter metrics %v", m)
		}
		return nil
	})
	// The page's own requests pass the limiter and may move the limit:
	// the page must equal /metrics read before and after it, unchanged.
	var page, before map[string]float64
	poll.UntilNil(ctx, t, "the admin page to show the limiter /metrics reports", func() error {
		var err error
		if before, err = limiterMetrics(ctx, st.gateway); err != nil {
			return err
		}
		b.run(t, "admin page", chromedp.Navigate(st.gateway+"/admin"), chromedp.WaitVisible(chromedp.CSS(`#limiters`)))
		rows := get(t, b, "the limiters' rows", chromedp.Evaluate[[][]string](
			`Array.from(document.querySelectorAll('#limiters tbody tr'), tr => Array.from(tr.cells, td => td.textContent))`))
		page = map[string]float64{}
		for _, r := range rows {
			if len(r) != 3 || (r[0] != "limiter_algorithm" && r[0] != "limiter_limit") {
				continue
			}
			v, err := strconv.ParseFloat(r[2], 64)
			if err != nil {
				return fmt.Errorf("the admin page's %v: %v", r, err)
			}
			page[metricID(r[0], r[1])] = v
		}
		after, err := limiterMetrics(ctx, st.gateway)
		if err != nil {
			return err
		}
		if !maps.Equal(before, after) {
			return fmt.Errorf("the limit moved while the page was read: %v, then %v", before, after)
		}
		if !maps.Equal(page, before) {
			return fmt.Errorf("the admin page shows %v, /metrics %v", page, before)
		}
		return nil
	})
	if before["limiter_limit"] <= 0 {
		t.Errorf("gradient2 in force with limiter_limit %v, want its limit (> 0)", before["limiter_limit"])
	}
	t.Logf("the admin page and /metrics agree: %v", page)
}

// limiterMetrics reads limiter_algorithm and limiter_limit from the
// /metrics of the process at base, by series ("name{labels}").
func limiterMetrics(ctx context.Context, base string) (map[string]float64, error) {
	return readSeries(ctx, base, "limiter_algorithm", "limiter_limit")
}

// readSeries reads the families names from the /metrics of the process at
// base, by series ("name{labels}"): a gauge's or counter's value, a
// histogram's count.
func readSeries(ctx context.Context, base string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, name := range names {
		for _, s := range families[name].GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			id := metricID(name, strings.Join(labels, " "))
			switch {
			case s.Counter != nil:
				m[id] = s.GetCounter().GetValue()
			case s.Histogram != nil:
				m[id] = float64(s.GetHistogram().GetSampleCount())
			default:
				m[id] = s.GetGauge().GetValue()
			}
		}
	}
	return m, nil
}

// metricID names a series as the admin page shows it: the name, and its
// labels in braces if it has any.
func metricID(name, labels string) string {
	if labels == "" {
		return name
	}
	return name + "{" + labels + "}"
}

// chromium returns the path of Debian's Chromium, installing the package
// with apt-get when it is missing (as root). Without it the test skips, or
// fails under CI.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil && os.Geteuid() == 0 {
		if _, aptErr := exec.LookPath("apt-get"); aptErr == nil {
			t.Log("chromium is missing: apt-get install -y chromium")
			out, installErr := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "chromium").CombinedOutput()
			if installErr != nil {
				err = fmt.Errorf("apt-get install chromium: %w\n%s", installErr, out)
			} else {
				path, err = exec.LookPath("chromium")
			}
		}
	}
	servicetest.Require(t, "chromium", err)
	return path
}

// renameProduct gives sku another name in the inventory's database: the
// API has no route to rename a product.
func renameProduct(t *testing.T, dbURL, sku, name string) {
	t.Helper()
	db, err := database.Open(t.Context(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res := db.WithContext(t.Context()).Exec("UPDATE products SET name = ? WHERE sku = ?", name, sku)
	if res.Error != nil || res.RowsAffected != 1 {
		t.Fatalf("rename %s: %v, %d rows", sku, res.Error, res.RowsAffected)
	}
}

// screenshotDir is .run/screenshots at the root of the repository.
func screenshotDir() (string, error) {
	root, err := servicetest.RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".run", "screenshots")
	return dir, os.MkdirAll(dir, 0o755)
}

// chrome is one headless Chromium with one tab, and the errors its pages
// logged.
type chrome struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

// newChrome starts Chromium at path with the flags this machine needs (see
// the design brief: no sandbox as root, no background network).
func newChrome(t *testing.T, path string) *chrome {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	b := &chrome{}
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.record("dialog %s: %s", d.Type, d.Message)
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	if _, err := chromedp.Run(ctx, chromedp.Title()); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.record("%s (%s:%d)", m, m.URL, m.Line)
			}
		}
	}()
	return b
}

func (b *chrome) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, fmt.Sprintf(format, args...))
}

func (b *chrome) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// run runs steps, at most 30 s.
func (b *chrome) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fatal(t, what, err)
	}
}

// get runs one action that returns a value, at most 30 s.
func get[T any](t *testing.T, b *chrome, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.fatal(t, what, err)
	}
	return v
}

func (b *chrome) fatal(t *testing.T, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	t.Fatalf("%s (at %s): %v; the pages logged %q", what, loc, err, b.errors())
}

func (b *chrome) login(t *testing.T, base, user, password string) {
	t.Helper()
	b.run(t, "log in as "+user,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#login input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=password]`), password),
		chromedp.Submit(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#who`)),
	)
}

// available opens the product's page and reads its stock.
func (b *chrome) available(t *testing.T, base, sku string) int {
	t.Helper()
	b.run(t, "product "+sku, chromedp.Navigate(base+"/products/"+sku), chromedp.WaitVisible(chromedp.CSS(`#available`)))
	text := get(t, b, "available", chromedp.Text(chromedp.CSS(`#available`)))
	n, err := strconv.Atoi(text)
	if err != nil {
		t.Fatalf("product %s: available %q: %v", sku, text, err)
	}
	return n
}

// checkout pays the cart with card on the cart page, waits on the order's
// page (which updates itself) until its status is no longer PENDING, wants
// it to be want, and returns its timeline's text.
func (b *chrome) checkout(t *testing.T, card, want string) string {
	t.Helper()
	b.run(t, "check out with "+card,
		chromedp.Click(chromedp.CSS(`#checkout input[value="`+card+`"]`)),
		chromedp.Click(chromedp.CSS(`#place-order`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline`)),
	)
	get(t, b, "the order to leave PENDING", chromedp.Poll[bool](
		`document.getElementById('status') !== null && document.getElementById('status').textContent !== 'PENDING'`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second)))
	status := get(t, b, "status", chromedp.Text(chromedp.CSS(`#status`)))
	timeline := get(t, b, "timeline", chromedp.Text(chromedp.CSS(`#timeline`)))
	if status != want {
		t.Fatalf("order paid with %s is %s, want %s; timeline:\n%s", card, status, want, timeline)
	}
	return timeline
}

// screenshot writes the whole page to dir/name.png.
func (b *chrome) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	png := get(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
