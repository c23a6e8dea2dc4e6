package labs

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// partitionMinAge is how long a message must have waited in an outbox for
// lab 9 to take it for a service cut off the broker: its relay publishes
// within milliseconds while the broker answers.
const partitionMinAge = 10 * time.Second

// checkPartition is lab 9's check, on the compose stack's Prometheus:
// within the lookback, a service's outbox held a message for at least
// partitionMinAge while its publishes to the broker failed (it was cut
// off), and now the partition has healed and the saga settled — every
// outbox empty, no saga in flight, and checkouts finished since.
func checkPartition(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	if s.Prometheus == "" {
		v.Missing = append(v.Missing, "Prometheus is not running: start the compose stack (docker compose up)")
		return v, nil
	}
	p := newPrometheus(s.Prometheus)
	end := time.Now().Truncate(step)
	ages, err := p.queryRange(ctx, "max by (job) (outbox_oldest_pending_age_seconds)", end.Add(-lookback), end)
	if err != nil {
		return v, err
	}
	failures, err := p.query(ctx, fmt.Sprintf("sum by (job) (increase(outbox_publish_failures_total[%ds]))", int(lookback.Seconds())))
	if err != nil {
		return v, err
	}
	failed := map[string]float64{}
	for _, f := range failures {
		failed[f.labels["job"]] = f.value
	}
	// cut: the services whose outbox held a message that long while its
	// publishes failed; the last time it did.
	cut := map[string]time.Time{}
	longest := map[string]float64{}
	for _, series := range ages {
		job := series.labels["job"]
		for _, pt := range series.points {
			if pt.value >= partitionMinAge.Seconds() && failed[job] > 0 {
				cut[job] = pt.at
				longest[job] = max(longest[job], pt.value)
			}
		}
	}
	if len(cut) == 0 {
		v.Missing = append(v.Missing, fmt.Sprintf("no service has been cut off the broker in the last %s (no outbox held a message %s while its publishes failed): disconnect order's containers from the kafka network while checkouts are placed, for 30 s or more",
			inWords(lookback), inWords(partitionMinAge)))
		return v, nil
	}
	var last time.Time
	for _, job := range slices.Sorted(maps.Keys(cut)) {
		v.Seen = append(v.Seen, fmt.Sprintf("%s was cut off the broker: its outbox held a message for up to %.0f s, %.0f publishes failed (last held at %s)",
			job, longest[job], failed[job], clock(cut[job])))
		if cut[job].After(last) {
			last = cut[job]
		}
	}

	// Replicas of a service share its database, and each reports its
	// whole outbox: max, not sum.
	pending, err := p.query(ctx, "max by (job) (outbox_pending_messages)")
	if err != nil {
		return v, err
	}
	for _, sm := range pending {
		if sm.value > 0 {
			v.Missing = append(v.Missing, fmt.Sprintf("%s's outbox still holds %.0f messages: reconnect it to the broker (docker network connect) and wait for its relay", sm.labels["job"], sm.value))
		}
	}
	inFlight, _, err := p.scalar(ctx, "max(sum by (instance) (saga_instances))")
	if err != nil {
		return v, err
	}
	if inFlight > 0 {
		v.Missing = append(v.Missing, fmt.Sprintf("%.0f checkout sagas are still in flight: stop placing orders and wait for them to settle", inFlight))
	}
	// From two scrapes before the last held one: the sagas the partition
	// held finish within seconds of the heal, and an increase needs a
	// sample from before them (none finished while they were held).
	last = last.Add(-2 * step)
	finished, err := p.query(ctx, fmt.Sprintf(`sum by (status) (increase(saga_finished_total{definition="checkout"}[%ds]))`, int(time.Since(last).Seconds())))
	if err != nil {
		return v, err
	}
	byStatus := map[string]float64{}
	total := 0.0
	for _, f := range finished {
		byStatus[f.labels["status"]] = f.value
		total += f.value
	}
	if total < 1 {
		v.Missing = append(v.Missing, fmt.Sprintf("no checkout has finished since %s: the partition has not healed yet", clock(last)))
	} else if len(v.Missing) == 0 {
		v.Seen = append(v.Seen, fmt.Sprintf("the saga settled after the partition healed: about %.0f checkouts finished since %s (%.0f COMPLETED, %.0f FAILED), none is in flight and every outbox is empty",
			total, clock(last), byStatus["COMPLETED"], byStatus["FAILED"]))
	}
	return v, nil
}
