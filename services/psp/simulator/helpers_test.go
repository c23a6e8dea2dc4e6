package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/psp/simulator"
)

// epoch is the simulators' clock in these tests.
var epoch = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newSimulator(s simulator.Settings) *simulator.Simulator {
	if s.Now == nil {
		s.Now = func() time.Time { return epoch }
	}
	return simulator.New(s)
}

// call is one HTTP request to a simulator's handler.
type call struct {
	method, target string
	key            string // Idempotency-Key, omitted when empty
	contentType    string // application/json when empty and there is a body
	body           string
}

func (c call) do(h http.Handler) *httptest.ResponseRecorder {
	r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
	switch {
	case c.contentType != "":
		r.Header.Set("Content-Type", c.contentType)
	case c.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		r.Header.Set("Idempotency-Key", c.key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func chargeBody(amount int64, card string) string {
	return fmt.Sprintf(`{"amount":%d,"currency":"EUR","card_number":%q}`, amount, card)
}

func postCharge(key string, amount int64, card string) call {
	return call{method: http.MethodPost, target: "/v1/charges", key: key, body: chargeBody(amount, card)}
}

func postRefund(key, chargeID string, amount int64) call {
	return call{method: http.MethodPost, target: "/v1/refunds", key: key, body: fmt.Sprintf(`{"charge_id":%q,"amount":%d}`, chargeID, amount)}
}

// decode reads a JSON answer of the given status into a T.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, wantStatus int) T {
	t.Helper()
	if rec.Code != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, wantStatus, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

// problemFields checks that rec is a problem+json answer with its own status
// and returns the fields it names.
func problemFields(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q; body %s", got, problem.ContentType, rec.Body)
	}
	var p problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
		t.Fatalf("body %s is not a problem with status %d (err %v)", rec.Body, rec.Code, err)
	}
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	return fields
}
