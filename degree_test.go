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
	// median degree.
	tailRatio = 4
	// degreeKmin is the smallest degree the fits cover: the minimum degree,
	// below which no peer settles.
	degreeKmin = DefaultMinDegree
	// degreeCap is the maximum degree. Peers at the cap refuse new links,
	// so the count there is a pile-up of every peer that would have gone
	// higher, not a point of the distribution; the fits therefore cover
	// kmin <= k < degreeCap, each model normalised on that range (a
	// truncated fit), and the peers at the cap are only counted.
	degreeCap = DefaultMaxDegree
	// The power-law exponent fitted on [kmin, cap) lies in this range.
	// Measured: 1.53-1.55 at 1000 peers, 1.49 at 400 (race); the band
	// allows for the run-to-run spread of the seeds' random peer lists.
	minExponent = 1.35
	maxExponent = 1.75
	// vuongMargin bounds how much better the geometric law may fit, in
	// Vuong's normalised log-likelihood ratio z: z < -vuongMargin would
	// mean the degrees are significantly closer to exponential (one-sided
	// p < 2.3 %). The stronger claim, that the power law fits better
	// (z > 0, or the ratio above a margin), does not hold on this range:
	// over nine runs at 1000 peers the ratio was -9.2 to +6.4 (z -0.7 to
	// +0.5), and -0.4 at 400. Between 2 and 31 the two laws cannot be told
	// apart with a thousand peers.
	vuongMargin = 2.0
	// minCapExcess: the peers at the cap are the ones whose degree would
	// have reached it or more. An exponential tail, with the geometric
	// law's q fitted below the cap, predicts about 2 of them in 1000
	// (q^30 with q = 0.81); there are at least this many times more
	// (measured 15-20 times at 1000 peers, 13 at 400).
	minCapExcess = 5
)

// TestDegreeDistribution grows a 1000-peer network one peer at a time and
// checks that the overlay is connected, respects the degree bounds and has
// a heavy-tailed degree distribution.
func TestDegreeDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 peers")
	}
	synctest.Test(t, func(t *testing.T) {
		peers, adj := growNetwork(t, degreePeers)
		deg := make([]int, 0, len(peers))
		for _, a := range peers {
			nb := adj[a]
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
		fit := fitDegrees(deg, degreeKmin, degreeCap)
		t.Logf("degree: min %d median %d max %d mean %.2f; %d peers at the cap %d left out of the fits",
			deg[0], median, top, mean(deg), fit.capped, degreeCap)
		t.Logf("histogram: %s", histogram(deg))
		t.Logf("fits on %d <= k < %d (n = %d): power law alpha %.3f logL %.1f; geometric q %.3f logL %.1f; "+
			"log-likelihood ratio %.1f, Vuong z %.2f; untruncated power-law estimate on k >= %d %.2f",
			degreeKmin, degreeCap, fit.n, fit.alpha, fit.llPow, fit.q, fit.llGeo, fit.llPow-fit.llGeo, fit.vuong,
			degreeKmin, powerLawMLE(deg, degreeKmin))
		if top < tailRatio*median {
			t.Errorf("max degree %d < %d x median %d: not heavy-tailed", top, tailRatio, median)
		}
		if fit.alpha < minExponent || fit.alpha > maxExponent {
			t.Errorf("fitted exponent %.3f outside [%v, %v]", fit.alpha, minExponent, maxExponent)
		}
		if fit.vuong < -vuongMargin {
			t.Errorf("geometric law fits significantly better than the power law: Vuong z %.2f (log-likelihoods %.1f vs %.1f), want at least %v",
				fit.vuong, fit.llPow, fit.llGeo, -vuongMargin)
		}
		// The pile-up at the cap, read as degrees of at least the cap
		// (right-censored), against an exponential tail.
		geoCapped := float64(fit.n+fit.capped) * math.Pow(fit.q, degreeCap-degreeKmin)
		t.Logf("at the cap: %d peers; an exponential tail predicts %.1f (%.1f times fewer)",
			fit.capped, geoCapped, float64(fit.capped)/geoCapped)
		if float64(fit.capped) < minCapExcess*geoCapped {
			t.Errorf("%d peers at the cap, want at least %v times the %.1f an exponential tail predicts",
				fit.capped, minCapExcess, geoCapped)
		}
	})
}

// growNetwork starts 3 seeds and n peers, one every 50 ms, lets the
// overlay settle for 30 s and returns the peers and their neighbours. It
// runs inside a synctest bubble.
func growNetwork(t *testing.T, n int, opts ...Option) ([]string, map[string][]string) {
	c := newCluster(t, 3, append([]Option{WithMessages(0)}, opts...)...)
	c.startSeeds()
	peers := c.startPeers(n, 50*time.Millisecond)
	time.Sleep(30 * time.Second)
	synctest.Wait()
	adj := make(map[string][]string, len(peers))
	for _, a := range peers {
		adj[a] = c.peers[a].Neighbors()
	}
	return peers, adj
}

// degreeFit compares a discrete power law P(k) ∝ k^-α with a discrete
// exponential (geometric) law P(k) ∝ q^k, both truncated to [kmin, kmax)
// and fitted by maximum likelihood, as Clauset, Shalizi and Newman (2009,
// section 5) do: the sign of the log-likelihood ratio says which fits
// better, and Vuong's statistic (the ratio over its standard deviation
// times √n) whether the difference is more than noise.
type degreeFit struct {
	n, capped    int
	alpha, q     float64
	llPow, llGeo float64
	vuong        float64
}

func fitDegrees(deg []int, kmin, kmax int) degreeFit {
	var ks []float64
	f := degreeFit{}
	for _, k := range deg {
		switch {
		case k >= kmax:
			f.capped++
		case k >= kmin:
			ks = append(ks, float64(k))
		}
	}
	f.n = len(ks)
	support := make([]float64, 0, kmax-kmin)
	for k := kmin; k < kmax; k++ {
		support = append(support, float64(k))
	}
	// Both models are exponential families on a finite support, so their
	// log-likelihoods are concave in the natural parameter (α, and λ with
	// q = e^-λ): a golden-section search finds the maximum.
	logPow := func(alpha float64) func(k float64) float64 {
		z := 0.0
		for _, j := range support {
			z += math.Pow(j, -alpha)
		}
		return func(k float64) float64 { return -alpha*math.Log(k) - math.Log(z) }
	}
	logGeo := func(lambda float64) func(k float64) float64 {
		z := 0.0
		for _, j := range support {
			z += math.Exp(-lambda * (j - float64(kmin)))
		}
		return func(k float64) float64 { return -lambda*(k-float64(kmin)) - math.Log(z) }
	}
	ll := func(logp func(float64) float64) float64 {
		s := 0.0
		for _, k := range ks {
			s += logp(k)
		}
		return s
	}
	f.alpha = goldenMax(func(a float64) float64 { return ll(logPow(a)) }, 0, 10)
	lambda := goldenMax(func(l float64) float64 { return ll(logGeo(l)) }, 1e-9, 10)
	f.q = math.Exp(-lambda)
	pw, ge := logPow(f.alpha), logGeo(lambda)
	var sum, sq float64
	for _, k := range ks {
		d := pw(k) - ge(k)
		sum += d
		sq += d * d
	}
	f.llPow, f.llGeo = ll(pw), ll(ge)
	m := sum / float64(f.n)
	sd := math.Sqrt(sq/float64(f.n) - m*m)
	f.vuong = sum / (sd * math.Sqrt(float64(f.n)))
	return f
}

// goldenMax returns the x in [lo, hi] maximising the unimodal fn.
func goldenMax(fn func(float64) float64, lo, hi float64) float64 {
	g := (math.Sqrt(5) - 1) / 2
	a, b := lo, hi
	c, d := b-g*(b-a), a+g*(b-a)
	fc, fd := fn(c), fn(d)
	for b-a > 1e-6 {
		if fc > fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			fc = fn(c)
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			fd = fn(d)
		}
	}
	return (a + b) / 2
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

// powerLawMLE is the approximate discrete maximum-likelihood estimate of α
// for an untruncated P(k) ∝ k^-α, k >= kmin (Clauset, Shalizi and Newman
// 2009, eq. 3.7). It counts the pile-up at the degree cap as ordinary
// degrees, so it is only logged next to the truncated fit.
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

const (
	// uncappedMaxDegree is far above the degrees a 1000-peer network
	// reaches, so that the cap truncates nothing.
	uncappedMaxDegree = 128
	// uncappedPeers is the network size of TestDegreeDistributionUncapped.
	uncappedPeers = 1000
	// powerLawZ: without the cap, the power law fits significantly better
	// than the geometric law (Vuong z above this, one-sided p < 2.3 %).
	// Measured: z 2.99-3.28, log-likelihood ratio 90-101, over four runs.
	powerLawZ = 2.0
	// The exponent fitted without the cap lies in this range (measured
	// 1.752-1.758).
	minUncappedExponent = 1.6
	maxUncappedExponent = 1.9
)

// TestDegreeDistributionUncapped grows the same network with a maximum
// degree the network never reaches, to show the shape the neighbour
// choice produces when no cap truncates it: a power law, which fits
// significantly better than an exponential. It runs at full scale only
// (400 peers give z about 1.4, too few to tell), so it is skipped under
// the race detector; .ci/run runs it without.
func TestDegreeDistributionUncapped(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("1000 peers, full scale only")
	}
	synctest.Test(t, func(t *testing.T) {
		peers, adj := growNetwork(t, uncappedPeers, WithMaxDegree(uncappedMaxDegree))
		deg := make([]int, 0, len(peers))
		for _, a := range peers {
			deg = append(deg, len(adj[a]))
		}
		if n := reachable(adj, peers[0]); n != len(peers) {
			t.Errorf("overlay not connected: %d of %d peers reachable", n, len(peers))
		}
		slices.Sort(deg)
		fit := fitDegrees(deg, degreeKmin, uncappedMaxDegree)
		t.Logf("uncapped (max %d): min %d median %d max %d mean %.2f; %d at the cap", uncappedMaxDegree,
			deg[0], deg[len(deg)/2], deg[len(deg)-1], mean(deg), fit.capped)
		t.Logf("histogram: %s", histogram(deg))
		t.Logf("power law alpha %.3f logL %.1f; geometric q %.3f logL %.1f; log-likelihood ratio %.1f, Vuong z %.2f",
			fit.alpha, fit.llPow, fit.q, fit.llGeo, fit.llPow-fit.llGeo, fit.vuong)
		if fit.vuong < powerLawZ {
			t.Errorf("power law not significantly better than geometric: Vuong z %.2f, want at least %v", fit.vuong, powerLawZ)
		}
		if fit.alpha < minUncappedExponent || fit.alpha > maxUncappedExponent {
			t.Errorf("fitted exponent %.3f outside [%v, %v]", fit.alpha, minUncappedExponent, maxUncappedExponent)
		}
	})
}
