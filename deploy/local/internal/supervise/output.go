package supervise

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Output writes whole lines from many processes to one writer, each
// prefixed with its process's name, so lines never interleave mid-way. It
// is safe for concurrent use.
type Output struct {
	mu     sync.Mutex
	w      io.Writer
	onLine func(name, text string)
}

// NewOutput returns an Output writing to w. onLine, if not nil, is called
// with every line before it is written, one call at a time: the chaos
// harness counts log records with it.
func NewOutput(w io.Writer, onLine func(name, text string)) *Output {
	return &Output{w: w, onLine: onLine}
}

func (o *Output) line(name, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.onLine != nil {
		o.onLine(name, text)
	}
	fmt.Fprintf(o.w, "%-9s | %s\n", name, text)
}

// Printf writes one formatted line under name; a multi-line message keeps the
// prefix on every line.
func (o *Output) Printf(name, format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		o.line(name, l)
	}
}

// Copy writes every line read from r under name until r ends.
func (o *Output) Copy(name string, r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		o.line(name, s.Text())
	}
	// Keep draining after an over-long line so the writer never blocks.
	_, _ = io.Copy(io.Discard, r)
}

// Writer returns an io.Writer whose lines are written under name.
func (o *Output) Writer(name string) io.Writer {
	r, w := io.Pipe()
	go o.Copy(name, r)
	return w
}
