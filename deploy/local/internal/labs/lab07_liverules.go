package labs

import (
	"context"
	"fmt"
	"net/url"

	"github.com/hashicorp/consul/api"
)

// gatewayLimitKey is the Consul KV key of the gateway's limiter rules.
const gatewayLimitKey = "microshop/gateway/limit"

// checkLiveRules is lab 7: a rule changed live. It wants the gateway to
// have put a limiter rules document from Consul KV in force while it ran
// (liverules_applied_total), the rule to have acted (requests refused by a
// route's or a user's token bucket: limiter_rejected_total with reason
// route or user — none are on a stack with the default rules), and an
// invalid document to have been rejected with the last good rules kept
// (liverules_rejected_total). It reports what Consul KV holds now.
func checkLiveRules(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	doc, err := kvGet(ctx, s.Consul, gatewayLimitKey)
	if err != nil {
		return v, err
	}
	m, err := scrape(ctx, s.Gateway)
	if err != nil {
		return v, fmt.Errorf("read the gateway's metrics: %w", err)
	}
	keyLabel := `key="` + gatewayLimitKey + `"`
	applied, rejected := m.sum("liverules_applied_total", keyLabel), m.sum("liverules_rejected_total", keyLabel)
	refused := m.sum("limiter_rejected_total", `reason="route"`) + m.sum("limiter_rejected_total", `reason="user"`)

	switch doc {
	case nil:
		v.see("Consul KV has no %s now: the gateway's default limits are in force", gatewayLimitKey)
	default:
		v.see("Consul KV holds %s: %s", gatewayLimitKey, doc)
	}
	if applied > 0 {
		v.see("the gateway put %.0f rules document(s) from %s in force without a restart (liverules_applied_total)", applied, gatewayLimitKey)
	} else {
		v.miss("the gateway has not put a rules document from Consul KV in force yet: PUT a route limit at %s "+
			"(step 1 of labs/07-live-rules/README.md) and watch for \"rules document applied\" in the gateway's log", gatewayLimitKey)
	}
	if refused > 0 {
		v.see("the rule acted: the gateway refused %.0f request(s) with 429 by a route's or a user's token bucket (limiter_rejected_total{reason=\"route\"|\"user\"})", refused)
	} else {
		v.miss("no request has been refused by a token bucket yet (limiter_rejected_total{reason=\"route\"} is 0): with the rule in force, " +
			"send the burst of GET /api/v1/products of step 2 and look for 429 and Retry-After")
	}
	if rejected > 0 {
		v.see("the gateway rejected %.0f invalid document(s) and kept the last good rules (liverules_rejected_total)", rejected)
	} else {
		v.miss("no invalid document has been rejected yet: PUT the broken document of step 3 and find the warning " +
			"\"rules document rejected; the last good rules stay\" in the gateway's log")
	}
	return v, nil
}

// kvGet returns the value at key in Consul KV, nil when there is none.
func kvGet(ctx context.Context, consul, key string) ([]byte, error) {
	client, err := consulClient(consul)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	pair, _, err := client.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read %s from Consul: %w", key, err)
	}
	if pair == nil {
		return nil, nil
	}
	return pair.Value, nil
}

// consulClient returns a client of the Consul agent at base.
func consulClient(base string) (*api.Client, error) {
	if base == "" {
		return nil, fmt.Errorf("no Consul address: is make run-full running?")
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return api.NewClient(&api.Config{Address: u.Host, Scheme: u.Scheme, HttpClient: defaultHTTPClient()})
}
