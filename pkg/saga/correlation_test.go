package saga_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/saga"
)

func TestParseCorrelation(t *testing.T) {
	valid := map[string]string{saga.HeaderSagaID: "order-1", saga.HeaderStep: "reserve", saga.HeaderOp: saga.OpCompensate}
	with := func(key, value string) map[string]string {
		h := map[string]string{"traceparent": "00-abc"}
		for k, v := range valid {
			h[k] = v
		}
		h[key] = value
		return h
	}
	tests := []struct {
		name    string
		headers map[string]string
		want    saga.Correlation
		wantErr error
	}{
		{"valid, other headers ignored", with("traceparent", "00-x"), saga.Correlation{SagaID: "order-1", Step: "reserve", Op: saga.OpCompensate}, nil},
		{"no headers", nil, saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"no saga id", with(saga.HeaderSagaID, ""), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"no step", with(saga.HeaderStep, ""), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"unknown op", with(saga.HeaderOp, "undo"), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"op in upper case", with(saga.HeaderOp, "ACTION"), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"saga id too long", with(saga.HeaderSagaID, strings.Repeat("x", 257)), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"step not UTF-8", with(saga.HeaderStep, "\xff"), saga.Correlation{}, saga.ErrInvalidCorrelation},
		{"NUL in saga id", with(saga.HeaderSagaID, "a\x00b"), saga.Correlation{}, saga.ErrInvalidCorrelation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := saga.ParseCorrelation(tt.headers)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseCorrelation error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCorrelation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCorrelationReply(t *testing.T) {
	c := saga.Correlation{SagaID: "order-1", Step: "charge", Op: saga.OpAction}
	want := saga.Reply{SagaID: "order-1", Step: "charge", Op: saga.OpAction, OK: false, Reason: "card declined"}
	if diff := cmp.Diff(want, c.Reply(false, "card declined")); diff != "" {
		t.Errorf("Reply (-want +got):\n%s", diff)
	}
}

// FuzzParseCorrelation feeds headers as they come off the network: parsing
// never panics, and what it accepts survives a round trip through Headers.
func FuzzParseCorrelation(f *testing.F) {
	f.Add("order-1", "reserve", "action")
	f.Add("", "charge", "compensate")
	f.Add("o\x00", "s", "action")
	f.Add("\xff\xfe", "é", "compensate")
	f.Fuzz(func(t *testing.T, sagaID, step, op string) {
		c, err := saga.ParseCorrelation(map[string]string{saga.HeaderSagaID: sagaID, saga.HeaderStep: step, saga.HeaderOp: op})
		if err != nil {
			if !errors.Is(err, saga.ErrInvalidCorrelation) {
				t.Fatalf("error %v does not wrap ErrInvalidCorrelation", err)
			}
			return
		}
		if c.SagaID != sagaID || c.Step != step || c.Op != op {
			t.Fatalf("ParseCorrelation = %+v, want the headers' values", c)
		}
		again, err := saga.ParseCorrelation(c.Headers())
		if err != nil || again != c {
			t.Fatalf("round trip = %+v, %v; want %+v", again, err, c)
		}
	})
}

func TestOpOf(t *testing.T) {
	tests := []struct {
		compensation bool
		want         string
	}{
		{false, saga.OpAction},
		{true, saga.OpCompensate},
	}
	for _, tt := range tests {
		if got := saga.OpOf(tt.compensation); got != tt.want {
			t.Errorf("OpOf(%v) = %q, want %q", tt.compensation, got, tt.want)
		}
	}
}
