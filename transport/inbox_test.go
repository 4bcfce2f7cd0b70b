package transport

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestInboxBoundsUnderLoad drives an inbox directly: several sources put
// frames of random sizes, some larger than the byte bound, while a
// consumer takes them slowly enough that the queue fills by frames and by
// bytes in turn. With an unbounded wait nothing may be lost: every frame
// arrives, each source's in order, and whenever the consumer looks, the
// queue is within both bounds (a lone frame may pass the byte bound). It
// runs in a synctest bubble: the consumer lets the sources run until they
// all block before it takes more, and a hang fails at the guard's virtual
// deadline.
func TestInboxBoundsUnderLoad(t *testing.T) {
	synctest.Test(t, testInboxBoundsUnderLoad)
}

func testInboxBoundsUnderLoad(t *testing.T) {
	const (
		sources   = 4
		perSource = 300
		size      = inboxChanSize + 8 // 8 frames in the queue
		maxBytes  = 1000
	)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: no source outlives the test
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dropped, waits atomic.Uint64
	in := newInbox(ctx, size, maxBytes, time.Hour)
	in.start, in.dropped, in.waits = wg.Go, &dropped, &waits

	for s := range sources {
		wg.Go(func() {
			src := &inboxSource{}
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			for i := range perSource {
				n := 1 + rng.IntN(400)
				if rng.IntN(50) == 0 {
					n = 2 * maxBytes // larger than the bound
				}
				p := Packet{From: fmt.Sprint(s), Payload: make([]byte, n)}
				p.Payload[0] = byte(i) // the sequence, mod 256
				if !in.put(p, src) {
					if ctx.Err() == nil { // not the test ending early
						t.Errorf("source %d: frame %d not admitted", s, i)
					}
					return
				}
			}
		})
	}

	next := make(map[string]int, sources)
	for got := 0; got < sources*perSource; got++ {
		var p Packet
		select {
		case p = <-in.ch:
		case <-time.After(10 * time.Second): // only catches a hang
			t.Fatalf("%d of %d frames arrived; stuck", got, sources*perSource)
		}
		if want := byte(next[p.From]); p.Payload[0] != want {
			t.Fatalf("source %s: frame %d arrived, want %d", p.From, p.Payload[0], want)
		}
		next[p.From]++
		in.mu.Lock()
		pending, bytes := in.pending, in.bytes
		in.mu.Unlock()
		if pending > in.limit {
			t.Fatalf("queue holds %d frames, limit %d", pending, in.limit)
		}
		if pending > 1 && bytes > maxBytes {
			t.Fatalf("queue holds %d frames of %d bytes, limit %d bytes", pending, bytes, maxBytes)
		}
		if got%7 == 0 {
			synctest.Wait() // the sources fill the queue and wait for room
		}
	}
	wg.Wait()
	if d := dropped.Load(); d != 0 {
		t.Errorf("%d frames dropped", d)
	}
	if waits.Load() == 0 {
		t.Error("no put waited: the test did not fill the queue")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending != 0 || in.bytes != 0 {
		t.Errorf("after draining: %d frames, %d bytes pending; want none", in.pending, in.bytes)
	}
}
