// Package simulator is a payment service provider (PSP) stand-in: the
// third party the payment service charges cards through, with the behaviour
// that makes a real one hard to integrate with. Test cards decline or hang,
// idempotency keys make retries safe, and faults (latency, failures) can be
// switched on at run time.
//
// The state lives in memory, guarded by one mutex; a restart forgets every
// charge. The package is importable (not internal) so that the payment
// service's tests can run a real simulator in-process:
//
//	sim := simulator.New(simulator.Settings{})
//	srv := httptest.NewServer(sim.Handler())
//
// A Simulator can be driven over HTTP (Routes, Handler) or directly from Go
// (Charge, Refund, ChargeByKey, ...), which is how tests arrange state and
// check it. Faults apply to HTTP requests only.
package simulator

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/paycard"
	"github.com/microshop/microshop/pkg/problem"
)

// Charge and refund statuses.
const (
	StatusSucceeded = "succeeded"
	StatusDeclined  = "declined"
)

// MaxLatency bounds the latency fault.
const MaxLatency = 10 * time.Minute

// DefaultHang is how long a charge of CardHangs holds its response when
// Settings.Hang is zero.
const DefaultHang = 60 * time.Second

// Errors returned by the Go API; the HTTP layer maps them to problems.
var (
	// ErrNotFound: no charge or refund has that id or idempotency key.
	ErrNotFound = errors.New("not found")
	// ErrIdempotencyConflict: the key was used before with another request.
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	// ErrChargeDeclined: a refund of a declined charge.
	ErrChargeDeclined = errors.New("charge was declined: nothing to refund")
	// ErrRefundExceedsCharge: a refund larger than what is left of the charge.
	ErrRefundExceedsCharge = errors.New("refund exceeds the amount left to refund")
	// ErrInjectedFailure: the failure fault struck; nothing was recorded.
	ErrInjectedFailure = errors.New("injected failure: try again")
)

// Settings configures a Simulator. The zero value is usable.
type Settings struct {
	// Hang is how long a charge of CardHangs holds its response; zero means DefaultHang.
	Hang time.Duration
	// Now returns the current time, stamped on charges and refunds; nil means time.Now.
	Now func() time.Time
	// Random returns a number in [0, 1) each time a request may fail
	// (Faults.FailureRate > 0); nil means math/rand/v2's Float64. It is called
	// with the simulator's lock held, so it need not be safe for concurrent use.
	Random func() float64
	// Log receives internal errors of the HTTP handlers; nil discards them.
	Log *slog.Logger
}

// Faults are the failures the simulator injects into charge and refund
// requests over HTTP. The zero value injects nothing.
type Faults struct {
	// Latency is added to every charge and refund request, at most MaxLatency.
	Latency time.Duration
	// FailureRate is the probability, from 0 to 1, that a charge or refund
	// request answers 503 without recording anything.
	FailureRate float64
}

// Charge is a payment taken from a card.
type Charge struct {
	ID     string `json:"id"`
	Status string `json:"status"` // StatusSucceeded or StatusDeclined
	// Amount is in minor units of Currency.
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// DeclineCode says why a declined charge was declined, e.g. "card_declined".
	DeclineCode    string    `json:"decline_code,omitempty"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

// Refund gives back part or all of a succeeded charge.
type Refund struct {
	ID       string `json:"id"`
	ChargeID string `json:"charge_id"`
	Status   string `json:"status"` // always StatusSucceeded
	// Amount is in minor units of Currency, the charge's currency.
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

// ChargeRequest is the body of POST /v1/charges.
type ChargeRequest struct {
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	CardNumber string `json:"card_number"`
}

// RefundRequest is the body of POST /v1/refunds.
type RefundRequest struct {
	ChargeID string `json:"charge_id"`
	Amount   int64  `json:"amount"`
}

// Simulator is the PSP's state and behaviour. Create one with New; it is
// safe for concurrent use.
type Simulator struct {
	hang   time.Duration
	now    func() time.Time
	random func() float64
	log    *slog.Logger
	closed chan struct{}
	close  sync.Once

	mu          sync.Mutex
	faults      Faults
	charges     []*chargeRecord // in creation order
	chargeByID  map[string]*chargeRecord
	chargeByKey map[string]*chargeRecord
	refunds     []*refundRecord // in creation order
	refundByKey map[string]*refundRecord
}

type chargeRecord struct {
	charge Charge
	// request fingerprints the request (a hash, so no card number is kept)
	// to tell a replay from a conflicting reuse of the key.
	request  [sha256.Size]byte
	refunded int64
}

type refundRecord struct {
	refund  Refund
	request RefundRequest
}

// New returns an empty simulator without faults.
func New(s Settings) *Simulator {
	sim := &Simulator{
		hang:        s.Hang,
		now:         s.Now,
		random:      s.Random,
		log:         s.Log,
		closed:      make(chan struct{}),
		chargeByID:  make(map[string]*chargeRecord),
		chargeByKey: make(map[string]*chargeRecord),
		refundByKey: make(map[string]*refundRecord),
	}
	if sim.hang <= 0 {
		sim.hang = DefaultHang
	}
	if sim.now == nil {
		sim.now = time.Now
	}
	if sim.random == nil {
		sim.random = mathrand.Float64
	}
	if sim.log == nil {
		sim.log = slog.New(slog.DiscardHandler)
	}
	return sim
}

// Close ends every delay in progress (latency, hanging charges) and skips
// later ones, so that held responses are sent and an HTTP server can drain.
// The simulator keeps answering. Call it when shutting down; calling it
// again does nothing.
func (s *Simulator) Close() { s.close.Do(func() { close(s.closed) }) }

// Faults returns the faults in force.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults replaces the faults in force. It returns a 422 *problem.Details
// naming the field when a value is out of range, and changes nothing then.
func (s *Simulator) SetFaults(f Faults) error {
	if errs := f.validate(); len(errs) > 0 {
		return httpserver.Invalid(errs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

func (f Faults) validate() []problem.FieldError {
	var errs []problem.FieldError
	if f.Latency < 0 || f.Latency > MaxLatency {
		errs = append(errs, problem.FieldError{Field: "latency", Message: fmt.Sprintf("must be from 0s to %s", MaxLatency)})
	}
	if !(f.FailureRate >= 0 && f.FailureRate <= 1) { // also refuses NaN
		errs = append(errs, problem.FieldError{Field: "failure_rate", Message: "must be from 0 to 1"})
	}
	return errs
}

// Charge charges a card under an idempotency key. The first request with a
// key records a charge, succeeded or declined as the card decides (see the
// test cards), and returns it. A later request with the same key and the
// same values returns that charge again with replayed true; with other
// values it fails with ErrIdempotencyConflict. A missing or malformed key
// gives a 400 *problem.Details, invalid values a 422 naming each field.
//
// Charge never waits: holding the response of CardHangs is the HTTP
// handler's job.
func (s *Simulator) Charge(key string, req ChargeRequest) (ch Charge, replayed bool, err error) {
	if err := validateCharge(key, req); err != nil {
		return Charge{}, false, err
	}
	fingerprint := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s\x00%s", req.Amount, req.Currency, req.CardNumber))

	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.chargeByKey[key]; ok {
		if rec.request != fingerprint {
			return Charge{}, false, ErrIdempotencyConflict
		}
		return rec.charge, true, nil
	}
	rec := &chargeRecord{
		charge: Charge{
			ID:             "ch_" + rand.Text(),
			Status:         StatusSucceeded,
			Amount:         req.Amount,
			Currency:       req.Currency,
			IdempotencyKey: key,
			CreatedAt:      s.now().UTC(),
		},
		request: fingerprint,
	}
	if code := declineCode(req.CardNumber); code != "" {
		rec.charge.Status = StatusDeclined
		rec.charge.DeclineCode = code
	}
	s.charges = append(s.charges, rec)
	s.chargeByID[rec.charge.ID] = rec
	s.chargeByKey[key] = rec
	return rec.charge, false, nil
}

// Refund refunds part or all of a succeeded charge under an idempotency
// key, with the same replay rules as Charge. It fails with ErrNotFound for
// an unknown charge, ErrChargeDeclined for a declined one and
// ErrRefundExceedsCharge when the amount is more than the charge minus what
// was already refunded.
func (s *Simulator) Refund(key string, req RefundRequest) (r Refund, replayed bool, err error) {
	if err := validateRefund(key, req); err != nil {
		return Refund{}, false, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.refundByKey[key]; ok {
		if rec.request != req {
			return Refund{}, false, ErrIdempotencyConflict
		}
		return rec.refund, true, nil
	}
	charge, ok := s.chargeByID[req.ChargeID]
	switch {
	case !ok:
		return Refund{}, false, fmt.Errorf("charge %q: %w", req.ChargeID, ErrNotFound)
	case charge.charge.Status != StatusSucceeded:
		return Refund{}, false, ErrChargeDeclined
	case req.Amount > charge.charge.Amount-charge.refunded:
		return Refund{}, false, fmt.Errorf("%w (%d left)", ErrRefundExceedsCharge, charge.charge.Amount-charge.refunded)
	}
	charge.refunded += req.Amount
	rec := &refundRecord{
		refund: Refund{
			ID:             "re_" + rand.Text(),
			ChargeID:       req.ChargeID,
			Status:         StatusSucceeded,
			Amount:         req.Amount,
			Currency:       charge.charge.Currency,
			IdempotencyKey: key,
			CreatedAt:      s.now().UTC(),
		},
		request: req,
	}
	s.refunds = append(s.refunds, rec)
	s.refundByKey[key] = rec
	return rec.refund, false, nil
}

// ChargeByKey returns the charge recorded under an idempotency key, or ErrNotFound.
func (s *Simulator) ChargeByKey(key string) (Charge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.chargeByKey[key]
	if !ok {
		return Charge{}, ErrNotFound
	}
	return rec.charge, nil
}

// RefundByKey returns the refund recorded under an idempotency key, or ErrNotFound.
func (s *Simulator) RefundByKey(key string) (Refund, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refundByKey[key]
	if !ok {
		return Refund{}, ErrNotFound
	}
	return rec.refund, nil
}

// Charges returns every charge recorded, oldest first.
func (s *Simulator) Charges() []Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Charge, len(s.charges))
	for i, rec := range s.charges {
		out[i] = rec.charge
	}
	return out
}

// Refunds returns every refund recorded, oldest first.
func (s *Simulator) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Refund, len(s.refunds))
	for i, rec := range s.refunds {
		out[i] = rec.refund
	}
	return out
}

// injectFailure reports whether this request should fail, drawing from the
// random source only when the failure fault is on.
func (s *Simulator) injectFailure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.FailureRate > 0 && s.random() < s.faults.FailureRate
}

const maxKeyLen = 255

func validateKey(key string) *problem.FieldError {
	msg := ""
	switch {
	case key == "":
		msg = "header is required"
	case len(key) > maxKeyLen:
		msg = fmt.Sprintf("must be at most %d characters", maxKeyLen)
	default:
		for _, r := range key {
			if r < ' ' || r > '~' {
				msg = "must be printable ASCII"
				break
			}
		}
	}
	if msg == "" {
		return nil
	}
	return &problem.FieldError{Field: "Idempotency-Key", Message: msg}
}

// keyProblem is the 400 answer to a missing or malformed Idempotency-Key:
// the request is unusable whatever its body says.
func keyProblem(fe *problem.FieldError) *problem.Details {
	p := problem.New(http.StatusBadRequest, "Idempotency-Key "+fe.Message)
	p.Errors = []problem.FieldError{*fe}
	return &p
}

func validateCharge(key string, req ChargeRequest) error {
	if fe := validateKey(key); fe != nil {
		return keyProblem(fe)
	}
	var errs []problem.FieldError
	if req.Amount <= 0 {
		errs = append(errs, problem.FieldError{Field: "amount", Message: "must be a positive number of minor units"})
	}
	if !money.ValidCurrency(req.Currency) {
		errs = append(errs, problem.FieldError{Field: "currency", Message: "must be an ISO 4217 code such as EUR"})
	}
	if !paycard.Valid(req.CardNumber) {
		errs = append(errs, problem.FieldError{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"})
	}
	if len(errs) > 0 {
		return httpserver.Invalid(errs...)
	}
	return nil
}

func validateRefund(key string, req RefundRequest) error {
	if fe := validateKey(key); fe != nil {
		return keyProblem(fe)
	}
	var errs []problem.FieldError
	if req.ChargeID == "" {
		errs = append(errs, problem.FieldError{Field: "charge_id", Message: "is required"})
	}
	if req.Amount <= 0 {
		errs = append(errs, problem.FieldError{Field: "amount", Message: "must be a positive number of minor units"})
	}
	if len(errs) > 0 {
		return httpserver.Invalid(errs...)
	}
	return nil
}
