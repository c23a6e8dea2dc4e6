package psp_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/psp/simulator"
)

func eur(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }

// startSimulator serves a real simulator and returns a client of it.
func startSimulator(t *testing.T, s simulator.Settings, timeout time.Duration) (*simulator.Simulator, *psp.Client) {
	t.Helper()
	sim := simulator.New(s)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c := psp.New(srv.URL+"/", timeout, nil) // a trailing slash is allowed
	t.Cleanup(c.Close)
	return sim, c
}

func TestAgainstTheSimulator(t *testing.T) {
	sim, c := startSimulator(t, simulator.Settings{}, 5*time.Second)
	ctx := t.Context()

	charge := func(key, card string) (payment.PSPCharge, error) {
		return c.Charge(ctx, payment.ChargeAttempt{IdempotencyKey: key, Amount: eur(1000), CardNumber: card})
	}
	ok, err := charge("ok", simulator.CardSucceeds)
	if err != nil {
		t.Fatal(err)
	}
	recorded, _ := sim.ChargeByKey("ok")
	if diff := cmp.Diff(payment.PSPCharge{Reference: recorded.ID}, ok); diff != "" {
		t.Errorf("succeeded charge (-want +got):\n%s", diff)
	}

	t.Run("outcomes", func(t *testing.T) {
		tests := []struct {
			name     string
			call     func() (any, error)
			want     any
			wantErr  error
			rejected bool
		}{
			{"replay", func() (any, error) { return charge("ok", simulator.CardSucceeds) }, ok, nil, false},
			{"declined", func() (any, error) { return charge("no", simulator.CardInsufficientFunds) }, nil, nil, false},
			{"key reused with another card", func() (any, error) { return charge("ok", "5555555555554444") }, payment.PSPCharge{}, payment.ErrIdempotencyConflict, false},
			{"invalid card", func() (any, error) { return charge("bad", "4242424242424241") }, payment.PSPCharge{}, nil, true},
			{"status of a charge", func() (any, error) { return c.ChargeStatus(ctx, "ok") }, ok, nil, false},
			{"status of nothing", func() (any, error) { return c.ChargeStatus(ctx, "never") }, payment.PSPCharge{}, payment.ErrPSPNotFound, false},
			{"refund of an unknown charge", func() (any, error) {
				return c.Refund(ctx, payment.RefundAttempt{IdempotencyKey: "r", ChargeReference: "ch_nope", Amount: eur(1)})
			}, payment.PSPRefund{}, nil, true},
			{"refund too large", func() (any, error) {
				return c.Refund(ctx, payment.RefundAttempt{IdempotencyKey: "r", ChargeReference: ok.Reference, Amount: eur(1001)})
			}, payment.PSPRefund{}, nil, true},
			{"status of no refund", func() (any, error) { return c.RefundStatus(ctx, "r") }, payment.PSPRefund{}, payment.ErrPSPNotFound, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := tt.call()
				var rejected *payment.RejectedError
				switch {
				case tt.rejected:
					if !errors.As(err, &rejected) || rejected.Reason == "" {
						t.Fatalf("error = %v, want a *payment.RejectedError with a reason", err)
					}
				case !errors.Is(err, tt.wantErr):
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if tt.want != nil {
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("result (-want +got):\n%s", diff)
					}
				}
			})
		}
	})

	declined, err := charge("no", simulator.CardInsufficientFunds)
	if err != nil || !declined.Declined || declined.DeclineCode != "insufficient_funds" || declined.Reference == "" {
		t.Errorf("declined charge = %+v, %v; want declined insufficient_funds with a reference", declined, err)
	}

	refund, err := c.Refund(ctx, payment.RefundAttempt{IdempotencyKey: "r1", ChargeReference: ok.Reference, Amount: eur(400)})
	if err != nil {
		t.Fatal(err)
	}
	recordedRefund, _ := sim.RefundByKey("r1")
	if diff := cmp.Diff(payment.PSPRefund{Reference: recordedRefund.ID}, refund); diff != "" {
		t.Errorf("refund (-want +got):\n%s", diff)
	}
	if got, err := c.RefundStatus(ctx, "r1"); err != nil || got != refund {
		t.Errorf("RefundStatus = %+v, %v; want %+v", got, err, refund)
	}
	if got := len(sim.Charges()); got != 2 {
		t.Errorf("simulator charges = %d, want 2 (ok and no: refusals record nothing)", got)
	}
}

func TestTimeoutIsAmbiguous(t *testing.T) {
	sim, c := startSimulator(t, simulator.Settings{Hang: time.Hour}, 100*time.Millisecond)
	_, err := c.Charge(t.Context(), payment.ChargeAttempt{IdempotencyKey: "hang", Amount: eur(1000), CardNumber: simulator.CardHangs})
	if !errors.Is(err, payment.ErrPSPAmbiguous) {
		t.Fatalf("charge of the hanging card = %v, want ErrPSPAmbiguous", err)
	}
	// It did happen: the lookup says so.
	got, err := c.ChargeStatus(t.Context(), "hang")
	if err != nil || got.Declined {
		t.Fatalf("ChargeStatus = %+v, %v; want the succeeded charge", got, err)
	}
	if _, err := sim.ChargeByKey("hang"); err != nil {
		t.Errorf("simulator has no charge under the key: %v", err)
	}
}

func TestAnswersAreClassified(t *testing.T) {
	problemJSON := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"title":%q,"status":%d,"detail":"because"}`, http.StatusText(status), status)
		}
	}
	body := func(status int, s string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, s)
		}
	}
	resetConnection := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the request arrived in full
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	stall := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // net/http notices a client leaving once the body is read
		<-r.Context().Done()
	}

	const (
		ambiguous = "ambiguous"
		rejected  = "rejected"
		notFound  = "not found"
		conflict  = "conflict"
		ok        = "ok"
	)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		charge  string // outcome of Charge
		lookup  string // outcome of ChargeStatus
	}{
		{"503", problemJSON(503), ambiguous, ambiguous},
		{"500 without a body", body(500, ""), ambiguous, ambiguous},
		{"502 from a proxy, in HTML", body(502, "<html>bad gateway</html>"), ambiguous, ambiguous},
		{"429", problemJSON(429), ambiguous, ambiguous},
		{"408", problemJSON(408), ambiguous, ambiguous},
		{"422", problemJSON(422), rejected, ambiguous},
		{"400", problemJSON(400), rejected, ambiguous},
		{"404", problemJSON(404), rejected, notFound},
		{"409", problemJSON(409), conflict, ambiguous},
		{"2xx with garbage", body(201, "{"), ambiguous, ambiguous},
		{"2xx with an unknown status", body(200, `{"id":"ch_1","status":"processing"}`), ambiguous, ambiguous},
		{"2xx without an id", body(200, `{"status":"succeeded"}`), ambiguous, ambiguous},
		{"2xx succeeded", body(200, `{"id":"ch_1","status":"succeeded"}`), ok, ok},
		{"connection reset after sending", resetConnection, ambiguous, ambiguous},
		{"no answer within the timeout", stall, ambiguous, ambiguous},
	}
	classify := func(err error) string {
		var r *payment.RejectedError
		switch {
		case err == nil:
			return ok
		case errors.Is(err, payment.ErrPSPAmbiguous):
			return ambiguous
		case errors.As(err, &r):
			return rejected
		case errors.Is(err, payment.ErrPSPNotFound):
			return notFound
		case errors.Is(err, payment.ErrIdempotencyConflict):
			return conflict
		default:
			return "unclassified: " + err.Error()
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := psp.New(srv.URL, 200*time.Millisecond, nil)
			defer c.Close()
			_, err := c.Charge(t.Context(), payment.ChargeAttempt{IdempotencyKey: "k", Amount: eur(1), CardNumber: simulator.CardSucceeds})
			if got := classify(err); got != tt.charge {
				t.Errorf("Charge: %s (%v), want %s", got, err, tt.charge)
			}
			_, err = c.ChargeStatus(t.Context(), "k")
			if got := classify(err); got != tt.lookup {
				t.Errorf("ChargeStatus: %s (%v), want %s", got, err, tt.lookup)
			}
		})
	}

	t.Run("PSP down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c := psp.New(srv.URL, time.Second, nil)
		_, err := c.Refund(t.Context(), payment.RefundAttempt{IdempotencyKey: "k", ChargeReference: "ch", Amount: eur(1)})
		if got := classify(err); got != ambiguous {
			t.Errorf("Refund with the PSP down: %s (%v), want ambiguous", got, err)
		}
	})
}

// FuzzAnswers feeds the client arbitrary PSP answers: whatever comes back,
// the result is a charge with a reference or one of the classified errors.
func FuzzAnswers(f *testing.F) {
	f.Add(201, `{"id":"ch_1","status":"succeeded"}`)
	f.Add(200, `{"id":"ch_1","status":"declined","decline_code":"card_declined"}`)
	f.Add(422, `{"title":"x","status":422,"errors":[{"field":"amount","message":"bad"}]}`)
	f.Add(302, ``)
	f.Add(200, `{"id":5}`)
	type answer struct {
		status int
		body   string
	}
	var next atomic.Pointer[answer] // what the server answers, set per input
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := next.Load()
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	c := psp.New(srv.URL, 5*time.Second, nil)
	defer c.Close()
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 599 {
			t.Skip("not an HTTP status")
		}
		next.Store(&answer{status, body}) // a fuzzing process runs one input at a time
		for name, call := range map[string]func() (payment.PSPCharge, error){
			"Charge": func() (payment.PSPCharge, error) {
				return c.Charge(t.Context(), payment.ChargeAttempt{IdempotencyKey: "k", Amount: eur(1), CardNumber: simulator.CardSucceeds})
			},
			"ChargeStatus": func() (payment.PSPCharge, error) { return c.ChargeStatus(t.Context(), "k") },
		} {
			got, err := call()
			var rejected *payment.RejectedError
			switch {
			case err == nil && got.Reference == "":
				t.Fatalf("%s: answer %d %q gave a charge without a reference", name, status, body)
			case err == nil, errors.Is(err, payment.ErrPSPAmbiguous), errors.Is(err, payment.ErrPSPNotFound),
				errors.Is(err, payment.ErrIdempotencyConflict), errors.As(err, &rejected):
			default:
				t.Fatalf("%s: answer %d %q gave an unclassified error: %v", name, status, body, err)
			}
		}
	})
}
