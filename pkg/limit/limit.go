package limit

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/microshop/microshop/pkg/problem"
)

// Config configures a Limiter. The zero value is usable.
type Config struct {
	// User names the authenticated user of a request, "" for none (then no
	// per-user bucket applies). It runs before the handler, on every
	// request that is not critical, so it must be cheap and must not read
	// the body. nil: no request has a user.
	User func(*http.Request) string
	// Logger receives a line when rules change; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is where the limiter_* families are registered; nil: not
	// exported.
	Metrics prometheus.Registerer
	// Now is the clock of the token buckets; nil means time.Now.
	Now func() time.Time
	// Routes are the program's own rules of its routes, their priorities
	// mostly: code knows which route is a checkout. A rules document's
	// route of the same key replaces the program's.
	Routes map[string]Route
}

// Limiter is the middleware of one process. Create it with New; it is
// safe for concurrent use, and SetRules may be called while it serves.
type Limiter struct {
	user    func(*http.Request) string
	routes  map[string]Route
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu    sync.Mutex // serialises SetRules and Close
	state atomic.Pointer[state]
}

// state is what one Rules document puts in force.
type state struct {
	rules      Rules
	adaptive   *counted // nil: no adaptive limit
	routes     map[string]*rate.Limiter
	users      *userBuckets // across routes; nil: no per-user cap
	routeUsers map[string]*userBuckets
	retryAfter string // seconds, for the header
}

// New returns a Limiter enforcing rules.
func New(cfg Config, rules Rules) (*Limiter, error) {
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	l := &Limiter{user: cfg.User, routes: maps.Clone(cfg.Routes), log: cmp.Or(cfg.Logger, slog.Default()), now: cfg.Now, metrics: m}
	if l.user == nil {
		l.user = func(*http.Request) string { return "" }
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := l.SetRules(rules); err != nil {
		return nil, err
	}
	return l, nil
}

// SetRules puts rules in force. Buckets start full again; the adaptive
// algorithm, if it stays the same, keeps what it learnt.
func (l *Limiter) SetRules(rules Rules) error {
	routes := maps.Clone(l.routes)
	if routes == nil {
		routes = map[string]Route{}
	}
	maps.Copy(routes, rules.Routes)
	rules.Routes = routes
	if err := Validate(rules); err != nil {
		return fmt.Errorf("limit rules: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.state.Load()
	s := &state{
		rules:      rules,
		routes:     map[string]*rate.Limiter{},
		routeUsers: map[string]*userBuckets{},
		retryAfter: seconds(rules.retryAfter()),
	}
	switch {
	case old != nil && old.rules.algorithm() == rules.algorithm():
		s.adaptive = old.adaptive
	default:
		if old != nil && old.adaptive != nil {
			old.adaptive.Close()
		}
		a, err := NewAdaptive(rules.algorithm())
		if err != nil {
			return fmt.Errorf("limit rules: %w", err)
		}
		if a != nil {
			s.adaptive = &counted{Adaptive: a}
		}
	}
	now := l.now()
	for key, rt := range rules.Routes {
		if rt.Bucket.enabled() {
			s.routes[key] = newBucket(rt.Bucket, now)
		}
		if rt.User.enabled() {
			s.routeUsers[key] = newUserBuckets(rt.User)
		}
	}
	if rules.User.enabled() {
		s.users = newUserBuckets(rules.User)
	}
	l.state.Store(s)
	// The gauges follow the algorithm in force: limiter_limit is 0 once
	// adaptive limiting is off, not the last limit of the algorithm it
	// replaced, and is set now, not only after the next answer.
	limit := 0
	if s.adaptive != nil {
		limit = s.adaptive.Limit()
	}
	l.metrics.inForce(rules.algorithm(), limit)
	l.log.Info("limit rules in force", slog.String("adaptive", string(rules.algorithm())),
		slog.Int("routes", len(rules.Routes)), slog.Float64("user_rate", rules.User.Rate))
	return nil
}

// Close releases the adaptive algorithm. Call it once, when the Limiter
// no longer serves.
func (l *Limiter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.state.Load(); s != nil && s.adaptive != nil {
		s.adaptive.Close()
	}
}

// Limit is the adaptive limit in force, 0 when there is none.
func (l *Limiter) Limit() int {
	if a := l.state.Load().adaptive; a != nil {
		return a.Limit()
	}
	return 0
}

// Middleware returns the Gin middleware. Install it before the routes it
// guards (Gin gives middleware only to routes registered after it).
func (l *Limiter) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		s := l.state.Load()
		key := c.Request.Method + " " + c.FullPath()
		rt := s.rules.Routes[key]
		if rt.Priority == Critical {
			c.Next()
			return
		}
		if wait, ok := s.flow(l, c.Request, key); !ok {
			reason := reasonRoute
			if wait < 0 {
				reason, wait = reasonUser, -wait
			}
			l.metrics.rejected(rt.Priority, reason)
			reject(c, http.StatusTooManyRequests, seconds(wait), "too many requests; retry after the time in Retry-After")
			return
		}
		if s.adaptive == nil {
			l.metrics.admitted(rt.Priority)
			c.Next()
			return
		}
		release, ok := s.admit(rt.Priority)
		if !ok {
			l.metrics.rejected(rt.Priority, reasonAdaptive)
			reject(c, http.StatusServiceUnavailable, s.retryAfter, "the service is at its capacity; retry after the time in Retry-After")
			return
		}
		l.metrics.admitted(rt.Priority)
		l.metrics.inflight.Inc()
		defer func() {
			l.metrics.inflight.Dec()
			l.metrics.limit.Set(float64(s.adaptive.Limit()))
			release(c.Writer.Status() >= http.StatusInternalServerError)
		}()
		c.Next()
	}
}

// flow takes a token from the route's bucket and the user's; ok false
// means refused, wait is then how long until a token is due: positive for
// the route's bucket, negative for a user's.
func (s *state) flow(l *Limiter, r *http.Request, key string) (wait time.Duration, ok bool) {
	now := l.now()
	if b := s.routes[key]; b != nil {
		if d, ok := take(b, now); !ok {
			return d, false
		}
	}
	routeUsers := s.routeUsers[key]
	if s.users == nil && routeUsers == nil {
		return 0, true
	}
	user := l.user(r)
	if user == "" {
		return 0, true
	}
	for _, ub := range []*userBuckets{routeUsers, s.users} {
		if ub == nil {
			continue
		}
		if d, ok := take(ub.get(user, now), now); !ok {
			return -d, false
		}
	}
	return 0, true
}

// admit asks the adaptive algorithm for room for a request of priority p,
// after checking that p's share of the limit has room.
func (s *state) admit(p Priority) (func(bool), bool) {
	if lim := s.adaptive.Limit(); lim > 0 && float64(s.adaptive.inflight.Load()) >= p.Share()*float64(lim) {
		return nil, false
	}
	return s.adaptive.acquire()
}

// reject answers status with a problem and Retry-After, and stops the
// chain: the handler never runs.
func reject(c *gin.Context, status int, retryAfter, detail string) {
	c.Header("Retry-After", retryAfter)
	p := problem.New(status, detail)
	p.Instance = c.Request.URL.Path
	problem.Write(c.Writer, p)
	c.Abort()
}

// seconds formats d for Retry-After: whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

func newBucket(b Bucket, now time.Time) *rate.Limiter {
	lim := rate.NewLimiter(rate.Limit(b.Rate), b.Burst)
	lim.TokensAt(now) // starts full
	return lim
}

// take takes a token from b, or reports how long until one is due.
func take(b *rate.Limiter, now time.Time) (time.Duration, bool) {
	if b.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - b.TokensAt(now)
	return time.Duration(missing / float64(b.Limit()) * float64(time.Second)), false
}

// maxUsers bounds how many users' buckets are kept; past it, the buckets
// of users who have not been seen for a while (full again) are dropped.
const maxUsers = 10_000

// userBuckets are the buckets of one rule, one per user.
type userBuckets struct {
	rule Bucket
	mu   sync.Mutex
	m    map[string]*rate.Limiter
}

func newUserBuckets(b Bucket) *userBuckets {
	return &userBuckets{rule: b, m: map[string]*rate.Limiter{}}
}

func (u *userBuckets) get(user string, now time.Time) *rate.Limiter {
	u.mu.Lock()
	defer u.mu.Unlock()
	if b, ok := u.m[user]; ok {
		return b
	}
	if len(u.m) >= maxUsers {
		for k, b := range u.m {
			if b.TokensAt(now) >= float64(b.Burst()) {
				delete(u.m, k) // full: forgetting it changes nothing
			}
		}
	}
	b := newBucket(u.rule, now)
	u.m[user] = b
	return b
}
