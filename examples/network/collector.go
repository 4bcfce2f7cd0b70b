package main

import (
	"context"
	"sync"
	"time"

	"github.com/gossip-dev/gossip"
)

// msgKey identifies a gossip message.
type msgKey struct {
	origin string
	seq    uint64
}

// collector receives the events of every node and keeps what the checks
// and the progress view need. It wakes waiters on every event, so the
// story waits on the protocol, never on the clock.
type collector struct {
	wake chan struct{} // capacity 1: "something may have changed"

	mu         sync.Mutex
	joined     map[string]bool
	registered map[string][]string // peer → seeds that accepted it
	originated map[string]int      // peer → messages it originated
	delivered  map[string]map[msgKey]bool
	deliveries int // first receipts of other peers' messages
	ownEchoes  int // receipts of a peer's own message (must stay 0)
	reports    []gossip.Event
	received   []gossip.Event
	refuted    []gossip.Event
	removals   []gossip.Event
}

func newCollector() *collector {
	return &collector{
		wake:       make(chan struct{}, 1),
		joined:     make(map[string]bool),
		registered: make(map[string][]string),
		originated: make(map[string]int),
		delivered:  make(map[string]map[msgKey]bool),
	}
}

// handle records ev. It is called by the event dispatchers of every node.
func (c *collector) handle(ev gossip.Event) {
	c.mu.Lock()
	switch ev.Kind {
	case gossip.EventJoined:
		c.joined[ev.Node] = true
	case gossip.EventRegistered:
		c.registered[ev.Node] = append(c.registered[ev.Node], ev.Addr)
	case gossip.EventOriginated:
		c.originated[ev.Node]++
	case gossip.EventMessage:
		if ev.Origin == ev.Node {
			c.ownEchoes++
			break
		}
		m := c.delivered[ev.Node]
		if m == nil {
			m = make(map[msgKey]bool)
			c.delivered[ev.Node] = m
		}
		k := msgKey{ev.Origin, ev.Seq}
		if !m[k] {
			m[k] = true
			c.deliveries++
		}
	case gossip.EventDeadReportSent:
		c.reports = append(c.reports, ev)
	case gossip.EventDeadReportReceived:
		c.received = append(c.received, ev)
	case gossip.EventDeadReportRefuted:
		c.refuted = append(c.refuted, ev)
	case gossip.EventPeerRemoved:
		c.removals = append(c.removals, ev)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// view runs fn with the collector locked.
func (c *collector) view(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn()
}

// await returns nil once cond, evaluated with the collector locked after
// each event, holds, or ctx's error. Only one goroutine may await at a
// time.
func (c *collector) await(ctx context.Context, cond func() bool) error {
	for {
		var ok bool
		c.view(func() { ok = cond() })
		if ok {
			return nil
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// removedBy returns when seed removed addr as dead at or after since, or
// false. The collector is locked.
func (c *collector) removedBy(seed, addr string, since time.Time) (time.Time, bool) {
	return removedDead(c.removals, seed, addr, since)
}

// removedDead returns when seed removed addr as dead at or after since,
// according to removals (EventPeerRemoved), or false.
func removedDead(removals []gossip.Event, seed, addr string, since time.Time) (time.Time, bool) {
	for _, ev := range removals {
		if ev.Node == seed && ev.Addr == addr && ev.Reason == "dead" && !ev.Time.Before(since) {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}
