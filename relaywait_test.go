package gossip

import (
	"errors"
	"testing"
	"time"
)

// With a relay wait, a message is delivered at once and relayed only when
// the wait is over, to none of the neighbours that sent a copy meanwhile;
// with self-pruning, to none that one of them shares with this peer under
// the list it sent its copy with. A copy after the relay changes nothing.
func TestRelayWaitSkipsCopySenders(t *testing.T) {
	const wait = 10 * time.Millisecond
	s := joinedPeer(t, []string{"a", "b", "c", "d", "o"}, WithRelayWait(wait))
	drainEvents(&s.fx)
	s.receive("a", lazyMsg(1, 1), t0)
	wantSent(t, s, "first copy")
	if evs := drainEvents(&s.fx); len(evs) != 1 || evs[0].Kind != EventMessage || evs[0].From != "a" {
		t.Fatalf("events %v, want the delivery from a at once", kindsOf(evs))
	}
	if got := s.next(); !got.Equal(t0.Add(wait)) {
		t.Errorf("next deadline %v, want the relay at %v", got.Sub(t0), wait)
	}
	s.receive("b", lazyMsg(1, 1), t0.Add(wait/2))
	s.tick(t0.Add(wait - 1))
	wantSent(t, s, "before the wait is over")
	s.tick(t0.Add(wait))
	wantSent(t, s, "relay", "c gossip", "d gossip")
	s.receive("c", lazyMsg(1, 1), t0.Add(wait+1))
	s.tick(t0.Add(2 * wait))
	wantSent(t, s, "copy after the relay")
	if len(s.waiting) != 0 || len(s.waitQ) != 0 {
		t.Errorf("%d messages still waiting", len(s.waiting))
	}

	p := joinedPeer(t, []string{"a", "b", "c", "d", "o"}, WithRelayWait(wait), WithSelfPruning(true))
	p.receive("b", claims(1, "p:1", "c"), t0)
	p.receive("c", claims(1, "p:1", "b"), t0)
	p.receive("d", claims(1, "p:1"), t0)
	sent(&p.fx)
	p.receive("a", forwarded(1, 0), t0)
	p.receive("b", forwarded(1, 1), t0.Add(time.Millisecond))
	p.tick(t0.Add(wait))
	wantSent(t, p, "self-pruning", "d gossip")
	if got := p.ctr.pruned.Load(); got != 1 {
		t.Errorf("pruned %d copies, want 1 (c, shared with b)", got)
	}
	// b's copy names a list this peer does not hold: it prunes nothing
	// beyond b itself.
	p.receive("a", forwarded(2, 0), t0)
	p.receive("b", forwarded(2, 7), t0)
	p.tick(t0.Add(wait))
	wantSent(t, p, "unknown list", "c gossip", "d gossip")
}

// A peer relays at once without the option, with lazy push, when it
// originates, and once maxWaiting messages wait.
func TestRelayWaitBounds(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	s.receive("a", lazyMsg(1, 1), t0)
	wantSent(t, s, "no wait", "b gossip")

	w := joinedPeer(t, []string{"a", "b"}, WithRelayWait(time.Millisecond), WithOriginRate(maxWaiting))
	w.originate([]byte("x"), t0)
	wantSent(t, w, "originated", "a gossip", "b gossip")
	for i := range maxWaiting {
		w.receive("a", lazyMsg(uint64(i+1), 1), t0)
	}
	wantSent(t, w, "queued")
	w.receive("a", lazyMsg(maxWaiting+1, 1), t0)
	wantSent(t, w, "past the bound", "b gossip")
	w.tick(t0.Add(time.Millisecond))
	if got := len(sent(&w.fx)); got != maxWaiting {
		t.Errorf("released %d relays, want %d", got, maxWaiting)
	}

	for _, d := range []time.Duration{-1, time.Second + 1} {
		if err := WithRelayWait(d)(new(config)); !errors.Is(err, ErrBadOption) {
			t.Errorf("WithRelayWait(%v): %v, want ErrBadOption", d, err)
		}
	}
}

// Over the in-memory network, waiting before relaying delivers every
// message to every peer exactly once, with self-pruning and without, and
// sends fewer frames than relaying at once; at 5 % loss too, with
// anti-entropy's repairs.
func TestRelayWaitDelivers(t *testing.T) {
	const wait = 5 * time.Millisecond
	for _, tc := range []struct {
		name string
		loss float64
		opts []Option
	}{
		{"flooding", 0, nil},
		{"self-pruning", 0, []Option{WithSelfPruning(true)}},
		{"self-pruning at 5% loss", 0.05, []Option{WithSelfPruning(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wd, wf, wOnce, _ := floodRun(t, tc.loss, append([]Option{WithRelayWait(wait)}, tc.opts...)...)
			d, f, once, _ := floodRun(t, tc.loss, tc.opts...)
			t.Logf("with a %v wait: %d deliveries, %.2f frames each; without: %d, %.2f", wait, wd, float64(wf)/float64(wd), d, float64(f)/float64(d))
			if !wOnce || !once {
				t.Errorf("not every message delivered exactly once: with the wait %v, without %v", wOnce, once)
			}
			if tc.loss == 0 && wf >= f {
				t.Errorf("with the wait %d gossip frames, without %d: nothing saved", wf, f)
			}
		})
	}
}
