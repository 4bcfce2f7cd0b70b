package out

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/gossip-dev/gossip"
)

// DefaultConfig is the seed list the examples read by default, relative to
// the module root (where `go run ./examples/...` is typed).
const DefaultConfig = "examples/config.txt"

// UsageError marks an error caused by the command line or by what the user
// typed: the program exits with status 2 for it.
type UsageError struct{ Err error }

// Error returns the underlying error's message.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message; %w wraps as in
// fmt.Errorf.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode maps run's error to the process exit status: 0 for nil, 2 for a
// usage error (including ErrNoInput and a bad seed list), 1 otherwise.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), errors.Is(err, ErrNoInput), errors.Is(err, gossip.ErrBadConfig):
		return 2
	}
	return 1
}

// Common are the flags every example has.
type Common struct {
	// Config is the seed list file (-config).
	Config string
	// Out is the directory of the output files (-out).
	Out string
	// LogLevel is the slog level of diagnostics on stderr (-log-level).
	LogLevel slog.Level
}

// Register defines -config, -out and -log-level on fs with the given
// defaults.
func (c *Common) Register(fs *flag.FlagSet, defOut string, defLevel slog.Level) {
	fs.StringVar(&c.Config, "config", DefaultConfig, "seed list file: one host:port per line, '#' starts a comment")
	fs.StringVar(&c.Out, "out", defOut, "directory of the output files (created if missing)")
	fs.TextVar(&c.LogLevel, "log-level", defLevel, "diagnostics on stderr: debug, info, warn or error")
}

// Seeds loads the seed list named by -config. A bad or missing file is a
// usage error.
func (c *Common) Seeds() ([]string, error) {
	seeds, err := gossip.LoadSeeds(c.Config)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return seeds, nil
}

// NoArgs returns a usage error if fs has positional arguments.
func NoArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments %q (all settings are flags; see -h)", fs.Args())
	}
	return nil
}

// NewLogger returns a text logger on w that shows records at level and
// above, stamped with the local time in the layout of the output lines.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
				a.Value = slog.StringValue(a.Value.Time().Local().Format(TimeLayout))
			}
			return a
		},
	}))
}

// IsSeed reports whether addr is one of seeds.
func IsSeed(seeds []string, addr string) bool { return slices.Contains(seeds, addr) }
