package gossip

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// waiter lets a test block until the recorded events satisfy a condition,
// re-checking on every event. The context bounds the wait as a failure
// guard only.
type waiter struct {
	rec  *recorder
	mu   sync.Mutex
	wake chan struct{}
}

func newWaiter() *waiter { return &waiter{rec: &recorder{}, wake: make(chan struct{}, 1)} }

func (w *waiter) handler() func(Event) {
	h := w.rec.handler()
	return func(ev Event) {
		h(ev)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *waiter) until(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-w.wake:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTCPNetwork runs 1 seed and 5 peers over real TCP on 127.0.0.1 with
// millisecond timings: every broadcast reaches every peer, and a peer
// whose process vanishes is reported dead and removed by the seed.
func TestTCPNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w := newWaiter()
	fast := []Option{
		WithLogger(quietLogger(t)), WithEventHandler(w.handler()),
		WithMessages(0), WithLivenessInterval(100 * time.Millisecond), WithMaxMisses(3),
		WithRegisterTimeout(time.Second), WithConnectTimeout(time.Second),
		WithMaintainInterval(200 * time.Millisecond), WithProbe(3, 100*time.Millisecond),
	}
	listen := func() *transport.TCP {
		tr, err := transport.ListenTCP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}

	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	run := func(fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(runCtx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}

	seedTr := listen()
	seeds := []string{seedTr.Addr()}
	seed, err := NewSeed(seedTr, seeds, fast...)
	if err != nil {
		t.Fatal(err)
	}
	run(seed.Run)

	const n = 5
	var peers []*Peer
	trs := map[string]*transport.TCP{}
	for i := range n {
		tr := listen()
		p, err := NewPeer(tr, seeds, append(fast, WithRandSeed(uint64(i)))...)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
		trs[p.Addr()] = tr
		run(p.Run)
		// Join one at a time, so that each sees the earlier ones.
		w.until(ctx, t, p.Addr()+" to join", func() bool { return len(w.rec.of(p.Addr(), EventJoined)) == 1 })
	}
	connected := func() bool {
		// Count only links both ends have established.
		lists := map[string][]string{}
		for _, p := range peers {
			lists[p.Addr()] = p.Neighbors()
		}
		adj := map[string][]string{}
		for a, nb := range lists {
			for _, b := range nb {
				if slices.Contains(lists[b], a) {
					adj[a] = append(adj[a], b)
				}
			}
		}
		return reachable(adj, peers[0].Addr()) == n
	}
	w.until(ctx, t, "a connected overlay", connected)

	for i, p := range peers {
		if err := p.Broadcast(ctx, fmt.Appendf(nil, "hello from %d", i)); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
	}
	for _, p := range peers {
		w.until(ctx, t, p.Addr()+" to deliver every message", func() bool {
			return len(w.rec.of(p.Addr(), EventMessage)) == n-1
		})
	}

	// The victim's process vanishes: its transport closes without a
	// goodbye, so only liveness checks can find out.
	victim := peers[2]
	nbrs := victim.Neighbors()
	trs[victim.Addr()].Close()
	removed := func() bool {
		return len(w.rec.filter(func(ev Event) bool {
			return ev.Kind == EventPeerRemoved && ev.Addr == victim.Addr() && ev.Reason == "dead"
		})) == 1
	}
	w.until(ctx, t, "the seed to remove the victim", removed)
	var reporters []string
	for _, ev := range w.rec.kind(EventDeadReportSent) {
		if ev.Node == victim.Addr() {
			continue // it still runs, cut off, and suspects everyone; its reports go nowhere
		}
		if ev.Addr != victim.Addr() {
			t.Errorf("%s reported live peer %s", ev.Node, ev.Addr)
		}
		reporters = append(reporters, ev.Node)
	}
	if len(reporters) == 0 || !isSubset(reporters, nbrs) {
		t.Errorf("reporters %v, want some of the victim's neighbours %v", reporters, nbrs)
	}
	if got := seed.Peers(); len(got) != n-1 || slices.Contains(got, victim.Addr()) {
		t.Errorf("seed lists %v after the removal", got)
	}
	if s := trs[peers[0].Addr()].Stats(); s.FramesSent == 0 || s.FramesReceived == 0 {
		t.Errorf("transport stats did not move: %+v", s)
	}
	if s := peers[0].Stats(); s.FramesIn == 0 || s.FramesOut == 0 || s.BadFrames != 0 {
		t.Errorf("peer frame stats %+v, want frames both ways and none bad", s.FrameStats)
	}
	if s := seed.Stats(); s.FramesIn == 0 || s.Registrations != n {
		t.Errorf("seed stats %+v, want %d registrations", s, n)
	}
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
