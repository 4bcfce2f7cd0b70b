//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKillAndFreeze kills one peer (SIGKILL) and freezes another (SIGSTOP,
// left stopped) in a network of 3 seeds and 8 peers, then checks that the
// other peers still exchange all their messages, that both failed peers
// are reported dead with the spec's dead-node line and removed by every
// seed they registered with, and that no live peer is removed.
func TestKillAndFreeze(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 11 processes for ~15s")
	}
	const messages = 20
	c := newCluster(t, 3)
	peers := c.addPeers(8, "-gossip-interval", "200ms", "-liveness-interval", "500ms",
		"-misses", "3", "-messages", fmt.Sprint(messages))

	c.waitJoined(peers)

	killed, frozen := peers[0], peers[1]
	live := without(peers, killed, frozen)
	// The seeds each failed peer registered with, from its own file.
	registeredWith := map[*node][]string{}
	for _, n := range []*node{killed, frozen} {
		p := readPeer(n.file())
		if len(p.seeds) != 2 {
			t.Fatalf("%s joined with %d seeds %v, want 2 of 3", n.addr, len(p.seeds), p.seeds)
		}
		registeredWith[n] = p.seeds
	}
	failedAt := time.Now()
	killed.proc.killNow(t)
	frozen.proc.freeze(t)
	t.Logf("killed %s, froze %s", killed.addr, frozen.addr)

	// The failed peers' checks, as text of what is missing ("" when all
	// hold).
	failureHandled := func(n *node) string {
		var b strings.Builder
		reported := false
		for _, r := range live {
			for _, d := range readPeer(r.file()).dead {
				if d.dead == n.addr && d.reporter == r.addr && len(d.to) > 0 && !d.stamp.Before(failedAt.Truncate(time.Millisecond)) {
					reported = true
				}
			}
		}
		if !reported {
			fmt.Fprintf(&b, "no live peer's file has \"Dead Node:%s:<timestamp>:<itself> sent to seeds [...]\" after the failure\n", n.addr)
		}
		received := false
		for _, s := range c.seeds {
			for _, d := range readSeed(s.file()).dead {
				if d.dead == n.addr && d.reporter == d.from && !d.stamp.Before(failedAt.Truncate(time.Millisecond)) {
					received = true
				}
			}
		}
		if !received {
			fmt.Fprintf(&b, "no seed's file has \"Dead Node:%s:<timestamp>:<reporter> received from <reporter>\"\n", n.addr)
		}
		for _, s := range c.seeds {
			if !slices.Contains(registeredWith[n], s.addr) {
				continue
			}
			if !slices.Contains(readSeed(s.file()).removed[n.addr], "dead") {
				fmt.Fprintf(&b, "seed %s has not removed %s (dead)\n", s.addr, n.addr)
			}
		}
		return b.String()
	}
	waitFor(t, "all messages delivered and both failures handled", func() (bool, string, error) {
		allSent, missing := missingMessages(live, messages)
		missing += failureHandled(killed) + failureHandled(frozen)
		return allSent && missing == "", missing, aliveErr(slices.Concat(without(c.peers, killed, frozen), c.seeds))
	})

	// No live peer was removed by any seed, for whatever reason.
	for _, s := range c.seeds {
		removed := readSeed(s.file()).removed
		for _, n := range live {
			if reasons := removed[n.addr]; len(reasons) > 0 {
				t.Errorf("seed %s removed live peer %s (%s)", s.addr, n.addr, strings.Join(reasons, ", "))
			}
		}
	}
	checkNoCrash(t, c.all...)
}
