package transport

import (
	"log/slog"
	"time"
)

// Idle connections are closed by one timer per transport, not one per
// connection: the sweep fires at the earliest time a connection may have
// become idle, closes those that are, and sets itself for the next such
// time. Every inbound connection and idle writer records when it last saw
// use; a new deadline is never earlier than one already pending (each is
// a use plus the idle timeout), so the timer is reset only when it is not
// set at all. The timer has no goroutine until it fires.

// minSweepGap bounds how often the sweep runs, as a fraction of the idle
// timeout: it runs at most idleTimeout/minSweepGap after a connection
// became idle.
const minSweepGap = 16

// now returns the time since t.epoch, on the monotonic clock.
func (t *TCP) now() time.Duration { return time.Since(t.epoch) }

// wantSweep makes sure the sweep runs by at. A caller records its use
// before calling it.
func (t *TCP) wantSweep(at time.Duration) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if t.sweepClosed || (t.sweepArmed && t.sweepAt <= at) {
		return
	}
	if t.sweepArmed {
		if !t.sweep.Stop() {
			// It has fired but not started: it will see every use
			// recorded so far, this caller's included.
			return
		}
		t.timers.Done()
	}
	t.sweepArmed, t.sweepAt = true, at
	t.timers.Add(1)
	d := max(at-t.now(), 0)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(d, t.sweepIdle)
	} else {
		t.sweep.Reset(d)
	}
}

// stopSweep stops the sweep for good; Close then waits on t.timers for a
// sweep already running.
func (t *TCP) stopSweep() {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	t.sweepClosed = true
	if t.sweepArmed && t.sweep.Stop() {
		t.sweepArmed = false
		t.timers.Done()
	}
}

// sweepIdle closes the inbound connections that have waited idleTimeout
// for a frame, which ends their readers (or, for a parked connection, the
// sweep cleans up itself), and retires the writers that
// have had nothing to send for idleTimeout, closing their connections. It
// also releases the inbox's queue buffer if the inbox is idle.
func (t *TCP) sweepIdle() {
	defer t.timers.Done()
	t.sweepMu.Lock()
	t.sweepArmed = false
	t.sweepMu.Unlock()

	idle := t.cfg.idleTimeout
	now := t.now()
	var next time.Duration // earliest deadline still pending; 0 if none
	later := func(at time.Duration) {
		if next == 0 || at < next {
			next = at
		}
	}
	var ins, parked []*inConn
	var outs []*writer
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for c, ic := range t.conns {
		if ic == nil || ic.from == "" {
			continue // outbound (see writers), or still in its handshake
		}
		if at := time.Duration(ic.last.Load()) + idle; at > now {
			later(at)
			continue
		}
		if ic.token != 0 {
			// Parked: no reader will see the close and clean up.
			delete(t.parked, ic.token)
			ic.token = 0
			parked = append(parked, ic)
		} else {
			ins = append(ins, ic)
		}
		delete(t.conns, c) // no second close by a later sweep
	}
	for addr, w := range t.writers {
		w.mu.Lock()
		switch at := w.idleSince + idle; {
		case w.running:
			// It asks for a sweep when it next finds its queue empty.
		case at > now:
			later(at)
		default:
			outs = append(outs, w)
			delete(t.writers, addr)
			if w.oc != nil {
				delete(t.conns, w.oc.conn)
			}
		}
		w.mu.Unlock()
	}
	t.mu.Unlock()
	t.inbox.trim()

	for _, ic := range ins {
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: closing idle inbound connection",
			slog.String("from", ic.from), slog.Duration("idle", idle))
		_ = ic.conn.Close() // its reader ends and finishes the cleanup
	}
	for _, ic := range parked {
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: closing idle inbound connection",
			slog.String("from", ic.from), slog.Duration("idle", idle))
		t.parkedEnded(ic)
	}
	for _, w := range outs {
		// Retired under t.mu: no Send reaches w any more, and it was not
		// running, so nothing else touches w.oc.
		if w.oc != nil {
			_ = w.oc.conn.Close()
			w.oc = nil
		}
		if h := t.cfg.hooks.writerDone; h != nil {
			h(w.addr)
		}
	}
	if next != 0 {
		t.wantSweep(max(next, now+idle/minSweepGap))
	}
}
