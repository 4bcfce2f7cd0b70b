// Command network runs a whole gossip network over real TCP on 127.0.0.1
// in one process, and checks that it behaves.
//
// It starts the seeds of the config file and -peers peers (on free ports),
// waits until every peer has joined and the overlay is connected, lets
// every peer send -messages gossip messages, waits until every peer has
// received every other peer's messages, then kills one peer abruptly (its
// transport is closed before it can say goodbye) and waits until its
// neighbours report it dead and every seed it registered with removes it.
// Every node writes its output file into -out. The program prints a live
// progress line, then a summary, and exits 0 only if every check held.
//
// By default the timings are scaled down (gossip every 200ms, liveness
// every 1s) so that the story takes about 10s, and a run that takes more
// than 30s fails (-timeout); -spec-timing uses the protocol's 5s and 13s.
//
// Every peer listens on 127.0.0.1, one address group: the seeds and peers
// here lift the library's per-group caps, which are meant for public
// addresses (see -group-limit), so -peers can go well beyond 16.
//
//	go run ./examples/network
//	go run ./examples/network -peers 30 -out /tmp/gossip-net
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/examples/internal/out"
)

// timing is the protocol's clock, scaled or not.
type timing struct {
	gossip        time.Duration // between a peer's messages
	liveness      time.Duration // between liveness requests
	misses        int           // unanswered requests that make a neighbour dead
	probeAttempts int           // a seed's probes of a reported peer
	probeTimeout  time.Duration // each probe's wait
	maintain      time.Duration // how often an under-connected peer asks for peers
}

var (
	scaledTiming = timing{
		gossip:        200 * time.Millisecond,
		liveness:      time.Second,
		misses:        3,
		probeAttempts: 3,
		probeTimeout:  300 * time.Millisecond,
		maintain:      time.Second,
	}
	specTiming = timing{
		gossip:        gossip.DefaultGossipInterval,
		liveness:      gossip.DefaultLivenessInterval,
		misses:        gossip.DefaultMaxMisses,
		probeAttempts: gossip.DefaultProbeAttempts,
		probeTimeout:  gossip.DefaultProbeTimeout,
		maintain:      gossip.DefaultMaintainInterval,
	}
)

// config is everything run needs; main fills it from the flags.
type config struct {
	out.Common
	seeds    []string // listen addresses of the seeds (port 0 picks one)
	peers    int
	messages int
	kill     bool
	stagger  time.Duration // between peer starts
	timeout  time.Duration // bound on the whole run
	timing   timing
	// -group-limit and -inbound-group-limit: 0 picks the loopback or
	// public default (out.AddressGroups).
	groupLimit, inboundGroupLimit int
	// powDifficulty, when positive, replaces the library's proof-of-work
	// difficulty at the seeds. Tests only (no flag): registration puzzles
	// are most of the CPU a large network spends under -race.
	powDifficulty int
}

// Bounds on the whole run by default. scaledTimeout is the README's promise
// that the default run finishes in under 30 s: beyond it the program fails.
const (
	scaledTimeout = 30 * time.Second
	specTimeout   = 5 * time.Minute
)

// defaultConfig returns the settings of a run without flags: scaled
// timings, or the spec's with spec.
func defaultConfig(spec bool) config {
	c := config{
		Common:   out.Common{Config: out.DefaultConfig, Out: "network-out", LogLevel: slog.LevelWarn},
		peers:    10,
		messages: gossip.DefaultMessages,
		kill:     true,
		stagger:  50 * time.Millisecond,
		timeout:  scaledTimeout,
		timing:   scaledTiming,
	}
	if spec {
		c.timeout, c.timing = specTimeout, specTiming
	}
	return c
}

func main() {
	var (
		c    = defaultConfig(false)
		spec bool
	)
	c.Register(flag.CommandLine, c.Out, c.LogLevel)
	flag.IntVar(&c.peers, "peers", c.peers, "number of peers to start")
	flag.IntVar(&c.messages, "messages", c.messages, "gossip messages each peer originates")
	flag.BoolVar(&spec, "spec-timing", false, "use the protocol's timings (gossip 5s, liveness 13s, probes 3x2s) instead of scaled ones")
	flag.BoolVar(&c.kill, "kill", c.kill, "kill one peer abruptly after the gossip and check that it is detected and removed")
	flag.DurationVar(&c.stagger, "stagger", c.stagger, "delay between peer starts")
	flag.DurationVar(&c.timeout, "timeout", 0,
		fmt.Sprintf("bound on the whole run, exit 1 if exceeded (default %v, or %v with -spec-timing)", scaledTimeout, specTimeout))
	flag.IntVar(&c.groupLimit, "group-limit", 0,
		"most peers of one address group (IPv4 /24) a seed registers; 0: no cap for a seed on a loopback address, else 16")
	flag.IntVar(&c.inboundGroupLimit, "inbound-group-limit", 0,
		"most inbound neighbours of one address group a peer accepts; 0: no cap on loopback (the peers always are)")
	flag.Parse()
	err := out.NoArgs(flag.CommandLine)
	if err == nil {
		if spec {
			c.timing = specTiming
		}
		if c.timeout == 0 {
			c.timeout = defaultConfig(spec).timeout
		}
		err = run(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "network:", err)
		os.Exit(out.ExitCode(err))
	}
}

func run(c config) error {
	seeds, err := c.Seeds()
	if err != nil {
		return err
	}
	c.seeds = seeds
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runNetwork(ctx, c, os.Stdout, os.Stderr)
}

// runNetwork runs the story under ctx, printing progress and the summary
// on stdout and diagnostics on stderr. It returns nil only if every check
// held.
func runNetwork(ctx context.Context, c config, stdout, stderr io.Writer) (err error) {
	switch {
	case c.peers < 2:
		return out.Usagef("-peers must be at least 2, got %d", c.peers)
	case c.messages < 1:
		return out.Usagef("-messages must be at least 1, got %d", c.messages)
	case c.timeout <= 0:
		return out.Usagef("-timeout must be positive, got %v", c.timeout)
	case c.stagger < 0:
		return out.Usagef("-stagger must not be negative, got %v", c.stagger)
	case len(c.seeds) == 0:
		return out.Usagef("no seeds")
	}
	if err := out.CheckGroupLimits(c.groupLimit, c.inboundGroupLimit); err != nil {
		return err
	}
	n := newNetwork(c, stdout, out.NewLogger(stderr, c.LogLevel))
	// Runs last: after every Run has returned, close every transport,
	// then every output file.
	defer func() { err = errors.Join(err, n.close()) }()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = n.run(ctx)
	n.summary()
	switch {
	case err == nil:
		if failed := n.failedChecks(); failed > 0 {
			return fmt.Errorf("%d of %d checks failed; see the summary and the files in %s", failed, len(n.checks), c.Out)
		}
		fmt.Fprintf(stdout, "\nAll %d checks passed. Output files are in %s\n", len(n.checks), c.Out)
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out after %v (-timeout) in phase %q: %w", c.timeout, n.phase(), err)
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted in phase %q", n.phase())
	}
	return err
}
