package saga

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Operations of a step, in the "saga-op" header, Reply.Op and the barrier.
const (
	OpAction     = "action"
	OpCompensate = "compensate"
)

// OpOf returns the operation of a step's command, or of the reply to it:
// OpCompensate for a compensation, OpAction otherwise. A contract that tells
// the two apart with a flag (checkoutv1.Role) maps it here.
func OpOf(compensation bool) string {
	if compensation {
		return OpCompensate
	}
	return OpAction
}

// Headers that correlate a command with its saga, and its reply with the
// command. The orchestrator sets them on every command; a participant copies
// them onto its reply.
const (
	HeaderSagaID = "saga-id"
	HeaderStep   = "saga-step"
	HeaderOp     = "saga-op"
)

// maxIDLen bounds a saga id and a step name read from headers: both are
// stored as TEXT keys, and anything longer is not ours.
const maxIDLen = 256

// ErrInvalidCorrelation is returned for headers or a Reply that do not name
// a saga, a step and an operation this package knows.
var ErrInvalidCorrelation = errors.New("invalid saga correlation")

// Correlation names the operation of a saga step that a message is about.
// The zero value is invalid.
type Correlation struct {
	SagaID string
	Step   string // the step's name
	Op     string // OpAction or OpCompensate
}

// ParseCorrelation reads a Correlation from message headers (a command's,
// for a participant; a reply's, for the orchestrator's consumer). Headers
// come from the network: it returns ErrInvalidCorrelation unless all three
// are present, valid UTF-8 without NUL, at most 256 bytes, and the operation
// is known.
func ParseCorrelation(headers map[string]string) (Correlation, error) {
	c := Correlation{SagaID: headers[HeaderSagaID], Step: headers[HeaderStep], Op: headers[HeaderOp]}
	if err := c.validate(); err != nil {
		return Correlation{}, err
	}
	return c, nil
}

// Headers returns the headers that carry c, for a participant's reply.
func (c Correlation) Headers() map[string]string {
	h := make(map[string]string, 3)
	c.setHeaders(h)
	return h
}

// Reply returns the reply to the operation c names.
func (c Correlation) Reply(ok bool, reason string) Reply {
	return Reply{SagaID: c.SagaID, Step: c.Step, Op: c.Op, OK: ok, Reason: reason}
}

func (c Correlation) setHeaders(h map[string]string) {
	h[HeaderSagaID], h[HeaderStep], h[HeaderOp] = c.SagaID, c.Step, c.Op
}

func (c Correlation) validate() error {
	if err := validID("saga id", c.SagaID); err != nil {
		return err
	}
	if err := validID("step", c.Step); err != nil {
		return err
	}
	if c.Op != OpAction && c.Op != OpCompensate {
		return fmt.Errorf("%w: operation %q is neither %q nor %q", ErrInvalidCorrelation, c.Op, OpAction, OpCompensate)
	}
	return nil
}

// validID checks a saga id or step name before it is used as a key: both
// engines store TEXT, and PostgreSQL refuses NUL and invalid UTF-8 in it.
func validID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: no %s", ErrInvalidCorrelation, what)
	case len(s) > maxIDLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidCorrelation, what, maxIDLen)
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalidCorrelation, what)
	}
	return nil
}
