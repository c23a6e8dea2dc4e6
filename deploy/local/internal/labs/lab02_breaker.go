package labs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// reasonBreakerOpen is the cancel reason of an order whose charge the open
// breaker refused (the saga's step, then payment's reason).
const reasonBreakerOpen = "charge-payment: payment provider unavailable"

// checkBreaker is lab 2: the payment provider breaks — slow, then failing —
// payment's breaker opens, the saga compensates, and once the fault is
// removed the breaker closes again through half-open. Its evidence: the
// PSP's own HTTP metrics (charges slower than the slow-call threshold and
// charges answered 5xx), its faults back at zero, payment's breaker_
// metrics (transitions to open, half-open and closed; closed now), and the
// order database (orders CANCELLED for the open breaker, and a CONFIRMED
// one placed after the last of them).
func checkBreaker(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	psp, err := scrape(ctx, s.PSP)
	if err != nil {
		return v, fmt.Errorf("read the payment provider's metrics: %w", err)
	}
	charges := func(labels ...string) float64 {
		return psp.sum("http_server_request_duration_seconds_count", append(labels, `http_route="/v1/charges"`)...)
	}
	slow := charges() - psp.sum("http_server_request_duration_seconds_bucket", `http_route="/v1/charges"`, `le="1"`)
	failed := charges(`http_response_status_class="5xx"`)
	if slow > 0 {
		v.see("the payment provider answered %.0f charge(s) slower than 1 s, payment's slow-call threshold (the latency fault)", slow)
	} else {
		v.miss("the payment provider has answered no charge slower than 1 s: set its latency fault (step 1 of labs/02-breaker/README.md) and send the burst of checkouts")
	}
	if failed > 0 {
		v.see("the payment provider failed %.0f charge(s) with 5xx (the failure fault)", failed)
	} else {
		v.miss("the payment provider has failed no charge yet: set its failure rate (step 3) and send the burst again")
	}
	var faults struct {
		Latency     string  `json:"latency"`
		FailureRate float64 `json:"failure_rate"`
	}
	if err := getJSON(ctx, s.PSP+"/v1/admin/faults", &faults); err != nil {
		return v, fmt.Errorf("read the payment provider's faults: %w", err)
	}
	healed := faults.FailureRate == 0 && (faults.Latency == "0s" || faults.Latency == "")
	if healed {
		v.see("the payment provider's faults are removed now (latency %s, failure rate 0)", faults.Latency)
	} else {
		v.miss("the payment provider still has faults (latency %s, failure rate %g): remove them (step 5) so that the breaker can close", faults.Latency, faults.FailureRate)
	}

	payment, err := serviceURL(ctx, s.Consul, "payment")
	if err != nil {
		return v, err
	}
	pm, err := scrape(ctx, payment)
	if err != nil {
		return v, fmt.Errorf("read payment's metrics: %w", err)
	}
	upstream := `upstream="psp"`
	for _, to := range []string{"open", "half-open", "closed"} {
		n := pm.sum("breaker_transitions_total", upstream, `to="`+to+`"`)
		if n > 0 {
			v.see("payment's breaker of the payment provider went %s %.0f time(s) (breaker_transitions_total{to=%q})", to, n, to)
		} else {
			v.miss("payment's breaker of the payment provider has never gone %s (breaker_transitions_total{to=%q} is 0): %s", to, to, breakerHint(to))
		}
	}
	switch state := pm.sum("breaker_state", upstream); state {
	case 0:
		v.see("payment's breaker of the payment provider is closed now (breaker_state 0)")
	default:
		v.miss("payment's breaker of the payment provider is %s now (breaker_state %.0f): remove the faults and send a checkout every second for ten seconds (step 5)",
			map[float64]string{1: "half-open", 2: "open"}[state], state)
	}

	d, closeDBs, err := openDatabases(ctx, s)
	if err != nil {
		return v, err
	}
	defer closeDBs()
	var cancelled int
	var lastCancelled sql.NullTime
	err = d.Order.QueryRowContext(ctx, "SELECT count(*), max(created_at) FROM orders WHERE status = 'CANCELLED' AND cancel_reason = $1",
		reasonBreakerOpen).Scan(&cancelled, &lastCancelled)
	if err != nil {
		return v, fmt.Errorf("read the orders: %w", err)
	}
	if cancelled == 0 {
		v.miss("no order has been CANCELLED %q yet: send checkouts while the breaker is open (steps 2 and 4) and read their history", reasonBreakerOpen)
		return v, nil
	}
	v.see("%d order(s) CANCELLED %q: the saga compensated (released the stock) without waiting for the provider", cancelled, reasonBreakerOpen)
	var confirmed string
	err = d.Order.QueryRowContext(ctx, "SELECT id FROM orders WHERE status = 'CONFIRMED' AND created_at > $1 ORDER BY created_at DESC LIMIT 1",
		lastCancelled.Time).Scan(&confirmed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v.miss("no order placed after the last one the open breaker cancelled (%s) is CONFIRMED yet: remove the faults and check out again (step 5)",
			lastCancelled.Time.Format(time.TimeOnly))
	case err != nil:
		return v, fmt.Errorf("read the orders: %w", err)
	default:
		v.see("order %s, placed after the last cancellation by the open breaker, is CONFIRMED: the provider serves again", confirmed)
	}
	return v, nil
}

// breakerHint says what makes the breaker go to state.
func breakerHint(to string) string {
	switch to {
	case "open":
		return "with a fault set, send the burst of checkouts: ten charges within ten seconds, half of them slow or failed, trip it"
	case "half-open":
		return "five seconds after it opened, the next charge is let through as a probe; send checkouts after the breaker opened"
	default:
		return "remove the faults, then send a checkout every second: the probe succeeds and the breaker closes"
	}
}
