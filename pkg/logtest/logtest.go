// Package logtest collects what code under test logs, so that a test can
// read it back: a Buffer is the io.Writer to give a slog handler, or a
// service's stdout, while other goroutines are still writing to it.
package logtest

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use: any number of goroutines
// may Write while others read. Each Write is appended whole, so a slog
// handler's records (one Write each) never interleave. The zero value is an
// empty Buffer ready to use; a Buffer must not be copied after first use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the complete lines written so far, without their newlines.
// A last line not yet ended by a newline is left out until it is.
func (b *Buffer) Lines() []string {
	s := b.String()
	end := strings.LastIndexByte(s, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(s[:end], "\n")
}
