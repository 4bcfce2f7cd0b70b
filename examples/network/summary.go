package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gossip-dev/gossip"
)

// summary prints the final tables and records the checks.
func (n *network) summary() {
	n.mu.Lock()
	s := n.final
	n.mu.Unlock()
	if s == nil {
		return // failed before the story started
	}
	w := n.stdout
	victim := ""
	if n.victim != nil {
		victim = n.victim.tr.Addr()
	}
	perPeer := (n.cfg.peers - 1) * n.cfg.messages

	fmt.Fprintf(w, "\nSummary after %.2fs\n\n", s.at.Sub(n.t0).Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peer\tsent\tdelivered\tduplicates dropped\tforwarded\tneighbours\tdead reports\t\tseeds registered with\t")
	for _, pn := range n.peers {
		if pn.p == nil {
			continue
		}
		a := pn.tr.Addr()
		st := s.stats[a]
		nb := fmt.Sprint(len(s.neighbors[a]))
		note := ""
		if a == victim {
			nb, note = "-", "killed"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%d\t%d\t%s\t%d\t%s\t%s\t\n",
			a, s.originated[a], s.delivered[a], perPeer, st.Duplicates, st.Forwarded, nb, st.DeadReports, note,
			strings.Join(s.registered[a], " "))
	}
	tw.Flush()

	if victim != "" {
		fmt.Fprintf(w, "\nDead peer %s, killed at +%.2fs:\n", victim, n.killAt.Sub(n.t0).Seconds())
		for _, ev := range s.reports {
			if ev.Addr == victim {
				fmt.Fprintf(w, "  reported dead by %s after %.2fs: %s\n", ev.Node, ev.Time.Sub(n.killAt).Seconds(),
					gossip.DeadNodeLine(ev.Addr, ev.Stamp, ev.Node))
			}
		}
		for _, sd := range n.seedSet {
			t, removed := n.removedBy(s, sd, victim)
			switch {
			case removed:
				fmt.Fprintf(w, "  removed by seed %s after %.2fs\n", sd, t.Sub(n.killAt).Seconds())
			case slices.Contains(s.registered[victim], sd):
				fmt.Fprintf(w, "  NOT removed by seed %s\n", sd)
			default:
				fmt.Fprintf(w, "  seed %s: never had it registered\n", sd)
			}
		}
	}

	fmt.Fprintf(w, "\nFinal peer lists of the seeds (before shutdown):\n")
	for _, sd := range n.seedSet {
		list := s.seedPeers[sd]
		fmt.Fprintf(w, "  %s: %d peers %v\n", sd, len(list), list)
	}

	n.evaluate(s, victim)
	fmt.Fprintf(w, "\nChecks:\n")
	for _, c := range n.checks {
		mark := "PASS"
		if !c.ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s\n", mark, c.text)
	}
}

func (n *network) removedBy(s *snapshot, seed, addr string) (time.Time, bool) {
	for _, ev := range s.removals {
		if ev.Node == seed && ev.Addr == addr && ev.Reason == "dead" {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}

func (n *network) add(ok bool, format string, args ...any) {
	n.checks = append(n.checks, check{ok: ok, text: fmt.Sprintf(format, args...)})
}

// evaluate records the checks against the snapshot.
func (n *network) evaluate(s *snapshot, victim string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.checks = nil
	perPeer := (n.cfg.peers - 1) * n.cfg.messages

	var joined []string
	n.col.view(func() {
		for _, pn := range n.peers {
			if n.col.joined[pn.tr.Addr()] {
				joined = append(joined, pn.tr.Addr())
			}
		}
	})
	n.add(len(joined) == n.cfg.peers, "%d/%d peers joined a majority of the seeds", len(joined), n.cfg.peers)

	var short []string
	sent := 0
	for _, pn := range n.peers {
		a := pn.tr.Addr()
		sent += s.originated[a]
		if s.delivered[a] < perPeer {
			short = append(short, fmt.Sprintf("%s %d/%d", a, s.delivered[a], perPeer))
		}
	}
	n.add(sent == n.cfg.peers*n.cfg.messages, "%d/%d messages originated", sent, n.cfg.peers*n.cfg.messages)
	if len(short) == 0 {
		n.add(true, "every peer delivered all %d messages of the %d other peers", perPeer, n.cfg.peers-1)
	} else {
		n.add(false, "peers missing messages: %s", strings.Join(short, ", "))
	}
	n.add(s.ownEchoes == 0, "no peer delivered its own message (%d did)", s.ownEchoes)

	var wrong []string
	for _, ev := range s.removals {
		if ev.Addr != victim {
			wrong = append(wrong, fmt.Sprintf("%s by %s (%s)", ev.Addr, ev.Node, ev.Reason))
		}
	}
	if len(wrong) == 0 {
		n.add(true, "no live peer was removed by a seed")
	} else {
		n.add(false, "live peers removed: %s", strings.Join(wrong, ", "))
	}
	if wrong := falseReports(s.reports, victim, n.killAt); len(wrong) == 0 {
		about := ""
		if victim != "" {
			about = fmt.Sprintf(", all about %s after it was killed", victim)
		}
		n.add(true, "no dead-node report about a live peer (%d sent%s)", len(s.reports), about)
	} else {
		var lines []string
		for _, ev := range wrong {
			lines = append(lines, gossip.DeadNodeLine(ev.Addr, ev.Stamp, ev.Node))
		}
		n.add(false, "%d dead-node report(s) about live peers (%d refuted by the seeds' probes): %s",
			len(wrong), len(s.refuted), strings.Join(lines, ", "))
	}

	var absent []string
	for _, pn := range n.peers {
		a := pn.tr.Addr()
		if a == victim {
			continue
		}
		for _, sd := range s.registered[a] {
			if !slices.Contains(s.seedPeers[sd], a) {
				absent = append(absent, a+" at "+sd)
			}
		}
	}
	n.add(len(absent) == 0, "every surviving peer still listed by the seeds it registered with (missing %v)", absent)

	if victim == "" {
		return
	}
	var reporters []string
	for _, ev := range s.reports {
		if ev.Addr == victim {
			reporters = append(reporters, ev.Node)
		}
	}
	n.add(len(reporters) > 0, "%s reported dead by %d neighbour(s) %v", victim, len(reporters), reporters)
	regs := s.registered[victim]
	var missing []string
	for _, sd := range regs {
		if _, ok := n.removedBy(s, sd, victim); !ok {
			missing = append(missing, sd)
		}
	}
	n.add(len(regs) > 0 && len(missing) == 0, "%s removed by every seed it registered with %v (missing %v)", victim, regs, missing)
	var listed []string
	for sd, list := range s.seedPeers {
		if slices.Contains(list, victim) {
			listed = append(listed, sd)
		}
	}
	slices.Sort(listed)
	n.add(len(listed) == 0, "%s absent from every seed's final peer list (still in %v)", victim, listed)
}

// falseReports returns the dead-node reports (EventDeadReportSent) that
// name a live peer: any peer but the victim, or the victim before it was
// killed at killAt. victim is "" when no peer was killed.
func falseReports(reports []gossip.Event, victim string, killAt time.Time) []gossip.Event {
	var wrong []gossip.Event
	for _, ev := range reports {
		if victim == "" || ev.Addr != victim || ev.Time.Before(killAt) {
			wrong = append(wrong, ev)
		}
	}
	return wrong
}

func (n *network) failedChecks() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	failed := 0
	for _, c := range n.checks {
		if !c.ok {
			failed++
		}
	}
	return failed
}
