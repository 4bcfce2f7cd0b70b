package gossip

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/codec"
)

const (
	clusterSeeds = 3
	clusterPeers = 30
	joinGap      = 100 * time.Millisecond
)

type msgKey struct {
	origin string
	seq    uint64
}

type linkKey struct {
	from, to string
	id       msgID
}

// gossipCounter counts gossip frames per directed link and message, as
// the transport carries them.
type gossipCounter struct {
	mu    sync.Mutex
	sends map[linkKey]int
	bad   int
}

func (g *gossipCounter) filter(from, to string, frame []byte) bool {
	var m wireMsg
	if err := codec.Msgpack().Unmarshal(frame, &m); err != nil {
		g.mu.Lock()
		g.bad++
		g.mu.Unlock()
		return true
	}
	if m.K == kindGossip {
		g.mu.Lock()
		g.sends[linkKey{from, to, gossipID(m.Origin, m.Seq, m.Stamp, m.Payload)}]++
		g.mu.Unlock()
	}
	return true
}

// TestClusterGossip runs the spec's scenario with its default timings:
// 3 seeds, 30 peers, 10 messages each every 5 s, liveness every 13 s.
func TestClusterGossip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		counter := &gossipCounter{sends: make(map[linkKey]int)}
		c.net.SetFilter(counter.filter)
		c.startSeeds()
		peers := c.startPeers(clusterPeers, joinGap)
		// 10 messages 5 s apart, plus time to spread them.
		time.Sleep(DefaultMessages*DefaultGossipInterval + 20*time.Second)
		synctest.Wait()

		want := (clusterPeers - 1) * DefaultMessages
		relayed := 0
		for _, p := range peers {
			msgs := c.rec.of(p, EventMessage)
			got := make(map[msgKey]int)
			for _, ev := range msgs {
				got[msgKey{ev.Origin, ev.Seq}]++
				if ev.Origin != ev.From {
					relayed++
				}
				if ev.Origin == p {
					t.Errorf("%s delivered its own message %d", p, ev.Seq)
				}
				// Never sent back over the link it came in on.
				id := gossipID(ev.Origin, ev.Seq, ev.Stamp.UnixNano(), ev.Payload)
				if n := counter.sends[linkKey{p, ev.From, id}]; n != 0 {
					t.Errorf("%s sent %s#%d back to %s, where it came from", p, ev.Origin, ev.Seq, ev.From)
				}
			}
			if len(msgs) != want || len(got) != want {
				t.Errorf("%s delivered %d messages (%d distinct), want %d exactly once", p, len(msgs), len(got), want)
			}
			for k, n := range got {
				if n != 1 {
					t.Errorf("%s delivered %s#%d %d times", p, k.origin, k.seq, n)
				}
			}
			if o := c.rec.of(p, EventOriginated); len(o) != DefaultMessages {
				t.Errorf("%s originated %d messages, want %d", p, len(o), DefaultMessages)
			}
		}
		for k, n := range counter.sends {
			if n > 1 {
				t.Errorf("%s sent a message %d times to %s", k.from, n, k.to)
			}
		}
		if counter.bad != 0 {
			t.Errorf("%d undecodable frames on the wire", counter.bad)
		}
		if relayed == 0 {
			t.Error("no delivery was relayed (origin == relayer everywhere)")
		}
		if rm := c.rec.kind(EventPeerRemoved); len(rm) != 0 {
			t.Errorf("live peers removed: %v", rm)
		}
		t.Logf("%d peers x %d messages delivered exactly once; %d of %d deliveries relayed",
			clusterPeers, want, relayed, clusterPeers*want)
	})
}

// TestClusterCrash crashes one peer silently and checks that exactly its
// neighbours report it after three missed liveness rounds and that every
// seed it registered with removes it, and nobody else.
func TestClusterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		c.startSeeds()
		peers := c.startPeers(clusterPeers, joinGap)
		time.Sleep(30 * time.Second)
		synctest.Wait()

		victim := peers[7]
		nbrs := c.peers[victim].Neighbors()
		if len(nbrs) == 0 {
			t.Fatalf("victim %s has no neighbours", victim)
		}
		joined := c.rec.of(victim, EventJoined)
		if len(joined) != 1 {
			t.Fatalf("victim joined %d times", len(joined))
		}
		regSeeds := joined[0].Peers
		before := make(map[string][]string)
		for a, s := range c.seedsBy {
			before[a] = s.Peers()
		}
		crashAt := time.Now()
		c.net.Crash(victim) // vanishes: its leave messages are lost too
		c.stop(victim)

		const L = DefaultLivenessInterval
		// Three missed rounds, then the seeds' probes and their vote.
		time.Sleep(4*L + 2*DefaultProbeAttempts*DefaultProbeTimeout + time.Second)
		synctest.Wait()

		reports := c.rec.filter(func(ev Event) bool { return ev.Kind == EventDeadReportSent && ev.Addr == victim })
		var reporters []string
		for _, ev := range reports {
			reporters = append(reporters, ev.Node)
			// Three missed rounds: the first unanswered request went out
			// within L after the crash, the report three rounds later.
			if d := ev.Time.Sub(crashAt); d <= 3*L || d > 4*L {
				t.Errorf("%s reported %s %v after the crash, want in (3L, 4L] = (%v, %v]", ev.Node, victim, d, 3*L, 4*L)
			}
			if !slices.Equal(ev.Peers, c.rec.of(ev.Node, EventJoined)[0].Peers) {
				t.Errorf("%s reported to %v, want its seeds", ev.Node, ev.Peers)
			}
		}
		slices.Sort(reporters)
		if !slices.Equal(reporters, nbrs) {
			t.Errorf("reporters = %v, want the victim's neighbours %v", reporters, nbrs)
		}
		var removers []string
		for _, ev := range c.rec.kind(EventPeerRemoved) {
			if ev.Addr != victim {
				t.Errorf("seed %s removed live peer %s (%s)", ev.Node, ev.Addr, ev.Reason)
				continue
			}
			if ev.Reason != "dead" {
				t.Errorf("seed %s removed %s for %q, want dead", ev.Node, victim, ev.Reason)
			}
			removers = append(removers, ev.Node)
		}
		slices.Sort(removers)
		want := slices.Sorted(slices.Values(regSeeds))
		if !slices.Equal(removers, want) {
			t.Errorf("removed by seeds %v, want the seeds it registered with %v", removers, want)
		}
		for a, s := range c.seedsBy {
			want := slices.DeleteFunc(before[a], func(p string) bool { return p == victim })
			if got := s.Peers(); !slices.Equal(got, want) {
				t.Errorf("seed %s lists %v, want %v (the list before the crash, less the victim)", a, got, want)
			}
		}
	})
}

// TestForgedDeadReport sends a dead-node report about a live peer from a
// node that is not even registered: the seeds probe, get an answer, and
// remove nobody.
func TestForgedDeadReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		c.startSeeds()
		peers := c.startPeers(5, joinGap)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		evil := c.transport("10.66.0.1:6666")
		for _, victim := range peers {
			frame, _ := codec.Msgpack().Marshal(&wireMsg{V: 1, K: kindDeadReport, Addr: victim, Stamp: time.Now().UnixNano()})
			for _, s := range c.seeds {
				if err := evil.Send(t.Context(), s, frame); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if rm := c.rec.kind(EventPeerRemoved); len(rm) != 0 {
			t.Errorf("forged reports removed peers: %v", rm)
		}
		refuted := c.rec.kind(EventDeadReportRefuted)
		registrations := 0
		for _, s := range c.seedsBy {
			registrations += len(s.Peers())
		}
		if len(refuted) != registrations {
			t.Errorf("%d refutations, want one per registration (%d)", len(refuted), registrations)
		}
	})
}

// TestRegistrationMajority covers 1 to 5 seeds with some of them down.
func TestRegistrationMajority(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for down := 0; down <= n; down++ {
			t.Run(fmt.Sprintf("seeds=%d/down=%d", n, down), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c := newCluster(t, n)
					c.startSeeds(c.seeds[down:]...)
					for _, a := range c.seeds[:down] {
						c.transport(a) // the address exists but nobody answers
					}
					p := peerAddr(0)
					c.startPeer(p, WithJoinTimeout(time.Minute), WithRandSeed(uint64(n*10+down)))
					time.Sleep(2 * time.Minute)
					synctest.Wait()

					need := n/2 + 1
					joined := c.rec.of(p, EventJoined)
					if n-down >= need {
						if len(joined) != 1 || len(joined[0].Peers) != need {
							t.Fatalf("joined events %v, want one with %d seeds", joined, need)
						}
						for _, s := range joined[0].Peers {
							if slices.Index(c.seeds, s) < down {
								t.Errorf("registered with down seed %s", s)
							}
						}
						if err := c.runErr(p); err != nil {
							t.Errorf("Run returned %v while running", err)
						}
						return
					}
					if len(joined) != 0 {
						t.Fatalf("joined without a majority: %v", joined)
					}
					if len(c.rec.of(p, EventRegisterFailed)) == 0 {
						t.Error("no EventRegisterFailed")
					}
					err := c.runErr(p)
					var je *JoinError
					if !errors.Is(err, ErrNoMajority) || !errors.As(err, &je) || je.Need != need {
						t.Fatalf("Run = %v, want a *JoinError wrapping ErrNoMajority", err)
					}
				})
			})
		}
	}
}

// TestRegistrationRetry starts the seeds late: the peer keeps retrying with
// backoff and joins once they are up.
func TestRegistrationRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		p := peerAddr(0)
		c.startPeer(p)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if len(c.rec.of(p, EventRegisterFailed)) == 0 {
			t.Fatal("no EventRegisterFailed while all seeds are down")
		}
		c.startSeeds()
		time.Sleep(DefaultRetryMax + DefaultRegisterTimeout)
		synctest.Wait()
		if len(c.rec.of(p, EventJoined)) != 1 {
			t.Fatalf("did not join once the seeds came up: %v", c.rec.filter(func(Event) bool { return true }))
		}
	})
}
