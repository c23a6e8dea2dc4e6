package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/discovery/devagent"
)

// Timeouts of the run, short so that steps time out and compensations run
// within it. ORDER_CHARGE_TIMEOUT is at least 3× PAYMENT_PSP_TIMEOUT, so a
// charge that merely hit one slow PSP call still answers in time, and
// PSP_HANG exceeds PAYMENT_PSP_TIMEOUT, so the hanging card makes ambiguous
// charges.
//
// The step timeouts are a minute: with a kill about every second, each
// consumer group loses a member every few seconds and stands still while it
// rebalances, so a participant's partitions often lag tens of seconds; with
// 20s deadlines 8,308 of 10,001 orders were cancelled on reserve-stock
// timeouts (seed 21), which exercises little but cancellation.
//
// INVENTORY_RESERVATION_TTL is less than the three step deadlines together,
// on purpose: some reservations expire before their CommitReservation
// arrives, and the saga must then cancel the order and refund it (a run with
// these timeouts, before commit-reservation was a saga step, confirmed 99
// orders whose stock was back on sale).
//
// Compensations are re-sent with the services' default backoff cap (a
// minute): a participant that lags behind its partitions after a run of
// kills would otherwise be sent a re-send of every compensation waiting for
// it every few seconds, each one more message for it to work through, and
// fall further behind.
const (
	pspTimeout      = "1s"
	pspHang         = "3s"
	reserveTimeout  = "1m"
	chargeTimeout   = "1m"
	commitTimeout   = "1m"
	sagaPoll        = "100ms"
	sagaRetryMin    = "2s"
	sagaRetryMax    = "1m"
	reservationTTL  = "2m"
	expiryInterval  = "5s"
	stopTimeout     = 15 * time.Second
	replicasPerSide = 2
)

// settleWindow is how long the stack keeps running, at least, once the
// faults stop and before the snapshot: the longest backoff of any retry in
// the stack, so that whatever is waiting to be retried (a compensation
// re-sent after up to sagaRetryMax, a consumer's retry after up to 30s, the
// outbox relay's after up to 10s) is retried, and a late duplicate applied,
// before the checker looks.
const settleWindow = time.Minute

// replica is one killable service process and whether it is up (started
// and ready), which only the replica's watcher changes.
type replica struct {
	p  *supervise.Process
	up atomic.Bool
}

// stack is the running processes of a chaos run.
type stack struct {
	out                *supervise.Output
	fixed              []*supervise.Process // consul, broker, psp: never killed
	replicas           []*replica
	gateway            *supervise.Process
	all                []*supervise.Process // in start order
	gatewayURL, pspURL string
	brokerAddr         string
	consulAddr         string // the agent's HTTP API, host:port

	restarts atomic.Int64
	watchers sync.WaitGroup
	// calm, once set, restarts replicas without the crash injection: the
	// faults have stopped.
	calm atomic.Bool
}

// freePorts returns n TCP ports on 127.0.0.1 that were free just now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newStack describes the processes; databases maps a service to its URL.
func newStack(o options, out *supervise.Output, databases map[string]string) (*stack, error) {
	ports, err := freePorts(3 + 3*replicasPerSide + 4)
	if err != nil {
		return nil, err
	}
	agent := devagent.Ports{HTTP: ports[0], Server: ports[1], SerfLAN: ports[2], SerfWAN: ports[3]}
	ports = ports[4:]
	next := func() string {
		p := ports[0]
		ports = ports[1:]
		return "127.0.0.1:" + strconv.Itoa(p)
	}
	broker, psp := next(), next()
	consulAddr := "127.0.0.1:" + strconv.Itoa(agent.HTTP)
	s := &stack{out: out, pspURL: "http://" + psp, brokerAddr: broker, consulAddr: consulAddr}
	s.fixed = []*supervise.Process{
		{Name: "consul", Path: o.consul, Args: devagent.Args("chaos", agent),
			URL: "http://" + consulAddr, ReadyPath: "/v1/status/leader"},
		{Name: "broker", Path: filepath.Join(o.bin, "broker"),
			Args: []string{"-addr", broker, "-data-dir", filepath.Join(o.dir, "kafka")}, URL: "kafka://" + broker},
		{Name: "psp", Path: filepath.Join(o.bin, "psp"), URL: s.pspURL,
			Env: []string{"PSP_HTTP_ADDR=" + psp, "PSP_HANG=" + pspHang}},
	}
	s.all = append(s.all, s.fixed...)
	crash := strconv.FormatFloat(o.crashProbability, 'f', -1, 64)
	for _, svc := range []struct {
		name, prefix string
		env          []string
	}{
		{"inventory", "INVENTORY", []string{"INVENTORY_RESERVATION_TTL=" + reservationTTL, "INVENTORY_EXPIRY_INTERVAL=" + expiryInterval}},
		{"payment", "PAYMENT", []string{"PAYMENT_PSP_URL=" + s.pspURL, "PAYMENT_PSP_TIMEOUT=" + pspTimeout}},
		{"order", "ORDER", []string{"ORDER_RESERVE_TIMEOUT=" + reserveTimeout, "ORDER_CHARGE_TIMEOUT=" + chargeTimeout,
			"ORDER_COMMIT_TIMEOUT=" + commitTimeout,
			"ORDER_SAGA_POLL_INTERVAL=" + sagaPoll, "ORDER_SAGA_RETRY_MIN=" + sagaRetryMin, "ORDER_SAGA_RETRY_MAX=" + sagaRetryMax,
			// Stale replies are logged at debug by the orchestrator.
			"ORDER_LOG_LEVEL=debug"}},
	} {
		for i := 1; i <= replicasPerSide; i++ {
			addr := next()
			env := append([]string{
				svc.prefix + "_HTTP_ADDR=" + addr,
				svc.prefix + "_DATABASE_URL=" + databases[svc.name],
				svc.prefix + "_KAFKA_BROKERS=" + broker,
				svc.prefix + "_CHAOS_CRASH_AFTER_HANDLE=" + crash,
				svc.prefix + "_SHUTDOWN_TIMEOUT=5s",
				"CONSUL_HTTP_ADDR=" + consulAddr,
			}, svc.env...)
			p := &supervise.Process{Name: fmt.Sprintf("%s-%d", svc.name, i), Path: filepath.Join(o.bin, svc.name), Env: env, URL: "http://" + addr}
			s.replicas = append(s.replicas, &replica{p: p})
			s.all = append(s.all, p)
		}
	}
	gw := next()
	s.gatewayURL = "http://" + gw
	s.gateway = &supervise.Process{Name: "gateway", Path: filepath.Join(o.bin, "gateway"), URL: s.gatewayURL,
		Env: []string{"GATEWAY_HTTP_ADDR=" + gw, "CONSUL_HTTP_ADDR=" + consulAddr,
			"GATEWAY_PSP_URL=" + s.pspURL, "GATEWAY_TOKEN_TTL=24h"}}
	s.all = append(s.all, s.gateway)
	return s, nil
}

// start starts every process in order and a watcher per replica that
// restarts it whenever it exits, until ctx ends.
func (s *stack) start(ctx context.Context, readyTimeout time.Duration) error {
	started, err := supervise.StartAll(ctx, s.out, s.all, readyTimeout)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = supervise.StopAll(s.out, started, stopTimeout)
		return err
	}
	for _, r := range s.replicas {
		r.up.Store(true)
		s.watchers.Go(func() { s.watch(ctx, r, readyTimeout) })
	}
	return s.waitRegistered(ctx, readyTimeout)
}

// waitRegistered waits until Consul holds every replica as a passing
// instance of its service: the gateway finds order and inventory only
// there, so a run whose services did not register would test nothing.
func (s *stack) waitRegistered(ctx context.Context, timeout time.Duration) error {
	want := map[string]int{}
	for _, r := range s.replicas {
		want[strings.Split(r.p.Name, "-")[0]]++
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := devagent.WaitPassing(ctx, s.consulAddr, want); err != nil {
		return err
	}
	s.out.Printf("chaos", "Consul holds every replica as passing: %v", want)
	return nil
}

// watch restarts r each time it exits, until ctx ends.
func (s *stack) watch(ctx context.Context, r *replica, readyTimeout time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.p.Exited():
		}
		r.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		if s.calm.Load() {
			r.p.Env = calmEnv(r.p.Env)
		} else {
			s.restarts.Add(1)
		}
		if err := r.p.Start(s.out); err != nil {
			s.out.Printf("chaos", "restart %s: %v", r.p.Name, err)
			return
		}
		if err := r.p.WaitReady(ctx, readyTimeout); err != nil {
			s.out.Printf("chaos", "%v", err)
			continue // it exited, or ctx ended: the loop sees which
		}
		r.up.Store(true)
	}
}

// calmEnv returns env with the crash injection turned off.
func calmEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); strings.HasSuffix(k, "_CHAOS_CRASH_AFTER_HANDLE") {
			kv = k + "=0"
		}
		out = append(out, kv)
	}
	return out
}

// calmDown stops the faults: it restarts every replica, one at a time and
// gracefully, without the crash injection, and waits until all are up.
func (s *stack) calmDown(ctx context.Context, readyTimeout time.Duration) error {
	s.calm.Store(true)
	for _, r := range s.replicas {
		if err := invariants.Poll(ctx, readyTimeout, r.up.Load); err != nil {
			return fmt.Errorf("%s not up: %w", r.p.Name, err)
		}
		r.up.Store(false) // not before the watcher has restarted it
		_ = r.p.Stop(s.out, stopTimeout)
		if err := invariants.Poll(ctx, readyTimeout, r.up.Load); err != nil {
			return fmt.Errorf("%s not up again: %w", r.p.Name, err)
		}
	}
	return nil
}

// killOne SIGKILLs a random replica that is up; false if none was.
func (s *stack) killOne(rng *rand.Rand) bool {
	var up []*replica
	for _, r := range s.replicas {
		if r.up.Load() {
			up = append(up, r)
		}
	}
	if len(up) == 0 {
		return false
	}
	r := up[rng.IntN(len(up))]
	s.out.Printf("chaos", "SIGKILL %s", r.p.Name)
	return r.p.Kill()
}

// stopReplicas stops the replicas for good, gracefully, once the
// watchers, whose ctx must have ended, have returned: the services stop
// writing before the snapshot is read.
func (s *stack) stopReplicas() {
	s.watchers.Wait()
	procs := make([]*supervise.Process, len(s.replicas))
	for i, r := range s.replicas {
		procs[i] = r.p
	}
	if err := supervise.StopAll(s.out, procs, stopTimeout); err != nil {
		s.out.Printf("chaos", "stop replicas: %v", err)
	}
}

// stop waits for the watchers, whose ctx must have ended, then stops every
// process in reverse order. Exit codes are not errors here: a replica may
// have been killed, and the checker judges the outcome.
func (s *stack) stop() {
	s.watchers.Wait()
	if err := supervise.StopAll(s.out, s.all, stopTimeout); err != nil {
		s.out.Printf("chaos", "stop: %v", err)
	}
}
