package transport

import (
	"bytes"
	"testing"
)

// TestBatchAdvance checks how a writer's batch moves past what a write
// took: whole frames only, across chunks, a frame cut short kept whole
// for the next write.
func TestBatchAdvance(t *testing.T) {
	f := func(n int) []byte { return bytes.Repeat([]byte{byte(n)}, n) }
	// Two chunks: frames of 10 and 20 bytes, then one of 5 (14, 24, 9 on the wire).
	c1 := appendFrame(appendFrame(nil, f(10)), f(20))
	c2 := appendFrame(nil, f(5))
	b := &batch{chunks: [][]byte{c1, c2}, frames: 3}
	if bufs, n := b.left(nil); n != 47 || len(bufs) != 2 {
		t.Fatalf("left: %d bytes in %d buffers, want 47 in 2", n, len(bufs))
	}
	// 20 bytes: the first frame and part of the second.
	if by, fr := b.advance(20); by != 14 || fr != 1 || b.frames != 2 {
		t.Fatalf("advance(20) = %d bytes, %d frames (%d left); want 14, 1 (2 left)", by, fr, b.frames)
	}
	bufs, n := b.left(nil)
	if n != 33 || !bytes.Equal(bufs[0], c1[14:]) || !bytes.Equal(bufs[1], c2) {
		t.Fatalf("after a partial write: %d bytes left, want 33 starting at the second frame", n)
	}
	// Nothing written: nothing moves.
	if by, fr := b.advance(0); by != 0 || fr != 0 {
		t.Fatalf("advance(0) = %d, %d", by, fr)
	}
	// The rest, in one write.
	if by, fr := b.advance(33); by != 33 || fr != 2 || b.frames != 0 {
		t.Fatalf("advance(33) = %d bytes, %d frames (%d left); want 33, 2 (0 left)", by, fr, b.frames)
	}
	if _, n := b.left(nil); n != 0 {
		t.Fatalf("%d bytes left after the whole batch", n)
	}
	// The chunks themselves are untouched, for freeChunks.
	if len(b.chunks) != 2 || len(b.chunks[0]) != 38 {
		t.Fatal("advance changed the chunk list")
	}
}

// TestEnqueuePacksChunks: frames share a pooled chunk until it is full,
// and a frame larger than a chunk gets one of its own.
func TestEnqueuePacksChunks(t *testing.T) {
	tr, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	w := &writer{t: tr, addr: "127.0.0.1:1", running: true} // running: enqueue starts no goroutine
	small := make([]byte, chunkSize/4)
	for range 4 {
		w.enqueue(small)
	}
	w.enqueue(make([]byte, 2*chunkSize))
	if w.queued != 5 || len(w.queue) != 3 {
		t.Fatalf("%d frames in %d chunks, want 5 in 3", w.queued, len(w.queue))
	}
	if len(w.queue[0]) != 3*(headerLen+chunkSize/4) || cap(w.queue[0]) != chunkSize || cap(w.queue[1]) != chunkSize {
		t.Fatalf("chunks of %d/%d and %d/%d bytes", len(w.queue[0]), cap(w.queue[0]), len(w.queue[1]), cap(w.queue[1]))
	}
	if len(w.queue[2]) != headerLen+2*chunkSize {
		t.Fatalf("large frame's chunk holds %d bytes", len(w.queue[2]))
	}
	freeChunks(w.queue)
}
