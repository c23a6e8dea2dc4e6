// Package config reads a service's settings from environment variables.
//
// A Reader is handed the process's getenv function (os.Getenv in main, a map
// lookup in tests), so configuration is read in one place and never from
// package-level state. Every getter takes the variable's name and its default;
// values that do not parse are collected, and Err reports all of them at once,
// each naming the variable:
//
//	ORDER_SHUTDOWN_TIMEOUT: "ten" is not a duration (use e.g. 500ms, 10s, 1m)
//
// Written by hand rather than with a struct-tag library because the ones we
// tried name the Go struct field, not the environment variable, when a value
// does not parse, and the variable is what an operator has to fix.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reader reads prefixed environment variables and remembers what did not parse.
// The zero value is not usable; call New. A Reader is not safe for concurrent use.
type Reader struct {
	getenv func(string) string
	prefix string
	errs   []error
}

// New returns a Reader over getenv whose getters prepend prefix (for example
// "ORDER_") to every name. An empty variable counts as unset.
func New(getenv func(string) string, prefix string) *Reader {
	return &Reader{getenv: getenv, prefix: prefix}
}

// Err returns every problem found so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

func (r *Reader) lookup(name string) (key, value string, ok bool) {
	key = r.prefix + name
	value = strings.TrimSpace(r.getenv(key))
	return key, value, value != ""
}

func (r *Reader) fail(key, value, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s: %q is not %s", key, value, want))
}

// String returns the variable, or def when it is unset.
func (r *Reader) String(name, def string) string {
	if _, v, ok := r.lookup(name); ok {
		return v
	}
	return def
}

// Check records err, unless nil, as a problem of the variable name: for
// a value that String returned and the caller parsed itself (a JSON rules
// document, say).
func (r *Reader) Check(name string, err error) {
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", r.prefix+name, err))
	}
}

// Int returns the variable as an integer within [min, max], or def when unset.
func (r *Reader) Int(name string, def, min, max int) int {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(key, v, fmt.Sprintf("an integer from %d to %d", min, max))
		return def
	}
	return n
}

// Duration returns the variable as a positive time.Duration, or def when unset.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(key, v, "a positive duration (use e.g. 500ms, 10s, 1m)")
		return def
	}
	return d
}

// Probability returns the variable as a number from 0 to 1, or def when unset.
func (r *Reader) Probability(name string, def float64) float64 {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || !(p >= 0 && p <= 1) { // the negation also refuses NaN
		r.fail(key, v, "a probability from 0 to 1")
		return def
	}
	return p
}

// Addr returns the variable as a host:port listen or dial address, or def when unset.
func (r *Reader) Addr(name, def string) string {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	if !validAddr(v) {
		r.fail(key, v, "a host:port address (e.g. 127.0.0.1:8080)")
		return def
	}
	return v
}

// Addrs returns the variable as a comma-separated list of host:port addresses,
// or def when unset.
func (r *Reader) Addrs(name string, def []string) []string {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if !validAddr(a) {
			r.fail(key, v, "a comma-separated list of host:port addresses")
			return def
		}
		addrs = append(addrs, a)
	}
	return addrs
}

// URL returns the variable as an absolute URL whose scheme is one of schemes,
// or def when unset.
func (r *Reader) URL(name, def string, schemes ...string) string {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		// Report the scheme list, never the value: URLs may carry passwords.
		r.errs = append(r.errs, fmt.Errorf("%s: is not a URL with scheme %s", key, strings.Join(schemes, ", ")))
		return def
	}
	return v
}

// LogLevel returns the variable as a slog level (debug, info, warn, error),
// or def when unset.
func (r *Reader) LogLevel(name string, def slog.Level) slog.Level {
	key, v, ok := r.lookup(name)
	if !ok {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(key, v, "a log level (debug, info, warn, error)")
		return def
	}
	return l
}

func validAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// Redact returns rawURL with its password replaced by "xxxxx", for logs and
// printed configuration. A value that is not a URL is hidden entirely.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
