package saga

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// What a saga is made of: its Definition and Steps, the Commands they build,
// and the Instance, Status and Reply the orchestrator and the services
// exchange.

// Definition is a kind of saga: its steps, run in order.
type Definition struct {
	// Name identifies the definition in the database. Keep it stable while
	// sagas of it are in flight: an orchestrator only handles the
	// definitions it was given.
	Name string
	// Steps, at least one, with distinct names.
	Steps []Step
}

// Step is one step of a Definition.
type Step struct {
	// Name identifies the step in headers, replies, barrier rows and
	// metrics; unique within its Definition.
	Name string
	// Timeout is the deadline for the action's reply, from when the action
	// is sent; it must be positive. An action without a reply by then is
	// compensated (it may have taken effect).
	Timeout time.Duration
	// Action builds the step's command from the instance (its Data mostly)
	// and id, the message id the command is sent with (see Command.ID), so
	// that a payload which carries its own id is encoded once. It runs
	// inside the transition's transaction and may be called again if that
	// transaction rolls back: it must not have side effects.
	Action func(ctx context.Context, inst Instance, id string) (Command, error)
	// Compensate builds the command that undoes the action, with the same
	// rules as Action. It must be safe to send whether or not the action
	// took effect (participants use the Barrier). Nil: nothing to undo, the
	// step is skipped when compensating.
	Compensate func(ctx context.Context, inst Instance, id string) (Command, error)
}

// Command is a message to a participant, built by a Step and completed by
// the orchestrator before it reaches the Sender.
type Command struct {
	// ID is the message id the orchestrator chose and handed to the Step:
	// deterministic per saga, step, operation and attempt (see the package
	// doc). The orchestrator sets it, whatever the Step returned.
	ID string
	// Topic to publish to; set by the Step.
	Topic string
	// Key of the message, for per-key ordering; the saga id if the Step
	// leaves it empty.
	Key string
	// Payload, in the participant's format.
	Payload []byte
	// Headers from the Step, plus HeaderSagaID, HeaderStep and HeaderOp set
	// by the orchestrator (overriding the Step's).
	Headers map[string]string
}

func checkDefinition(d Definition) error {
	if d.Name == "" {
		return errors.New("definition without a name")
	}
	if len(d.Steps) == 0 {
		return fmt.Errorf("definition %q has no steps", d.Name)
	}
	seen := make(map[string]bool, len(d.Steps))
	for i, s := range d.Steps {
		switch {
		case validID("step", s.Name) != nil:
			return fmt.Errorf("definition %q: step %d: name %q is empty, too long or not UTF-8", d.Name, i, s.Name)
		case seen[s.Name]:
			return fmt.Errorf("definition %q: step name %q used twice", d.Name, s.Name)
		case s.Action == nil:
			return fmt.Errorf("definition %q: step %q has no Action", d.Name, s.Name)
		case s.Timeout <= 0:
			return fmt.Errorf("definition %q: step %q has no positive Timeout", d.Name, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// Status of a saga instance.
type Status string

// Statuses of a saga instance. RUNNING and COMPENSATING are in flight,
// COMPLETED and FAILED are final.
const (
	StatusRunning      Status = "RUNNING"
	StatusCompensating Status = "COMPENSATING"
	StatusCompleted    Status = "COMPLETED"
	StatusFailed       Status = "FAILED"
)

// Outcomes of a step operation, reported to Hooks.OnSteps and kept in
// saga_steps.status.
const (
	StepStarted   = "STARTED"   // the operation's command was sent (the first time)
	StepSucceeded = "SUCCEEDED" // replied OK
	StepFailed    = "FAILED"    // an action replied OK=false: refused, no effect
	StepTimedOut  = "TIMED_OUT" // an action got no reply before its deadline
)

// StepOutcome is an outcome of a step's operation, as Hooks.OnSteps
// reports it.
type StepOutcome struct {
	Step    string // the step's name
	Op      string // OpAction or OpCompensate
	Outcome string // StepStarted, StepSucceeded, StepFailed or StepTimedOut
}

// Instance is a saga instance as stored. Steps and hooks receive it as it is
// after the transition they are part of.
type Instance struct {
	ID         string
	Definition string
	// Data is the caller's JSON given to Start.
	Data   []byte
	Status Status
	// Step is the index of the step in flight: its action while RUNNING, its
	// compensation while COMPENSATING. Once final: the last step touched.
	Step int
	// Attempt counts the sends of the operation in flight, from 1.
	Attempt int
	// DueAt is the action's deadline while RUNNING, the time the compensation
	// is re-sent unless acknowledged while COMPENSATING, zero once final.
	DueAt time.Time
	// Reason why the saga is compensating or FAILED: "STEP: REASON" from a
	// refusal, "STEP: timed out" from a deadline.
	Reason string
	// Version counts the transitions, from 1 at Start.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Reply is a participant's answer to a command, as the service's consumer
// decoded it (Correlation.Reply builds one from the reply's headers).
type Reply struct {
	SagaID string
	Step   string // the step's name
	Op     string // OpAction or OpCompensate
	OK     bool
	// Reason of a refusal, for the saga's Reason and the logs.
	Reason string
}
