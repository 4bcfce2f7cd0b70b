// Package out holds what the example programs share: the per-node output
// file that also echoes to the console, the address prompt, and small
// command-line helpers (exit codes, log level).
package out

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gossip-dev/gossip"
)

// TimeLayout is the local-time prefix of every output line.
const TimeLayout = "15:04:05.000"

// FormatLine renders one output line: the local time, then node unless it
// is empty, then text. Files omit the node (one file per node); the console
// includes it.
func FormatLine(t time.Time, node, text string) string {
	var b strings.Builder
	b.Grow(len(TimeLayout) + len(node) + len(text) + 3)
	b.WriteString(t.Local().Format(TimeLayout))
	b.WriteByte(' ')
	if node != "" {
		b.WriteString(node)
		b.WriteByte(' ')
	}
	b.WriteString(text)
	b.WriteByte('\n')
	return b.String()
}

// FileName returns the output file name of a node: "<role>-<host>-<port>.txt",
// for example "seed-127.0.0.1-7001.txt". Characters of the host other than
// letters, digits, '.' and '-' (the colons of an IPv6 address) become '_'.
func FileName(role, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, ""
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
				return r
			}
			return '_'
		}, s)
	}
	name := role + "-" + clean(host)
	if port != "" {
		name += "-" + clean(port)
	}
	return name + ".txt"
}

// Console serialises whole lines from several nodes onto one writer, such
// as os.Stdout. It is safe for concurrent use.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole returns a Console writing to w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// WriteLine writes one complete line; errors are ignored, the console being
// a courtesy copy of the file.
func (c *Console) WriteLine(line string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, line)
}

// Writer is the output of one node: a file, written one whole line at a
// time so that it is complete up to the last event even if the process is
// killed, and optionally the same lines on a Console. It is safe for
// concurrent use.
type Writer struct {
	node    string
	path    string
	console *Console

	mu     sync.Mutex
	f      *os.File
	err    error // first write error
	closed bool
	now    func() time.Time
}

// Create creates (or truncates) the output file of the node at addr in dir,
// creating dir first if needed, and returns its Writer. role is "seed" or
// "peer"; console may be nil. The caller must Close the Writer.
func Create(dir, role, addr string, console *Console) (*Writer, error) {
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	path := filepath.Join(dir, FileName(role, addr))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("output file: %w", err)
	}
	return &Writer{node: addr, path: path, console: console, f: f, now: time.Now}, nil
}

// Path returns the output file's path.
func (w *Writer) Path() string { return w.path }

// Handle writes ev as one line. Its signature fits gossip.WithEventHandler.
func (w *Writer) Handle(ev gossip.Event) {
	t := ev.Time
	if t.IsZero() {
		t = w.now()
	}
	w.Line(t, ev.String())
}

// Printf writes one line of text stamped with the current time.
func (w *Writer) Printf(format string, args ...any) {
	w.Line(w.now(), fmt.Sprintf(format, args...))
}

// Line writes text stamped with t to the file and, prefixed with the node
// address, to the console. Lines written after Close are dropped.
func (w *Writer) Line(t time.Time, text string) {
	text = strings.TrimRight(text, "\n")
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	// One write per line: the file holds whole lines only.
	if _, err := io.WriteString(w.f, FormatLine(t, "", text)); err != nil && w.err == nil {
		w.err = fmt.Errorf("write %s: %w", w.path, err)
	}
	// Under w.mu, so the console shows this node's lines in file order.
	w.console.WriteLine(FormatLine(t, w.node, text))
	w.mu.Unlock()
}

// Close closes the file and returns the first write or close error. It is
// idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("close %s: %w", w.path, err)
	}
	return w.err
}

// CloseAll closes every writer and joins their errors.
func CloseAll(ws []*Writer) error {
	var errs []error
	for _, w := range ws {
		if w != nil {
			errs = append(errs, w.Close())
		}
	}
	return errors.Join(errs...)
}
