//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRestartWhilePublishing kills and restarts a seed, then two peers in
// turn, on the same addresses, while 10 peers publish, and checks that the
// peers that stayed up still exchange all their messages, that the
// restarted seed learns peers again and that the restarted peers rejoin
// and receive messages.
func TestRestartWhilePublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 16 processes for ~25s")
	}
	const messages = 60
	args := []string{"-gossip-interval", "300ms", "-liveness-interval", "500ms", "-messages", fmt.Sprint(messages)}
	c := newCluster(t, 3)
	peers := c.addPeers(10, args...)
	c.waitJoined(peers)

	// Restarted processes write into another directory, so that the new
	// output file does not replace the old one.
	again := filepath.Join(c.dir, "restarted")
	seed, p1, p2 := c.seeds[0], peers[0], peers[1]
	stayed := without(peers, p1, p2)

	// progress waits until every peer that stays up has originated two more
	// messages (or all of them), so that each process is down for a while
	// during which the network works, without a fixed sleep.
	progress := func(what string) {
		t.Helper()
		base := map[string]int{}
		for _, n := range stayed {
			base[n.addr] = len(readPeer(n.file()).originated)
		}
		waitFor(t, "publishing to go on "+what, func() (bool, string, error) {
			var b strings.Builder
			for _, n := range stayed {
				got := len(readPeer(n.file()).originated)
				if want := min(base[n.addr]+2, messages); got < want {
					fmt.Fprintf(&b, "%s originated %d, want %d\n", n.addr, got, want)
				}
			}
			return b.Len() == 0, b.String(), aliveErr(stayed)
		})
	}
	joined := func(n *node) {
		t.Helper()
		waitFor(t, "restarted peer "+n.addr+" to join", func() (bool, string, error) {
			if readPeer(n.file()).joined {
				return true, "", nil
			}
			return false, n.file() + " has no \"joined:\" line", aliveErr([]*node{n})
		})
	}

	seed.proc.killNow(t)
	t.Logf("killed seed %s", seed.addr)
	progress("with the seed down")
	if err := c.startSeed(seed, again); err != nil {
		t.Fatal(err)
	}
	seedRestarted := time.Now()
	t.Logf("restarted seed %s", seed.addr)

	for _, n := range []*node{p1, p2} {
		n.proc.killNow(t)
		t.Logf("killed peer %s", n.addr)
		progress("with peer " + n.addr + " down")
		if err := c.startPeer(n, again, args); err != nil {
			t.Fatal(err)
		}
		t.Logf("restarted peer %s", n.addr)
		joined(n)
	}

	waitFor(t, "all messages of the peers that stayed up delivered, and the restarted peers receiving", func() (bool, string, error) {
		allSent, missing := missingMessages(stayed, messages)
		for _, n := range []*node{p1, p2} {
			if len(readPeer(n.file()).received) == 0 {
				missing += fmt.Sprintf("restarted peer %s has received no message since its restart\n", n.addr)
			}
		}
		return allSent && missing == "", missing, aliveErr(slices.Concat(c.peers, c.seeds))
	})

	// The restarted seed must learn peers again, within a bound well below
	// the peers' 60s registration refresh (gossip.DefaultRefreshInterval,
	// which the peer program does not let the test shorten).
	const relearn = 20 * time.Second
	deadline := seedRestarted.Add(relearn)
	for len(readSeed(seed.file()).registered) == 0 && time.Now().Before(deadline) {
		time.Sleep(pollInterval)
	}
	if reg := readSeed(seed.file()).registered; len(reg) == 0 {
		var b strings.Builder
		for _, n := range []*node{p1, p2} {
			fmt.Fprintf(&b, "\n  restarted peer %s registered with %v", n.addr, readPeer(n.file()).seeds)
		}
		t.Errorf("restarted seed %s registered no peer within %v of its restart (%s)."+
			" Neither restarted peer chose it, and no other peer re-registered: a peer re-registers with a seed"+
			" that forgot it only when the seed refuses a peer-list request, or at its 60s refresh.%s",
			seed.addr, relearn, seed.file(), b.String())
	} else {
		// Informative: how many of its former peers came back.
		former := readSeed(outFile(c.out, "seed", seed.addr)).registered
		back := 0
		for _, a := range former {
			if slices.Contains(reg, a) {
				back++
			}
		}
		t.Logf("restarted seed registered %v; %d of its %d former peers are back", reg, back, len(former))
	}
	checkNoCrash(t, c.all...)
}
