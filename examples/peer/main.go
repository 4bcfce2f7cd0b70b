// Command peer runs one peer of a gossip network over TCP.
//
// Without -addr it asks for the host (default 127.0.0.1) and the port on
// the terminal. The peer registers with a majority of the seeds of the
// config file, connects to neighbours, sends -messages gossip messages, one
// every -gossip-interval, relays the others' messages and checks its
// neighbours' liveness. It writes what happens (registration, peer lists,
// neighbours, each message received the first time, dead-node reports it
// sends) to peer-<host>-<port>.txt in -out and to the console. Ctrl-C
// makes it leave the network cleanly.
//
//	go run ./examples/peer
//	go run ./examples/peer -addr 127.0.0.1:7004 -gossip-interval 1s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/examples/internal/out"
	"github.com/gossip-dev/gossip/transport"
)

type options struct {
	out.Common
	addr             string
	messages         int
	gossipInterval   time.Duration
	livenessInterval time.Duration
	misses           int
	maxDegree        int
	minDegree        int
	inboundGroup     int
	keyFile          string
}

func main() {
	var o options
	o.Register(flag.CommandLine, ".", slog.LevelInfo)
	flag.StringVar(&o.addr, "addr", "", "listen on this host:port; without it, ask on the terminal")
	flag.IntVar(&o.messages, "messages", gossip.DefaultMessages, "gossip messages this peer originates")
	flag.DurationVar(&o.gossipInterval, "gossip-interval", gossip.DefaultGossipInterval, "time between this peer's gossip messages")
	flag.DurationVar(&o.livenessInterval, "liveness-interval", gossip.DefaultLivenessInterval, "time between liveness requests to each neighbour")
	flag.IntVar(&o.misses, "misses", gossip.DefaultMaxMisses, "consecutive unanswered liveness requests after which a neighbour is reported dead")
	flag.IntVar(&o.maxDegree, "max-degree", gossip.DefaultMaxDegree, "most neighbours this peer accepts")
	flag.IntVar(&o.minDegree, "min-degree", gossip.DefaultMinDegree, "fewest neighbours this peer keeps, when enough peers are known")
	flag.IntVar(&o.inboundGroup, "inbound-group-limit", 0,
		"most inbound neighbours of one address group (IPv4 /24) this peer accepts; 0: 8, or no cap when it listens on a loopback address")
	flag.StringVar(&o.keyFile, "key", "",
		"keep this peer's Ed25519 identity in this file (PEM, created if missing); default: a new identity each run")
	flag.Parse()
	err := out.NoArgs(flag.CommandLine)
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(out.ExitCode(err))
	}
}

func run(o options) (err error) {
	seeds, err := o.Seeds()
	if err != nil {
		return err
	}
	log := out.NewLogger(os.Stderr, o.LogLevel)
	opts := []gossip.Option{
		gossip.WithLogger(log.With("component", "gossip")),
		gossip.WithMessages(o.messages),
		gossip.WithGossipInterval(o.gossipInterval),
		gossip.WithLivenessInterval(o.livenessInterval),
		gossip.WithMaxMisses(o.misses),
		gossip.WithMaxDegree(o.maxDegree),
		gossip.WithMinDegree(o.minDegree),
	}
	if o.keyFile != "" {
		key, err := gossip.LoadIdentity(o.keyFile)
		if err != nil {
			return out.Usagef("-key: %w", err)
		}
		opts = append(opts, gossip.WithIdentity(key))
	}
	// Check the options before asking anything on the terminal: an error
	// here is a bad flag. NewPeer does no I/O.
	if err := out.CheckGroupLimits(0, o.inboundGroup); err != nil {
		return err
	}
	if _, err := gossip.NewPeer(nopTransport{}, seeds, opts...); err != nil {
		return out.Usagef("%w", err)
	}

	listen := func(addr string) (*transport.TCP, error) {
		if out.IsSeed(seeds, addr) {
			return nil, fmt.Errorf("it is a seed address in %s", o.Config)
		}
		tr, err := transport.ListenTCP(addr, out.TCPOptions(addr, transport.WithLogger(log.With("component", "transport")))...)
		if err != nil {
			return nil, err
		}
		if out.IsSeed(seeds, tr.Addr()) { // e.g. "localhost:7001"
			tr.Close()
			return nil, fmt.Errorf("it binds %s, a seed address in %s", tr.Addr(), o.Config)
		}
		return tr, nil
	}
	var tr *transport.TCP
	if o.addr != "" {
		addr, err := out.ParseAddr(o.addr)
		if err != nil {
			return out.Usagef("-addr: %w", err)
		}
		if tr, err = listen(addr); err != nil {
			if errors.Is(err, transport.ErrAddrInUse) {
				return out.Usagef("-addr %s: port already in use; choose another", addr)
			}
			return out.Usagef("-addr %s: %w", addr, err)
		}
	} else {
		tr, err = out.PromptAddr(bufio.NewReader(os.Stdin), os.Stdout, out.DefaultHost, listen)
		if err != nil {
			return err
		}
	}
	defer tr.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	w, err := out.Create(o.Out, "peer", tr.Addr(), out.NewConsole(os.Stdout))
	if err != nil {
		return err
	}
	// Runs after Run has returned and delivered its last events.
	defer func() { err = errors.Join(err, w.Close()) }()
	p, err := gossip.NewPeer(tr, seeds, append(opts,
		out.AddressGroups(tr.Addr(), 0, o.inboundGroup),
		gossip.WithEventHandler(w.Handle))...)
	if err != nil {
		return err
	}
	w.Printf("peer listening on %s; identity %s; seeds %v; output %s; Ctrl-C to leave", tr.Addr(), p.ID(), seeds, w.Path())
	if err := p.Run(ctx); err != nil {
		return err
	}
	// Run returns once its goodbye frames (to the seeds and neighbours)
	// are queued; the deferred tr.Close flushes them (transport
	// WithCloseLinger, 500ms by default).
	st := p.Stats()
	w.Printf("peer left: originated %d, delivered %d, duplicates dropped %d, forwarded %d, dead-node reports sent %d",
		st.Originated, st.Delivered, st.Duplicates, st.Forwarded, st.DeadReports)
	return nil
}

// nopTransport lets run validate the options with gossip.NewPeer before an
// address is chosen. It is never run.
type nopTransport struct{}

func (nopTransport) Addr() string                               { return "validate.invalid:0" }
func (nopTransport) Send(context.Context, string, []byte) error { return transport.ErrClosed }
func (nopTransport) Packets() <-chan transport.Packet           { return nil }
func (nopTransport) Close() error                               { return nil }
