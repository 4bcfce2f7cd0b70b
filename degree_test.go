package gossip

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// degreePeers is 1000, or 400 under the race detector.
var degreePeers = scaled(1000, 400)

const (
	// Heavy tail: the best-connected peer has at least this many times the
	// median degree, and the fitted power-law exponent lies in this range.
	tailRatio   = 4
	minExponent = 1.5
	maxExponent = 4.0
)

// TestDegreeDistribution grows a 1000-peer network one peer at a time and
// checks that the overlay is connected, respects the degree bounds and has
// a heavy-tailed degree distribution.
func TestDegreeDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 peers")
	}
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithMessages(0))
		c.startSeeds()
		peers := c.startPeers(degreePeers, 50*time.Millisecond)
		time.Sleep(30 * time.Second)
		synctest.Wait()

		deg := make([]int, 0, len(peers))
		adj := make(map[string][]string, len(peers))
		for _, a := range peers {
			nb := c.peers[a].Neighbors()
			adj[a] = nb
			deg = append(deg, len(nb))
			if len(nb) > DefaultMaxDegree {
				t.Errorf("%s has %d neighbours, above the maximum %d", a, len(nb), DefaultMaxDegree)
			}
			if len(nb) < DefaultMinDegree {
				t.Errorf("%s has %d neighbours, below the minimum %d", a, len(nb), DefaultMinDegree)
			}
		}
		// Links are symmetric.
		for a, nb := range adj {
			for _, b := range nb {
				if !slices.Contains(adj[b], a) {
					t.Errorf("%s lists %s as neighbour but not vice versa", a, b)
				}
			}
		}
		if n := reachable(adj, peers[0]); n != len(peers) {
			t.Errorf("overlay not connected: %d of %d peers reachable", n, len(peers))
		}
		slices.Sort(deg)
		median, top := deg[len(deg)/2], deg[len(deg)-1]
		alpha := powerLawMLE(deg, DefaultMinDegree)
		t.Logf("degree: min %d median %d max %d mean %.2f; fitted exponent %.2f (kmin %d)",
			deg[0], median, top, mean(deg), alpha, DefaultMinDegree)
		t.Logf("histogram: %s", histogram(deg))
		if top < tailRatio*median {
			t.Errorf("max degree %d < %d x median %d: not heavy-tailed", top, tailRatio, median)
		}
		if alpha < minExponent || alpha > maxExponent {
			t.Errorf("fitted exponent %.2f outside [%v, %v]", alpha, minExponent, maxExponent)
		}
	})
}

func reachable(adj map[string][]string, from string) int {
	seen := map[string]bool{from: true}
	queue := []string{from}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		for _, b := range adj[a] {
			if !seen[b] {
				seen[b] = true
				queue = append(queue, b)
			}
		}
	}
	return len(seen)
}

// powerLawMLE is the discrete maximum-likelihood estimate of α for
// P(k) ∝ k^-α, k >= kmin (Clauset, Shalizi and Newman 2009, eq. 3.7).
func powerLawMLE(deg []int, kmin int) float64 {
	n, sum := 0, 0.0
	for _, k := range deg {
		if k >= kmin {
			n++
			sum += math.Log(float64(k) / (float64(kmin) - 0.5))
		}
	}
	return 1 + float64(n)/sum
}

func mean(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

func histogram(deg []int) string {
	counts := map[int]int{}
	for _, d := range deg {
		counts[d]++
	}
	var b strings.Builder
	for _, d := range slices.Sorted(func(yield func(int) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%d:%d ", d, counts[d])
	}
	return b.String()
}
