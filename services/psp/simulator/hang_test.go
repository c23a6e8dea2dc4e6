package simulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/services/psp/simulator"
)

type result struct {
	resp *http.Response
	err  error
}

// startHangingCharge posts a charge of the hanging card in the background.
func startHangingCharge(ctx context.Context, url, key string) <-chan result {
	done := make(chan result, 1)
	go func() {
		resp, err := postChargeTo(ctx, url, key, simulator.CardHangs)
		if err == nil {
			resp.Body.Close()
		}
		done <- result{resp, err}
	}()
	return done
}

// waitForCharge polls GET /v1/charges?idempotency_key=key until it answers 200.
func waitForCharge(t *testing.T, url, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	poll.UntilNil(ctx, t, fmt.Sprintf("charge %q visible", key), func() error {
		resp, err := http.Get(url + "/v1/charges?idempotency_key=" + key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

func TestHangingCardIsChargedWhileTheClientWaits(t *testing.T) {
	sim := newSimulator(simulator.Settings{Hang: time.Hour})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	ctx, giveUp := context.WithCancel(t.Context())
	defer giveUp()
	done := startHangingCharge(ctx, srv.URL, "hang-1")

	waitForCharge(t, srv.URL, "hang-1") // recorded while the response is held
	select {
	case r := <-done:
		t.Fatalf("the hanging charge answered (%v, %v) before the client gave up", r.resp, r.err)
	default:
	}

	t.Run("a replay answers at once", func(t *testing.T) {
		resp, err := postChargeTo(t.Context(), srv.URL, "hang-1", simulator.CardHangs)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay = %d (Idempotent-Replayed %q), want 200 true", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
		}
	})

	giveUp() // the client times out
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("hanging charge = %v, %v; want the client's cancellation", r.resp, r.err)
	}
	ch, err := sim.ChargeByKey("hang-1")
	if err != nil || ch.Status != simulator.StatusSucceeded {
		t.Errorf("charge after the client gave up = %+v, %v; want it succeeded", ch, err)
	}
	if got := len(sim.Charges()); got != 1 {
		t.Errorf("charges = %d, want 1", got)
	}
}

func TestHangingCardAnswersAfterTheHang(t *testing.T) {
	sim := newSimulator(simulator.Settings{Hang: time.Millisecond})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	r := <-startHangingCharge(t.Context(), srv.URL, "short")
	if r.err != nil || r.resp.StatusCode != http.StatusCreated {
		t.Fatalf("charge = %v, %v; want 201 once the hang is over", r.resp, r.err)
	}
}

func TestCloseReleasesHangingCharges(t *testing.T) {
	sim := newSimulator(simulator.Settings{Hang: time.Hour})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	done := startHangingCharge(t.Context(), srv.URL, "held")
	waitForCharge(t, srv.URL, "held")
	sim.Close()
	r := <-done
	if r.err != nil || r.resp.StatusCode != http.StatusCreated {
		t.Fatalf("charge = %v, %v; want 201 once released", r.resp, r.err)
	}
}
