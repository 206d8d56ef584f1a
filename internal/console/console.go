// Package console writes the log lines of many functions onto one output:
// each line prefixed by its function's name (coloured on a terminal), or,
// in JSON format, one object per line:
//
//	{"time":"2026-12-02T03:04:05.123Z","function":"hello","stream":"function","message":"hi"}
//
// stream is "platform" for the lines Lambda itself writes (START, END,
// REPORT, INIT_START, ...), else "function" (the runtime's and its
// extensions' output, which share one pipe).
package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Formats.
const (
	Text = "text"
	JSON = "json"
)

// Config configures a Console.
type Config struct {
	// Out receives every line. Required.
	Out io.Writer
	// Format is Text (default) or JSON.
	Format string
	// Color colours the Text prefixes (set it when Out is a terminal).
	Color bool
	// Now stamps JSON lines; default time.Now.
	Now func() time.Time
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Out == nil {
		return fmt.Errorf("console: no output")
	}
	switch c.Format {
	case "", Text, JSON:
		return nil
	}
	return fmt.Errorf("log format %q: want %s or %s", c.Format, Text, JSON)
}

// Console serialises the lines of many functions onto Config.Out.
type Console struct {
	cfg   Config
	mu    sync.Mutex // guards Out and next
	width int
	next  int // the next colour
}

// New returns a Console.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Format == "" {
		cfg.Format = Text
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Console{cfg: cfg}, nil
}

// Align pads the Text prefixes to the longest of names.
func (c *Console) Align(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		c.width = max(c.width, len(n))
	}
}

var colors = []string{"36", "33", "35", "32", "34", "91", "96", "93", "95", "92"}

// For returns the writer of one function's output. Each Write may hold
// any part of a line: whole lines are written out; a partial one waits for
// its end, or for Flush.
func (c *Console) For(name string) *Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &Writer{c: c, name: name, color: colors[c.next%len(colors)]}
	c.next++
	return w
}

// Writer is one function's output.
type Writer struct {
	c     *Console
	name  string
	color string
	mu    sync.Mutex
	buf   []byte
}

// maxPending bounds a line waiting for its end; longer ones are cut.
const maxPending = 256 << 10

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxPending {
				w.c.line(w, string(w.buf))
				w.buf = w.buf[:0]
			}
			break
		}
		line := p[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
			w.buf = w.buf[:0]
		}
		w.c.line(w, string(line))
		p = p[i+1:]
	}
	return n, nil
}

// Flush writes a partial line out.
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.c.line(w, string(w.buf))
		w.buf = w.buf[:0]
	}
}

// platformPrefixes start the lines Lambda itself writes.
var platformPrefixes = []string{"START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START ", "INIT_REPORT ", "EXTENSION\t", "TELEMETRY\t"}

// Stream says whose line is: "platform" or "function".
func Stream(line string) string {
	for _, p := range platformPrefixes {
		if strings.HasPrefix(line, p) {
			return "platform"
		}
	}
	return "function"
}

type jsonLine struct {
	Time     string `json:"time"`
	Function string `json:"function"`
	Stream   string `json:"stream"`
	Message  string `json:"message"`
}

func (c *Console) line(w *Writer, line string) {
	line = strings.TrimSuffix(line, "\r")
	var b []byte
	if c.cfg.Format == JSON {
		b, _ = json.Marshal(jsonLine{
			Time:     c.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			Function: w.name, Stream: Stream(line), Message: line,
		})
		b = append(b, '\n')
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b == nil {
		prefix := fmt.Sprintf("%-*s |", c.width, w.name)
		if c.cfg.Color {
			prefix = "\x1b[" + w.color + "m" + prefix + "\x1b[0m"
		}
		b = []byte(prefix + " " + line + "\n")
	}
	_, _ = c.cfg.Out.Write(b)
}
