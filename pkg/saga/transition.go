package saga

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/telemetry"
)

// Writing a transition decided by the state machine (machine.go): the
// instance row, the step history, the command and the hooks, in the
// transaction of the event, and then the metrics and logs once it committed.

// apply writes the transition m of was: the instance, if it is still at
// was's version, then everything perform does. It returns errConflict if
// another transition got there first.
func (o *Orchestrator) apply(ctx context.Context, tx *gorm.DB, def *Definition, was Instance, m move, now time.Time) error {
	m.next.Version, m.next.UpdatedAt = was.Version+1, now
	if err := updateInstance(tx, m.next, was.Version); err != nil {
		return err
	}
	return o.perform(ctx, tx, def, m, now)
}

// perform does the rest of a transition whose instance row is written:
// step history and OnSteps, the command, the final hook.
func (o *Orchestrator) perform(ctx context.Context, tx *gorm.DB, def *Definition, m move, now time.Time) error {
	inst := m.next
	if len(m.events) > 0 {
		outcomes := make([]StepOutcome, len(m.events))
		for i, e := range m.events {
			outcomes[i] = StepOutcome{Step: def.Steps[e.step].Name, Op: e.op, Outcome: e.outcome}
		}
		if err := recordSteps(tx, inst.ID, m.events, outcomes, now); err != nil {
			return err
		}
		if o.hooks.OnSteps != nil {
			if err := o.hooks.OnSteps(ctx, tx, inst, outcomes); err != nil {
				return fmt.Errorf("hook OnSteps: %w", err)
			}
		}
	}
	if m.retry {
		if err := recordAttempt(tx, inst); err != nil {
			return err
		}
	}
	if m.send {
		if err := o.send(ctx, tx, def, inst); err != nil {
			return err
		}
	}
	switch {
	case inst.Status == StatusCompleted && o.hooks.OnCompleted != nil:
		if err := o.hooks.OnCompleted(ctx, tx, inst); err != nil {
			return fmt.Errorf("hook OnCompleted: %w", err)
		}
	case inst.Status == StatusFailed && o.hooks.OnFailed != nil:
		if err := o.hooks.OnFailed(ctx, tx, inst, inst.Reason); err != nil {
			return fmt.Errorf("hook OnFailed: %w", err)
		}
	}
	return nil
}

// send builds the command of inst's operation in flight and hands it to the
// Sender, in a span of the step: the command's trace context, so that the
// participant's handling is a child of the step.
func (o *Orchestrator) send(ctx context.Context, tx *gorm.DB, def *Definition, inst Instance) (err error) {
	step := def.Steps[inst.Step]
	op, build := OpAction, step.Action
	if inst.Status == StatusCompensating {
		op, build = OpCompensate, step.Compensate
	}
	ctx, span := o.startSpan(ctx, op+" "+step.Name, inst, stepAttrs(step.Name, op, inst.Attempt)...)
	defer func() { endSpan(span, err) }()
	id := messageID(inst.ID, inst.Step, op, inst.Attempt)
	cmd, err := build(ctx, inst, id)
	if err != nil {
		return fmt.Errorf("build %s command of step %s: %w", op, step.Name, err)
	}
	cmd.ID = id
	if cmd.Key == "" {
		cmd.Key = inst.ID
	}
	headers := make(map[string]string, len(cmd.Headers)+3)
	maps.Copy(headers, cmd.Headers)
	Correlation{SagaID: inst.ID, Step: step.Name, Op: op}.setHeaders(headers)
	cmd.Headers = headers
	if err := o.sender.Send(ctx, tx, cmd); err != nil {
		return fmt.Errorf("send %s command of step %s: %w", op, step.Name, err)
	}
	return nil
}

// report updates metrics and logs for a committed transition m of was.
func (o *Orchestrator) report(ctx context.Context, def *Definition, was Instance, m move, now time.Time) {
	n := m.next
	attrs := []any{slog.String("saga_id", n.ID), slog.String("definition", def.Name)}
	for _, e := range m.events {
		step := def.Steps[e.step].Name
		if e.outcome == StepStarted {
			if e.op == OpCompensate {
				o.metrics.compensations.WithLabelValues(def.Name, step).Inc()
			}
			continue
		}
		// was was written when the command that ended was sent.
		telemetry.Observe(ctx, o.metrics.steps.WithLabelValues(def.Name, step, e.op, strings.ToLower(e.outcome)), now.Sub(was.UpdatedAt))
		if e.outcome == StepTimedOut {
			o.metrics.timeouts.WithLabelValues(def.Name, step).Inc()
			o.log.WarnContext(ctx, "saga step timed out, compensating", append(attrs, slog.String("step", step))...)
		}
	}
	if m.retry {
		step := def.Steps[n.Step].Name
		o.metrics.retries.WithLabelValues(def.Name, step).Inc()
		o.log.WarnContext(ctx, "saga compensation re-sent", append(attrs, slog.String("step", step),
			slog.Int("attempt", n.Attempt), slog.Time("next_due_at", n.DueAt))...)
	}
	if n.Status == was.Status || (n.Status != StatusCompleted && n.Status != StatusFailed) {
		return
	}
	reason := ""
	if n.Status == StatusFailed {
		reason = failureReason(n.Reason)
	}
	o.metrics.finished.WithLabelValues(def.Name, string(n.Status), reason).Inc()
	telemetry.Observe(ctx, o.metrics.duration.WithLabelValues(def.Name, string(n.Status)), now.Sub(n.CreatedAt))
	if n.Status == StatusCompleted {
		o.log.InfoContext(ctx, "saga completed", attrs...)
	} else {
		o.log.InfoContext(ctx, "saga failed", append(attrs, slog.String("reason", n.Reason))...)
	}
}
