package gossip

import (
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// Reliability scenarios from the [reliability] issue, in virtual time. Under
// the race detector the two longest run on 50 peers for 10 minutes.
var (
	churnPeers    = scaled(100, 50)
	churnDuration = time.Duration(scaled(30, 10)) * time.Minute
)

func scaled(full, race int) int {
	if raceEnabled {
		return race
	}
	return full
}

const (
	churnLoss     = 0.05
	churnEvery    = 30 * time.Second
	churnFraction = 0.10
	churnDowntime = 10 * time.Second
	churnGossip   = time.Minute // one message per peer per minute
	highLoss      = 0.10
)

// delivery checks that every message originated by a peer in stable
// reached every other peer in stable, and returns the number checked.
func checkDelivery(t *testing.T, rec *recorder, stable []string) int {
	t.Helper()
	originated := map[string][]uint64{}
	for _, ev := range rec.kind(EventOriginated) {
		if slices.Contains(stable, ev.Node) {
			originated[ev.Node] = append(originated[ev.Node], ev.Seq)
		}
	}
	got := map[string]map[msgKey]bool{}
	for _, ev := range rec.kind(EventMessage) {
		if got[ev.Node] == nil {
			got[ev.Node] = map[msgKey]bool{}
		}
		got[ev.Node][msgKey{ev.Origin, ev.Seq}] = true
	}
	checked, missing := 0, 0
	for _, p := range stable {
		for origin, seqs := range originated {
			if origin == p {
				continue
			}
			for _, seq := range seqs {
				checked++
				if !got[p][msgKey{origin, seq}] {
					missing++
					if missing <= 10 {
						t.Errorf("%s never delivered %s#%d", p, origin, seq)
					}
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d deliveries missing", missing, checked)
	}
	return checked
}

// TestChurnWithLoss: 100 peers, 5% loss on every link, 30 virtual minutes;
// a fixed 10% of the peers crash every 30 s and restart (as new processes,
// with no state) 10 s later. Every message from a peer that stayed up
// reaches every peer that stayed up, no live peer is removed, and
// restarted peers rejoin within one refresh interval.
func TestChurnWithLoss(t *testing.T) { runChurn(t) }

// TestChurnWithLossLazy is TestChurnWithLoss in lazy-push mode: the tree
// loses a tenth of its peers every 30 s, and every message still reaches
// every peer that stayed up.
func TestChurnWithLossLazy(t *testing.T) { runChurn(t, WithLazyPush(50*time.Millisecond, time.Second)) }

// TestChurnWithLossPruned is TestChurnWithLoss flooding with self-pruning
// and a relay wait: with fewer copies to hide a loss, and neighbour lists
// going stale at every crash, anti-entropy still brings every message to
// every peer that stayed up.
func TestChurnWithLossPruned(t *testing.T) {
	runChurn(t, WithSelfPruning(true), WithRelayWait(5*time.Millisecond))
}

func runChurn(t *testing.T, opts ...Option) {
	if testing.Short() {
		t.Skip("long scenario")
	}
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, append([]Option{WithMessages(int(churnDuration/churnGossip) - 3), WithGossipInterval(churnGossip)}, opts...)...)
		c.net.SetDefaultFault(transport.Fault{Drop: churnLoss})
		c.startSeeds()
		peers := c.startPeers(churnPeers, joinGap)
		rng := rand.New(rand.NewPCG(7, 7))
		churned := map[string]bool{}
		for _, i := range rng.Perm(len(peers))[:int(churnFraction*float64(churnPeers))] {
			churned[peers[i]] = true
		}
		type window struct{ down, up time.Time }
		downtime := map[string][]window{}
		start := time.Now()
		var restarts []time.Time
		for time.Since(start) < churnDuration-3*time.Minute {
			time.Sleep(churnEvery - churnDowntime)
			for _, a := range peers {
				if churned[a] {
					downtime[a] = append(downtime[a], window{down: time.Now()})
					c.crash(a)
				}
			}
			time.Sleep(churnDowntime)
			restarted := time.Now()
			for _, a := range peers {
				if churned[a] {
					downtime[a][len(downtime[a])-1].up = restarted
					c.startPeer(a, WithRandSeed(rng.Uint64()), WithMessages(0))
				}
			}
			restarts = append(restarts, restarted)
		}
		time.Sleep(churnDuration - time.Since(start))
		synctest.Wait()

		var stable []string
		for _, a := range peers {
			if !churned[a] {
				stable = append(stable, a)
			}
		}
		n := checkDelivery(t, c.rec, stable)
		// No seed removed a peer while it was up.
		removedLive := 0
		for _, ev := range c.rec.kind(EventPeerRemoved) {
			up := true
			for _, w := range downtime[ev.Addr] {
				if !ev.Time.Before(w.down) && ev.Time.Before(w.up.Add(time.Second)) {
					up = false
				}
			}
			if up {
				removedLive++
				t.Errorf("seed %s removed live peer %s at %v (reason %s)", ev.Node, ev.Addr, ev.Time.Sub(start), ev.Reason)
			}
		}
		// Each restart rejoined through the seeds within one refresh
		// interval (and before its next crash).
		var slowest time.Duration
		for a := range churned {
			joins := c.rec.filter(func(ev Event) bool { return ev.Node == a && ev.Kind == EventJoined })
			for _, r := range restarts {
				i := slices.IndexFunc(joins, func(ev Event) bool { return !ev.Time.Before(r) })
				if i < 0 || joins[i].Time.Sub(r) > min(DefaultRefreshInterval, churnEvery-churnDowntime) {
					t.Errorf("%s restarted at %v did not rejoin in time", a, r.Sub(start))
					continue
				}
				slowest = max(slowest, joins[i].Time.Sub(r))
			}
		}
		t.Logf("%d stable peers, %d churned %d times each (slowest rejoin %v); %d deliveries checked; %d removals, %d of live peers",
			len(stable), len(churned), len(restarts), slowest, n, len(c.rec.kind(EventPeerRemoved)), removedLive)
	})
}

// TestNoFalseDeathsUnderLoss: 10% loss on every link for 30 virtual minutes
// and no crash: no seed accepts a dead-node report.
func TestNoFalseDeathsUnderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("long scenario")
	}
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithMessages(0))
		c.startSeeds()
		c.startPeers(churnPeers, joinGap)
		time.Sleep(time.Minute)
		c.net.SetDefaultFault(transport.Fault{Drop: highLoss})
		time.Sleep(churnDuration)
		synctest.Wait()
		if rm := c.rec.kind(EventPeerRemoved); len(rm) != 0 {
			t.Errorf("%d false removals, e.g. %v", len(rm), rm[0])
		}
		t.Logf("%d dead-node reports sent, %d refuted by probes, 0 accepted",
			len(c.rec.kind(EventDeadReportSent)), len(c.rec.kind(EventDeadReportRefuted)))
	})
}

// Partition scenario: a 50/50 split for two minutes, then a heal.
const (
	partitionPeers  = 40
	partitionSeeds  = 3
	partitionSettle = time.Minute // before the split
	partitionFor    = 2 * time.Minute
	partitionEvery  = 15 * time.Second // every peer broadcasts this often
	partitionRounds = int(partitionFor / partitionEvery)
	// partitionHealTime is how long after the heal every message must have
	// reached every peer and every peer be registered again: one refresh
	// interval for the registrations, two anti-entropy rounds for the
	// messages, and a minute for the overlay to relink across the halves.
	partitionHealTime = DefaultRefreshInterval + 2*DefaultAntiEntropy + time.Minute
	// seedMajority is how many of the seeds a peer registers with.
	seedMajority = partitionSeeds/2 + 1
)

// TestPartitionHeal splits the network in two halves (seeds included) for
// two minutes while everybody publishes, then heals it.
func TestPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const half = partitionPeers / 2
		c := newCluster(t, partitionSeeds, WithMessages(0))
		peers := c.startNetwork(partitionPeers, partitionSettle)

		// The left half keeps one seed, the right half the others.
		left := append(slices.Clone(peers[:half]), c.seeds[:partitionSeeds/2]...)
		right := append(slices.Clone(peers[half:]), c.seeds[partitionSeeds/2:]...)
		c.net.Partition(left, right)
		partitionedAt := time.Now()
		for range partitionRounds {
			for _, a := range peers {
				// Each half keeps 100 % delivery internally, so every peer
				// must still have a neighbour to send to.
				if err := c.peers[a].Broadcast(t.Context(), []byte(a+" during "+time.Now().String())); err != nil {
					t.Errorf("%s: Broadcast during the partition: %v", a, err)
				}
			}
			time.Sleep(partitionEvery)
		}
		synctest.Wait()
		if orig := len(c.rec.kind(EventOriginated)); orig != partitionRounds*partitionPeers {
			t.Errorf("%d messages originated during the partition, want %d", orig, partitionRounds*partitionPeers)
		}
		// Inside each side, everything arrived.
		for _, side := range [][]string{peers[:half], peers[half:]} {
			sub := &recorder{events: c.rec.filter(func(ev Event) bool {
				return slices.Contains(side, ev.Node) && (ev.Kind != EventMessage || slices.Contains(side, ev.Origin))
			})}
			checkDelivery(t, sub, side)
		}
		c.net.Heal()
		healedAt := time.Now()
		time.Sleep(partitionHealTime)
		synctest.Wait()
		checkDelivery(t, c.rec, peers)
		for _, a := range peers {
			registered := 0
			for _, s := range c.seedsBy {
				if slices.Contains(s.Peers(), a) {
					registered++
				}
			}
			if registered < seedMajority {
				t.Errorf("%s registered with %d seeds after the heal, want a majority (%d)", a, registered, seedMajority)
				for _, ev := range c.rec.filter(func(ev Event) bool { return ev.Addr == a || (ev.Node == a && ev.Kind != EventMessage) }) {
					t.Logf("  %v %s %s", ev.Time.Sub(partitionedAt), ev.Node, ev)
				}
			}
		}
		var lastDelivery time.Duration
		for _, ev := range c.rec.kind(EventMessage) {
			lastDelivery = max(lastDelivery, ev.Time.Sub(healedAt))
		}
		t.Logf("%v partition; removals (of unreachable peers) meanwhile: %d; last delivery %v after the heal (checked after %v)",
			partitionFor, len(c.rec.kind(EventPeerRemoved)), lastDelivery, partitionHealTime)
	})
}

// Seed restart and outage scenario.
const (
	outagePeers  = 30
	outageSeeds  = 3
	outageSettle = time.Minute // before the first restart
	// outageRefresh is how soon a restarted seed must list its peers
	// again: one refresh interval, plus a second for the registrations.
	outageRefresh = DefaultRefreshInterval + time.Second
	outageFor     = 5 * time.Minute // every seed down
	outageEvery   = 30 * time.Second
	outageRounds  = int(outageFor / outageEvery)
)

// TestSeedRestartAndOutage restarts one seed with an empty list, then takes
// every seed down for five minutes while the peers keep gossiping.
func TestSeedRestartAndOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, outageSeeds, WithMessages(0))
		peers := c.startNetwork(outagePeers, outageSettle)

		s0 := c.seeds[0]
		before := c.seedsBy[s0].Peers()
		c.crash(s0)
		c.startSeeds(s0)
		time.Sleep(outageRefresh)
		synctest.Wait()
		if got := c.seedsBy[s0].Peers(); !slices.Equal(got, before) {
			t.Errorf("restarted seed lists %d peers after one refresh interval, want %d", len(got), len(before))
		}

		lists := map[string][]string{}
		for _, s := range c.seeds {
			lists[s] = c.seedsBy[s].Peers()
			c.crash(s)
		}
		for range outageRounds {
			for _, a := range peers {
				// Every peer keeps its neighbours through the outage: a
				// failure here would hide a lost message from checkDelivery.
				if err := c.peers[a].Broadcast(t.Context(), []byte(a+" "+time.Now().String())); err != nil {
					t.Errorf("%s: Broadcast with every seed down: %v", a, err)
				}
			}
			time.Sleep(outageEvery)
		}
		synctest.Wait()
		if n := checkDelivery(t, c.rec, peers); n != outageRounds*outagePeers*(outagePeers-1) {
			t.Errorf("%d deliveries checked, want %d", n, outageRounds*outagePeers*(outagePeers-1))
		}
		c.startSeeds()
		time.Sleep(outageRefresh)
		synctest.Wait()
		for _, s := range c.seeds {
			if got := c.seedsBy[s].Peers(); !slices.Equal(got, lists[s]) {
				t.Errorf("seed %s lists %d peers one refresh interval after the outage, want the %d it had", s, len(got), len(lists[s]))
			}
		}
	})
}

// Frozen-peer scenario.
const (
	frozenPeers = 20
	frozenIndex = 5
	// frozenSettle is how long the network runs before the freeze.
	frozenSettle = time.Minute
	// frozenFor is how long the peer stays frozen. The issue says "three
	// liveness intervals", but a neighbour reports a peer only once
	// maxMisses (3) of its requests went unanswered, counted at the round
	// after the third: the first unanswered request goes out up to one
	// interval after the freeze starts, so the report comes 3L to 4L after
	// it; the seeds then probe the peer themselves (probeTime) before
	// removing it. A freeze of exactly 3L ends before any report, and the
	// next request is answered. To be "reported and removed" the peer
	// must stay frozen for the whole removal bound, 4L + probes + slack.
	frozenFor = removalBound
	// frozenAfter is how long the test watches the resumed peer: gossip
	// takes no virtual time on the in-memory network, this is margin.
	frozenAfter = 10 * time.Second
)

// TestFrozenPeerRejoins freezes a peer (its process runs but the network
// drops its frames) long enough to be reported and removed, then resumes
// it: it was reported dead by a neighbour before the seeds removed it; it
// accused nobody itself, since losing every neighbour and seed at once
// makes it suspect its own link (Lifeguard-style local health); and once
// resumed it is back within one refresh interval.
func TestFrozenPeerRejoins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithMessages(0))
		peers := c.startNetwork(frozenPeers, frozenSettle)

		frozen := peers[frozenIndex]
		frozenAt := time.Now()
		c.net.Crash(frozen)
		time.Sleep(frozenFor)
		synctest.Wait()
		removed := c.rec.filter(func(ev Event) bool { return ev.Kind == EventPeerRemoved && ev.Addr == frozen })
		if len(removed) == 0 {
			t.Fatal("frozen peer never removed")
		}
		reports := c.rec.filter(func(ev Event) bool { return ev.Kind == EventDeadReportSent && ev.Addr == frozen })
		if len(reports) == 0 {
			t.Fatal("frozen peer removed without a dead-node report")
		}
		for _, ev := range reports {
			checkDeadLine(t, ev, frozen)
		}
		for _, ev := range removed {
			if ev.Reason != "dead" {
				t.Errorf("seed %s removed the frozen peer for %q, want dead", ev.Node, ev.Reason)
			}
			if !reports[0].Time.Before(ev.Time) {
				t.Errorf("seed %s removed the frozen peer at %v, not after the first report at %v",
					ev.Node, ev.Time.Sub(frozenAt), reports[0].Time.Sub(frozenAt))
			}
		}
		c.net.Restore(frozen)
		resumed := time.Now()
		time.Sleep(DefaultRefreshInterval)
		synctest.Wait()
		for _, s := range c.seedsBy {
			if slices.ContainsFunc(removed, func(ev Event) bool { return ev.Node == s.Addr() }) && !slices.Contains(s.Peers(), frozen) {
				t.Errorf("seed %s has not re-registered %s within %v of resuming", s.Addr(), frozen, time.Since(resumed))
			}
		}
		if len(c.peers[frozen].Neighbors()) < DefaultMinDegree {
			t.Errorf("resumed peer has neighbours %v", c.peers[frozen].Neighbors())
		}
		if err := c.peers[frozen].Broadcast(t.Context(), []byte("back")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(frozenAfter)
		synctest.Wait()
		got := c.rec.filter(func(ev Event) bool { return ev.Kind == EventMessage && ev.Origin == frozen })
		if len(got) != len(peers)-1 {
			t.Errorf("its message reached %d peers, want %d", len(got), len(peers)-1)
		}
		// Local health: frozen, it saw every neighbour go silent at once
		// and blamed its own link; resumed, it found its links gone
		// (disconnects, not silence) and accused nobody either.
		if own := c.rec.of(frozen, EventDeadReportSent); len(own) != 0 {
			t.Errorf("the frozen peer reported %d neighbours dead, e.g. %v at %v after the freeze (resumed at %v)",
				len(own), own[0], own[0].Time.Sub(frozenAt), resumed.Sub(frozenAt))
		}
		t.Logf("frozen %v: first report after %v, removed by %d seeds after %v; back with %d neighbours",
			frozenFor, reports[0].Time.Sub(frozenAt), len(removed), removed[len(removed)-1].Time.Sub(frozenAt),
			len(c.peers[frozen].Neighbors()))
	})
}
