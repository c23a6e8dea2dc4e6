// Package discovery lets services find each other through Consul instead of
// fixed addresses, so that instances can come, go and restart while callers
// keep reaching a healthy one.
//
// Three parts, one per role:
//
//   - A [Registrar] puts one process in Consul's catalog: its service name,
//     a unique instance id, the address others dial, a version tag, and an
//     HTTP check on its /readyz that Consul's agent runs every second. An
//     instance whose check fails three times in a row stops being offered
//     to callers (one slow answer is not enough); one that
//     stays critical for DeregisterCriticalServiceAfter (a minute) is removed
//     from the catalog altogether, which cleans up after a process that
//     died without deregistering.
//   - A [ConsulResolver] follows the healthy instances of one service with
//     Consul's blocking queries: each query names the index of the answer
//     it already has, and Consul holds it open until that answer changes (or
//     a wait time passes), so a change reaches the caller within a round trip
//     without polling. When Consul cannot be reached the resolver retries
//     with exponential backoff and keeps answering with the last instances it
//     knew: a Consul outage must not become an outage of every caller.
//     [StaticResolver] answers the same question from a fixed list, for the
//     embedded mode where there is no Consul.
//   - A [Balancer] picks one instance per request from a resolver's answer.
//
// # Graceful shutdown: deregister before draining
//
// A stopping instance must first leave the catalog and only then stop
// accepting requests. Call [Registrar.Deregister] as soon as the stop signal
// arrives: every resolver watching the service gets the new list within one
// blocking-query round trip and stops choosing the instance. Then drain as
// before (readiness 503, finish the requests in flight, close the listener).
// The other order, draining first, leaves the instance in the catalog until
// its next failed check, up to a check interval during which callers are
// sent to a listener that refuses them.
//
// # Why power of two choices
//
// The balancer picks two instances at random and sends the request to the
// one with fewer requests in flight from this process (Mitzenmacher's "power
// of two choices"). Round robin gives every instance the same share even
// when one is slow — a replica in a GC pause, on a busy host, or still
// warming its pools — and requests queue there; counting in-flight requests
// notices a slow instance by the requests piling up on it and sends the next
// ones elsewhere, with no latency measurement to tune. Comparing two random
// instances instead of scanning for the least loaded keeps a pick O(1) and
// avoids sending a burst of requests to the same momentarily idle instance.
//
// The known weakness of any least-in-flight rule: an instance that fails
// fast (connection refused right after a crash) has few requests in flight
// and so attracts more than its share until Consul's check marks it
// critical, three check intervals (about 3 s) later. Callers therefore retry
// connection failures on another instance ([Balancer.Pick] takes the ids to
// avoid) and eject the instance for a few seconds ([Balancer.Eject]), so
// that the next requests do not try it at all.
package discovery
