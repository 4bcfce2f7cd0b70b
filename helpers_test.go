package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

// recorder collects every node's events, safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) handler() func(Event) {
	return func(ev Event) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}
}

// filter returns the recorded events matching keep.
func (r *recorder) filter(keep func(Event) bool) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.events {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func (r *recorder) of(node string, kind EventKind) []Event {
	return r.filter(func(ev Event) bool { return ev.Node == node && ev.Kind == kind })
}

func (r *recorder) kind(kind EventKind) []Event {
	return r.filter(func(ev Event) bool { return ev.Kind == kind })
}

// quietLogger discards logs unless the test runs with -v.
func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// cluster runs seeds and peers on an in-memory network. Create it inside a
// synctest bubble.
type cluster struct {
	t       *testing.T
	net     *transport.Network
	rec     *recorder
	seeds   []string
	opts    []Option
	g       errgroup.Group
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	peers   map[string]*Peer
	seedsBy map[string]*Seed
	trs     []transport.Transport
	errs    map[string]error
	done    map[string]chan struct{}
	// wrap, if set, wraps every transport the cluster creates.
	wrap func(transport.Transport) transport.Transport
}

func newCluster(t *testing.T, nSeeds int, opts ...Option) *cluster {
	t.Helper()
	c := &cluster{
		t:       t,
		net:     transport.NewNetwork(1),
		rec:     &recorder{},
		cancels: make(map[string]context.CancelFunc),
		peers:   make(map[string]*Peer),
		seedsBy: make(map[string]*Seed),
		errs:    make(map[string]error),
		done:    make(map[string]chan struct{}),
	}
	// A light proof of work keeps hundreds of registrations cheap; the
	// default difficulty is tested on its own.
	c.opts = append([]Option{WithLogger(quietLogger(t)), WithEventHandler(c.rec.handler()), WithProofOfWork(6)}, opts...)
	for i := range nSeeds {
		c.seeds = append(c.seeds, fmt.Sprintf("10.0.0.%d:7000", i+1))
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) transport(addr string) transport.Transport {
	c.t.Helper()
	tr, err := c.net.NewTransport(addr)
	if err != nil {
		c.t.Fatalf("NewTransport(%s): %v", addr, err)
	}
	var w transport.Transport = tr
	if c.wrap != nil {
		w = c.wrap(tr)
	}
	c.trs = append(c.trs, w)
	return w
}

func (c *cluster) run(addr string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.mu.Lock()
	c.cancels[addr] = cancel
	c.done[addr] = done
	c.mu.Unlock()
	c.g.Go(func() error {
		defer close(done)
		err := run(ctx)
		c.mu.Lock()
		c.errs[addr] = err
		c.mu.Unlock()
		return nil
	})
}

// crash makes the node at addr vanish without a goodbye: the network drops
// its traffic, its Run is stopped (its leave messages are lost) and its
// transport closed. restart brings up a fresh node at the same address.
func (c *cluster) crash(addr string) {
	c.t.Helper()
	c.net.Crash(addr)
	c.mu.Lock()
	cancel, done := c.cancels[addr], c.done[addr]
	c.mu.Unlock()
	cancel()
	<-done
	c.closeTransport(addr)
	c.net.Restore(addr) // the address is free again, with nobody behind it
}

func (c *cluster) closeTransport(addr string) {
	for i, tr := range c.trs {
		if tr.Addr() == addr {
			_ = tr.Close()
			c.trs = slices.Delete(c.trs, i, i+1)
			return
		}
	}
}

// startSeeds starts the seeds at addrs, or all seeds if addrs is nil.
func (c *cluster) startSeeds(addrs ...string) {
	c.t.Helper()
	if addrs == nil {
		addrs = c.seeds
	}
	for _, a := range addrs {
		s, err := NewSeed(c.transport(a), c.seeds, c.opts...)
		if err != nil {
			c.t.Fatal(err)
		}
		c.seedsBy[a] = s
		c.run(a, s.Run)
	}
}

// peerAddr gives every test peer its own /24 address group, as honest
// peers on the Internet would have.
func peerAddr(i int) string { return fmt.Sprintf("10.%d.%d.1:8000", 1+i/250, i%250) }

func (c *cluster) startPeer(addr string, opts ...Option) *Peer {
	c.t.Helper()
	p, err := NewPeer(c.transport(addr), c.seeds, append(slices.Clone(c.opts), opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.peers[addr] = p
	c.run(addr, p.Run)
	return p
}

// startPeers starts n peers, one every gap of virtual time, and returns
// their addresses.
func (c *cluster) startPeers(n int, gap time.Duration, opts ...Option) []string {
	c.t.Helper()
	var addrs []string
	for i := range n {
		a := peerAddr(i)
		c.startPeer(a, append([]Option{WithRandSeed(uint64(i + 100))}, opts...)...)
		addrs = append(addrs, a)
		time.Sleep(gap)
	}
	return addrs
}

// startNetwork starts the seeds and n peers, one every joinGap, then lets
// the network run for settle and waits for it to go quiet. It returns the
// peers' addresses.
func (c *cluster) startNetwork(n int, settle time.Duration) []string {
	c.t.Helper()
	c.startSeeds()
	peers := c.startPeers(n, joinGap)
	time.Sleep(settle)
	synctest.Wait()
	return peers
}

// countGossip counts, from now on, the gossip frames the network delivers
// (a frame a fault drops never reaches the filter, so is not counted).
func (c *cluster) countGossip() *atomic.Int64 {
	var n atomic.Int64
	cd := codec.Msgpack()
	c.net.SetFilter(func(from, to string, frame []byte) bool {
		var m wireMsg
		if cd.Unmarshal(frame, &m) == nil && m.K == kindGossip {
			n.Add(1)
		}
		return true
	})
	return &n
}

func (c *cluster) stop(addr string) {
	c.mu.Lock()
	cancel := c.cancels[addr]
	c.mu.Unlock()
	cancel()
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	for _, cancel := range c.cancels {
		cancel()
	}
	c.mu.Unlock()
	_ = c.g.Wait()
	for _, tr := range c.trs {
		_ = tr.Close()
	}
}

func (c *cluster) runErr(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs[addr]
}
