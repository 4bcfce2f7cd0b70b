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
			if ev.Addr == victim && !ev.Time.Before(n.killAt) {
				fmt.Fprintf(w, "  reported dead by %s after %.2fs: %s\n", ev.Node, ev.Time.Sub(n.killAt).Seconds(),
					gossip.DeadNodeLine(ev.Addr, ev.Stamp, ev.Node))
			}
		}
		for _, sd := range n.seedSet {
			t, removed := removedDead(s.removals, sd, victim, n.killAt)
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
		if ev.Addr != victim || ev.Time.Before(n.killAt) {
			wrong = append(wrong, fmt.Sprintf("%s by %s (%s)", ev.Addr, ev.Node, ev.Reason))
		}
	}
	if len(wrong) == 0 {
		n.add(true, "no live peer was removed by a seed")
	} else {
		n.add(false, "live peers removed: %s", strings.Join(wrong, ", "))
	}
	// A neighbour may suspect a live peer when it answers late (a busy
	// machine); the protocol's answer is the seeds' probes. So the check
	// is that every such report was refuted, and the count is shown.
	sentFalse := falseReports(s.reports, victim, n.killAt)
	open := unrefuted(s.received, s.refuted, s.removals, s.registered, victim, n.killAt)
	switch {
	case len(sentFalse) == 0 && len(open) == 0 && len(s.reports) == 0:
		n.add(true, "no dead-node report about a live peer (none sent)")
	case len(sentFalse) == 0 && len(open) == 0:
		n.add(true, "no dead-node report about a live peer (%d sent, all about %s after it was killed)", len(s.reports), victim)
	case len(open) == 0:
		n.add(true, "every dead-node report about a live peer was refuted by the seeds' probes (%d such reports: %s)",
			len(sentFalse), reportLines(sentFalse, true))
	default:
		n.add(false, "%d dead-node report(s) about live peers that no seed's probe refuted: %s",
			len(open), reportLines(open, false))
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
		if ev.Addr == victim && !ev.Time.Before(n.killAt) {
			reporters = append(reporters, ev.Node)
		}
	}
	n.add(len(reporters) > 0, "%s reported dead by %d neighbour(s) %v", victim, len(reporters), reporters)
	regs := s.registered[victim]
	var missing []string
	for _, sd := range regs {
		if _, ok := removedDead(s.removals, sd, victim, n.killAt); !ok {
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

// falseReports returns the dead-node reports (EventDeadReportSent by the
// peers) that name a live peer: any peer but the victim, or the victim
// before it was killed at killAt. victim is "" when no peer was killed.
func falseReports(reports []gossip.Event, victim string, killAt time.Time) []gossip.Event {
	var wrong []gossip.Event
	for _, ev := range reports {
		if aboutLive(ev, victim, killAt) {
			wrong = append(wrong, ev)
		}
	}
	return wrong
}

func aboutLive(ev gossip.Event, victim string, killAt time.Time) bool {
	return victim == "" || ev.Addr != victim || ev.Time.Before(killAt)
}

// unrefuted returns the dead-node reports about live peers (by
// falseReports' rule) that a seed received (EventDeadReportReceived) while
// it had the peer registered, so that it probed it, and that no seed has
// refuted since (EventDeadReportRefuted about the peer, at or after the
// report). A report about the victim from before the kill also counts as
// settled once a seed removed the victim as dead: the probes may have
// straddled the kill. registered maps a peer to the seeds that accepted
// it.
func unrefuted(received, refuted, removals []gossip.Event, registered map[string][]string, victim string, killAt time.Time) []gossip.Event {
	var open []gossip.Event
	for _, ev := range received {
		if !aboutLive(ev, victim, killAt) || !slices.Contains(registered[ev.Addr], ev.Node) {
			continue
		}
		settled := slices.ContainsFunc(refuted, func(r gossip.Event) bool {
			return r.Addr == ev.Addr && !r.Time.Before(ev.Time)
		})
		if !settled && ev.Addr == victim {
			settled = slices.ContainsFunc(removals, func(r gossip.Event) bool { return r.Addr == victim && r.Reason == "dead" })
		}
		if !settled {
			open = append(open, ev)
		}
	}
	return open
}

// reportLines renders dead-node reports as the spec's lines; sent tells
// whether they are a peer's (reporter Node) or a seed's (reporter From).
func reportLines(evs []gossip.Event, sent bool) string {
	var lines []string
	for _, ev := range evs {
		reporter, where := ev.From, " received by "+ev.Node
		if sent {
			reporter, where = ev.Node, ""
		}
		lines = append(lines, gossip.DeadNodeLine(ev.Addr, ev.Stamp, reporter)+where)
	}
	return strings.Join(lines, ", ")
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
