// Package transporttest is a conformance suite for implementations of
// [transport.Transport], in the spirit of testing/fstest.TestFS.
//
// Every implementation runs the same checks: delivery tagged with the
// sender's address, ordering per sender, frame ownership, zero-length frames,
// the size limit, concurrent senders, and Close semantics. The suite waits
// on Packets with a generous timeout that only guards against a hang; it
// never sleeps and does not assume testing/synctest.
package transporttest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// Options tunes the suite to an implementation.
type Options struct {
	// MaxFrame is the transport's frame size limit. When positive, the
	// suite checks that a frame of MaxFrame bytes arrives and that one byte
	// more is rejected with transport.ErrFrameTooLarge. Zero skips that
	// check, for transports without a limit.
	MaxFrame int
	// Unordered disables the checks that frames from one sender arrive in
	// the order they were sent.
	Unordered bool
}

// waitTimeout guards every wait for a frame. It is a failure guard only: a
// conforming transport delivers in milliseconds.
const waitTimeout = 10 * time.Second

// Run runs the conformance suite with default Options. See RunWithOptions.
func Run(t *testing.T, newPair func(t *testing.T) (a, b transport.Transport)) {
	t.Helper()
	RunWithOptions(t, newPair, Options{})
}

// RunWithOptions runs the conformance suite as subtests of t. newPair must
// return two fresh, connected transports on a network without faults, and
// should register a cleanup that closes both (Close is idempotent, and the
// suite closes them itself in some subtests). Each subtest calls newPair
// once.
func RunWithOptions(t *testing.T, newPair func(t *testing.T) (a, b transport.Transport), opts Options) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b transport.Transport, opts Options)
	}{
		{"Delivery", testDelivery},
		{"BothWays", testBothWays},
		{"ManyFramesInOrder", testManyFrames},
		{"FrameOwnership", testOwnership},
		{"ZeroLength", testZeroLength},
		{"FrameTooLarge", testFrameTooLarge},
		{"ConcurrentSenders", testConcurrentSenders},
		{"SendAfterClose", testSendAfterClose},
		{"CloseTwice", testCloseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t)
			if a == nil || b == nil {
				t.Fatal("newPair returned a nil transport")
			}
			tc.fn(t, a, b, opts)
		})
	}
}

// recv waits for n frames on tr, failing the test after waitTimeout.
func recv(t *testing.T, tr transport.Transport, n int) []transport.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got := make([]transport.Packet, 0, n)
	for len(got) < n {
		select {
		case p := <-tr.Packets():
			got = append(got, p)
		case <-ctx.Done():
			t.Fatalf("received %d of %d frames at %s before the %v guard expired", len(got), n, tr.Addr(), waitTimeout)
		}
	}
	return got
}

func send(t *testing.T, tr transport.Transport, to string, frame []byte) {
	t.Helper()
	if err := tr.Send(context.Background(), to, frame); err != nil {
		t.Fatalf("Send(%s, %d bytes) from %s: %v", to, len(frame), tr.Addr(), err)
	}
}

func testDelivery(t *testing.T, a, b transport.Transport, _ Options) {
	want := []byte("hello, b")
	send(t, a, b.Addr(), want)
	p := recv(t, b, 1)[0]
	if p.From != a.Addr() {
		t.Errorf("From = %q, want %q", p.From, a.Addr())
	}
	if !bytes.Equal(p.Payload, want) {
		t.Errorf("Payload = %q, want %q", p.Payload, want)
	}
}

func testBothWays(t *testing.T, a, b transport.Transport, _ Options) {
	send(t, a, b.Addr(), []byte("ping"))
	send(t, b, a.Addr(), []byte("pong"))
	if p := recv(t, b, 1)[0]; p.From != a.Addr() || string(p.Payload) != "ping" {
		t.Errorf("b got %q from %q, want \"ping\" from %q", p.Payload, p.From, a.Addr())
	}
	if p := recv(t, a, 1)[0]; p.From != b.Addr() || string(p.Payload) != "pong" {
		t.Errorf("a got %q from %q, want \"pong\" from %q", p.Payload, p.From, b.Addr())
	}
}

// seqFrame encodes a sender id and sequence number, padded to size bytes.
func seqFrame(id, seq uint32, size int) []byte {
	f := make([]byte, max(size, 8))
	binary.BigEndian.PutUint32(f, id)
	binary.BigEndian.PutUint32(f[4:], seq)
	for i := 8; i < len(f); i++ {
		f[i] = byte(seq + uint32(i))
	}
	return f
}

// checkSeqs verifies that packets carry each (id, seq) for id < senders and
// seq < perSender exactly once, in order per id unless unordered.
func checkSeqs(t *testing.T, got []transport.Packet, from string, senders, perSender int, size int, unordered bool) {
	t.Helper()
	next := make([]uint32, senders)
	seen := make(map[[2]uint32]bool)
	for _, p := range got {
		if p.From != from {
			t.Fatalf("From = %q, want %q", p.From, from)
		}
		if len(p.Payload) < 8 {
			t.Fatalf("short frame of %d bytes", len(p.Payload))
		}
		id, seq := binary.BigEndian.Uint32(p.Payload), binary.BigEndian.Uint32(p.Payload[4:])
		if int(id) >= senders || int(seq) >= perSender {
			t.Fatalf("unexpected frame id=%d seq=%d", id, seq)
		}
		if !bytes.Equal(p.Payload, seqFrame(id, seq, size)) {
			t.Fatalf("frame id=%d seq=%d corrupted", id, seq)
		}
		k := [2]uint32{id, seq}
		if seen[k] {
			t.Fatalf("frame id=%d seq=%d delivered twice", id, seq)
		}
		seen[k] = true
		if !unordered && seq != next[id] {
			t.Fatalf("sender %d: got seq %d, want %d (out of order)", id, seq, next[id])
		}
		next[id] = seq + 1
	}
}

func testManyFrames(t *testing.T, a, b transport.Transport, opts Options) {
	const n, size = 500, 64
	for i := range n {
		send(t, a, b.Addr(), seqFrame(0, uint32(i), size))
	}
	checkSeqs(t, recv(t, b, n), a.Addr(), 1, n, size, opts.Unordered)
}

func testOwnership(t *testing.T, a, b transport.Transport, _ Options) {
	buf := []byte("original")
	send(t, a, b.Addr(), buf)
	copy(buf, "MUTATED!")
	p := recv(t, b, 1)[0]
	if string(p.Payload) != "original" {
		t.Fatalf("Payload = %q after the sender reused its buffer, want %q", p.Payload, "original")
	}
	// The receiver owns the payload: writing to it must be safe (the race
	// detector flags sharing).
	for i := range p.Payload {
		p.Payload[i] = 0
	}
}

func testZeroLength(t *testing.T, a, b transport.Transport, _ Options) {
	send(t, a, b.Addr(), []byte{})
	send(t, a, b.Addr(), nil)
	send(t, a, b.Addr(), []byte("after"))
	got := recv(t, b, 3)
	for i, p := range got[:2] {
		if len(p.Payload) != 0 || p.From != a.Addr() {
			t.Errorf("frame %d: %d bytes from %q, want 0 bytes from %q", i, len(p.Payload), p.From, a.Addr())
		}
	}
	if string(got[2].Payload) != "after" {
		t.Errorf("third frame = %q, want %q", got[2].Payload, "after")
	}
}

func testFrameTooLarge(t *testing.T, a, b transport.Transport, opts Options) {
	if opts.MaxFrame <= 0 {
		t.Skip("transport has no frame size limit (Options.MaxFrame is 0)")
	}
	err := a.Send(context.Background(), b.Addr(), make([]byte, opts.MaxFrame+1))
	if !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Fatalf("Send(%d bytes) = %v, want ErrFrameTooLarge", opts.MaxFrame+1, err)
	}
	big := bytes.Repeat([]byte{0xab}, opts.MaxFrame)
	send(t, a, b.Addr(), big)
	if p := recv(t, b, 1)[0]; !bytes.Equal(p.Payload, big) {
		t.Fatalf("frame at the limit: got %d bytes, want %d", len(p.Payload), len(big))
	}
}

func testConcurrentSenders(t *testing.T, a, b transport.Transport, opts Options) {
	const senders, perSender, size = 4, 200, 32
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for id := range senders {
		wg.Go(func() {
			for seq := range perSender {
				if err := a.Send(context.Background(), b.Addr(), seqFrame(uint32(id), uint32(seq), size)); err != nil {
					errs <- fmt.Errorf("sender %d: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkSeqs(t, recv(t, b, senders*perSender), a.Addr(), senders, perSender, size, opts.Unordered)
}

func testSendAfterClose(t *testing.T, a, b transport.Transport, _ Options) {
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Send(context.Background(), b.Addr(), []byte("late")); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func testCloseTwice(t *testing.T, a, b transport.Transport, _ Options) {
	for i := range 2 {
		if err := a.Close(); err != nil {
			t.Fatalf("a.Close #%d = %v, want nil", i+1, err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("b.Close #%d = %v, want nil", i+1, err)
		}
	}
}
