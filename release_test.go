package gossip

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// releasing is a transport that records where its node sends and which
// destinations it releases.
type releasing struct {
	transport.Transport
	mu       sync.Mutex
	sent     map[string]bool
	released map[string]int
}

func (r *releasing) Send(ctx context.Context, addr string, frame []byte) error {
	r.mu.Lock()
	r.sent[addr] = true
	r.mu.Unlock()
	return r.Transport.Send(ctx, addr, frame)
}

func (r *releasing) Release(addr string) {
	r.mu.Lock()
	r.released[addr]++
	r.mu.Unlock()
}

// TestReleasesSeedLinks: a peer releases its connection to a seed after
// each send to it, and never one to a neighbour; a seed releases its
// connections to peers, and never one to another seed. Over TCP that
// leaves no connection open between a seed and a peer once an exchange
// is over (see transport.TestTCPRelease).
func TestReleasesSeedLinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithLivenessInterval(2*time.Second), WithGossipInterval(time.Second))
		trs := map[string]*releasing{}
		c.wrap = func(tr transport.Transport) transport.Transport {
			r := &releasing{Transport: tr, sent: map[string]bool{}, released: map[string]int{}}
			trs[tr.Addr()] = r
			return r
		}
		peers := c.startNetwork(8, 30*time.Second)
		c.stopAll() // the goodbyes are sends too
		isSeed := func(a string) bool { return slices.Contains(c.seeds, a) }
		for _, addr := range append(slices.Clone(c.seeds), peers...) {
			r := trs[addr]
			var want []string
			for to := range r.sent {
				if isSeed(to) != isSeed(addr) {
					want = append(want, to)
				}
			}
			slices.Sort(want)
			got := slices.Sorted(maps.Keys(r.released))
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("%s released %v, want the %d nodes of the other kind it sent to: %v", addr, got, len(want), want)
			}
		}
	})
}
