package main

import (
	"encoding/json"
	"strings"
	"sync"
)

// Messages the services log that the harness counts. They are part of the
// services' contract with this harness: change them together.
const (
	msgBarrier      = "saga barrier outcome"                        // inventory, payment: barrier said other than Proceed
	msgReplyIgnored = "saga reply ignored"                          // order (debug): a stale or unknown reply
	msgCrash        = "chaos: crashing after handle, before commit" // any: the injected crash
)

// logCounts counts log records of interest in the processes' output. Its
// observe method is a supervise.Output line hook.
type logCounts struct {
	mu       sync.Mutex
	barrier  map[string]map[string]int // service → barrier outcome → lines
	replies  map[string]int            // orchestrator's ignored replies by result
	crashes  map[string]int            // service → injected crashes
	failures int                       // lines at level ERROR
}

func newLogCounts() *logCounts {
	return &logCounts{barrier: map[string]map[string]int{}, replies: map[string]int{}, crashes: map[string]int{}}
}

// observe counts the line text written by process name (e.g. "payment-2").
func (c *logCounts) observe(name, text string) {
	if !strings.HasPrefix(text, "{") {
		return
	}
	var rec struct {
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		Barrier string `json:"barrier"`
		Result  string `json:"result"`
	}
	if !strings.Contains(text, msgBarrier) && !strings.Contains(text, msgReplyIgnored) &&
		!strings.Contains(text, msgCrash) && !strings.Contains(text, `"level":"ERROR"`) {
		return
	}
	if json.Unmarshal([]byte(text), &rec) != nil {
		return // a line cut short by a kill
	}
	service, _, _ := strings.Cut(name, "-")
	c.mu.Lock()
	defer c.mu.Unlock()
	switch rec.Msg {
	case msgBarrier:
		if c.barrier[service] == nil {
			c.barrier[service] = map[string]int{}
		}
		c.barrier[service][rec.Barrier]++
	case msgReplyIgnored:
		c.replies[rec.Result]++
	case msgCrash:
		c.crashes[service]++
	}
	if rec.Level == "ERROR" {
		c.failures++
	}
}

// duplicates is the number of duplicate deliveries observed: commands the
// participants' barriers found Duplicate and replies the orchestrator found
// stale.
func (c *logCounts) duplicates() (barrier, stale int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kinds := range c.barrier {
		barrier += kinds["duplicate"]
	}
	return barrier, c.replies["stale"]
}
