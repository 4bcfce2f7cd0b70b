// Command seed runs the seed nodes of a gossip network over TCP.
//
// By default it starts every seed listed in the config file, all in this
// process; -addr starts only that one (it must be listed). Each seed writes
// what it does (registrations, peer-list requests, dead-node reports and
// their outcome, removals and the peer list after each change) to
// seed-<host>-<port>.txt in -out and to the console. Ctrl-C stops it.
//
//	go run ./examples/seed
//	go run ./examples/seed -addr 127.0.0.1:7002 -out /tmp/gossip
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/examples/internal/out"
	"github.com/gossip-dev/gossip/transport"
)

type options struct {
	out.Common
	addr       string
	groupLimit int
}

func main() {
	var o options
	o.Register(flag.CommandLine, ".", slog.LevelInfo)
	flag.StringVar(&o.addr, "addr", "", "start only the seed at this host:port (it must be in the config); default: every seed of the config")
	flag.IntVar(&o.groupLimit, "group-limit", 0,
		"most peers of one address group (IPv4 /24) a seed registers; 0: 16, or no cap when the seed listens on a loopback address")
	flag.Parse()
	err := out.NoArgs(flag.CommandLine)
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(out.ExitCode(err))
	}
}

func run(o options) (err error) {
	if err := out.CheckGroupLimits(o.groupLimit, 0); err != nil {
		return err
	}
	seeds, err := o.Seeds()
	if err != nil {
		return err
	}
	start := seeds
	if o.addr != "" {
		addr, err := out.ParseAddr(o.addr)
		if err != nil {
			return out.Usagef("-addr: %w", err)
		}
		if !out.IsSeed(seeds, addr) {
			return out.Usagef("-addr %s is not a seed in %s (its seeds: %v)", addr, o.Config, seeds)
		}
		start = []string{addr}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := out.NewLogger(os.Stderr, o.LogLevel)
	console := out.NewConsole(os.Stdout)

	var (
		nodes   []*gossip.Seed
		writers []*out.Writer
	)
	// Deferred first, so it runs last: files are closed after every Run
	// has returned (and delivered its last events) and every transport is
	// closed.
	defer func() { err = errors.Join(err, out.CloseAll(writers)) }()
	for _, addr := range start {
		tr, err := transport.ListenTCP(addr, out.TCPOptions(addr, transport.WithLogger(log.With("component", "transport")))...)
		if err != nil {
			if errors.Is(err, transport.ErrAddrInUse) {
				return out.Usagef("seed %s: port already in use (is this seed already running?): %w", addr, err)
			}
			return fmt.Errorf("seed %s: %w", addr, err)
		}
		defer tr.Close()
		w, err := out.Create(o.Out, "seed", tr.Addr(), console)
		if err != nil {
			return err
		}
		writers = append(writers, w)
		s, err := gossip.NewSeed(tr, seeds,
			gossip.WithLogger(log.With("component", "gossip")),
			out.AddressGroups(tr.Addr(), o.groupLimit, 0),
			gossip.WithEventHandler(w.Handle))
		if err != nil {
			return fmt.Errorf("seed %s: %w", addr, err)
		}
		nodes = append(nodes, s)
		w.Printf("seed listening on %s; seeds %v; output %s", tr.Addr(), seeds, w.Path())
	}

	var g errgroup.Group
	for _, s := range nodes {
		g.Go(func() error { return s.Run(ctx) })
	}
	err = g.Wait()
	for i, s := range nodes {
		st := s.Stats()
		writers[i].Printf("seed stopped: %d registrations, %d dead-node reports (%d refuted), %d removals; peer list %v",
			st.Registrations, st.DeadReports, st.Refuted, st.Removed, s.Peers())
	}
	return err
}
