// Package clocktest is the clock tests set by hand. Code whose behaviour
// depends on time (deadlines, reservation expiry, breakers) takes a
// func() time.Time; a test passes Clock.Now and moves time with Advance
// instead of sleeping.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when told to. It is safe for concurrent
// use. Its zero value reads the zero time; New sets a start.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time. Pass the method value c.Now where code wants
// a func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
