package labs

import (
	"context"
	"fmt"
	"time"
)

// burnAlert is the alert lab 8 watches fire and clear, one of
// observability/prometheus/rules/slo.yml, and burnThreshold the error
// ratio above which it fires when both its windows, 5 m and 1 h, exceed
// it: 14.4 times the 5 % error budget.
const (
	burnAlert     = "CheckoutErrorBudgetBurnFast"
	burnThreshold = 14.4 * 0.05
)

// checkBurnRate is lab 8's check: within the lookback, Prometheus's own
// record of its alerts (the ALERTS series) shows CheckoutErrorBudgetBurnFast
// firing, and it is not firing now — it fired and cleared.
func checkBurnRate(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	if s.Prometheus == "" {
		v.Missing = append(v.Missing, "Prometheus is not running: start the stack with make run-full (or the compose stack)")
		return v, nil
	}
	p := newPrometheus(s.Prometheus)
	loaded, err := p.hasRule(ctx, burnAlert)
	if err != nil {
		return v, err
	}
	if !loaded {
		v.Missing = append(v.Missing, fmt.Sprintf("Prometheus at %s has no alert %s: it was started without observability/prometheus/rules", s.Prometheus, burnAlert))
		return v, nil
	}
	end := time.Now().Truncate(step)
	firing, err := p.rangeByTime(ctx, fmt.Sprintf(`max(ALERTS{alertname=%q,alertstate="firing"})`, burnAlert), end.Add(-lookback), end)
	if err != nil {
		return v, err
	}
	first, last := firstLast(firing)
	now, err := p.query(ctx, fmt.Sprintf(`ALERTS{alertname=%q,alertstate="firing"}`, burnAlert))
	if err != nil {
		return v, err
	}
	ratios, err := p.errorRatios(ctx)
	if err != nil {
		return v, err
	}
	switch {
	case len(firing) == 0 && len(now) == 0:
		v.Missing = append(v.Missing, fmt.Sprintf("%s has not fired in the last %s: %s; it fires when both are above %.0f %%: place checkouts with the declined card (4000000000000002) until it fires",
			burnAlert, inWords(lookback), ratios, 100*burnThreshold))
	case len(now) > 0:
		since := "now"
		if len(firing) > 0 {
			since = "since " + clock(first)
		}
		v.Seen = append(v.Seen, fmt.Sprintf("%s fired (%s)", burnAlert, since))
		v.Missing = append(v.Missing, fmt.Sprintf("%s is still firing: %s. Place good checkouts (make load SCENARIO=checkout) until the 5 m ratio drops below %.0f %%",
			burnAlert, ratios, 100*burnThreshold))
	default:
		v.Seen = append(v.Seen, fmt.Sprintf("%s fired at %s and was last firing at %s; it is not firing now (%s)",
			burnAlert, clock(first), clock(last), ratios))
	}
	return v, nil
}

// errorRatios says, in words, the checkout error ratios the alert reads
// now: the share of finished checkout sagas that did not complete, over
// 5 minutes and over an hour (the recording rules of slo.yml).
func (p *prometheus) errorRatios(ctx context.Context) (string, error) {
	word := func(rule string) (string, error) {
		r, ok, err := p.scalar(ctx, rule)
		switch {
		case err != nil:
			return "", err
		case !ok:
			return "no checkout finished", nil
		}
		return fmt.Sprintf("%.0f %% of checkouts failed", 100*r), nil
	}
	five, err := word("slo:checkout_errors:ratio_rate5m")
	if err != nil {
		return "", err
	}
	hour, err := word("slo:checkout_errors:ratio_rate1h")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("over the last 5 minutes %s, over the last hour %s", five, hour), nil
}

// firstLast returns the first and last times of values; zero times when
// empty.
func firstLast(values map[time.Time]float64) (first, last time.Time) {
	for at := range values {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last
}
