package gossip

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestDispatcherOnDemand: events pushed in bursts, some while the handler
// is still busy with earlier ones, reach it in order and one at a time;
// between bursts no goroutine is left running.
func TestDispatcherOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			got    []uint64
			inside atomic.Int32
		)
		d := newDispatcher(func(ev Event) {
			if inside.Add(1) != 1 {
				t.Error("handler called concurrently")
			}
			if ev.Seq%7 == 0 {
				time.Sleep(time.Millisecond) // busy while the next burst is pushed
			}
			got = append(got, ev.Seq)
			inside.Add(-1)
		})
		next := uint64(0)
		burst := func(n uint64) {
			evs := make([]Event, n)
			for i := range evs {
				evs[i].Seq = next
				next++
			}
			d.push(evs)
		}
		for round := range 20 {
			burst(1 + uint64(round)*5) // up to 96 events: several blocks
			if round%3 == 0 {
				// Let the goroutine drain and exit before the next burst.
				synctest.Wait()
				time.Sleep(time.Second)
				d.mu.Lock()
				running, queued := d.running, len(d.queue)
				d.mu.Unlock()
				if running || queued != 0 {
					t.Fatalf("round %d: idle dispatcher still running (%v) or holding %d blocks", round, running, queued)
				}
			}
		}
		d.wait()
		if uint64(len(got)) != next {
			t.Fatalf("delivered %d of %d events", len(got), next)
		}
		for i, seq := range got {
			if seq != uint64(i) {
				t.Fatalf("event %d delivered as %d-th", seq, i)
			}
		}
	})
}
