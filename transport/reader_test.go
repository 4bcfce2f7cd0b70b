package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
)

// chunkReader returns data in reads of the sizes given in turn (cycling),
// like a socket delivering segments.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = max(1, c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// sameError reports whether frameReader's error matches readFrame's.
func sameError(got, want error) bool {
	if want == nil || got == nil {
		return want == got
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, ErrFrameTooLarge} {
		if errors.Is(want, e) {
			return errors.Is(got, e)
		}
	}
	return got != nil
}

// FuzzFrameReader checks that frameReader, whatever the reads it gets from
// the connection, returns the frames and the error the reference parser
// readFrame returns, and holds no buffer after a frame that ends what was
// read.
func FuzzFrameReader(f *testing.F) {
	const limit = 64
	stream := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = appendFrame(b, fr)
		}
		return b
	}
	f.Add(stream([]byte("a"), []byte("payload"), nil), []byte{1})
	f.Add(stream([]byte("a"), []byte("payload"), nil), []byte{3, 100, 2})
	f.Add(append(stream(bytes.Repeat([]byte("x"), limit)), 0, 0, 0, limit+1), []byte{5})
	f.Add(append(stream([]byte("ok")), 0, 0, 0, 10, 'a'), []byte{})
	f.Add([]byte{0, 0}, []byte{1})
	f.Add([]byte{}, []byte{})
	f.Add(stream(bytes.Repeat([]byte("y"), 40), []byte("z")), []byte{7, 1, 30})
	// Frames over 8 bytes take the path of frames over maxUpfront, whose
	// buffer grows as the bytes come.
	old := maxUpfront
	maxUpfront = 8
	f.Cleanup(func() { maxUpfront = old })
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		chunks := make([]int, len(sizes))
		for i, s := range sizes {
			chunks[i] = int(s)
		}
		for _, ahead := range []bool{false, true} {
			fr := &frameReader{src: &chunkReader{data: data, sizes: chunks}}
			if ahead {
				fr.ahead = chunkAhead(fr)
			}
			ref := bytes.NewReader(data)
			hdr := new([headerLen]byte)
			for {
				want, wantErr := readFrame(ref, hdr, limit)
				got, err := fr.next(limit)
				if !sameError(err, wantErr) {
					t.Fatalf("ahead %v: next() error %v, readFrame error %v", ahead, err, wantErr)
				}
				if wantErr != nil {
					break
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("ahead %v: next() = %q, readFrame = %q", ahead, got, want)
				}
				if fr.buf != nil && fr.r == fr.w {
					t.Fatalf("ahead %v: frameReader holds a drained buffer", ahead)
				}
			}
		}
	})
}

// TestFrameReaderLargeFrameGrows checks that a frame announced large is
// not allocated whole before its bytes come: a peer that announces 1 MiB
// and sends 10 bytes makes the reader allocate maxUpfront, not 1 MiB. A
// frame that does come whole, in reads of odd sizes, is read intact.
func TestFrameReaderLargeFrameGrows(t *testing.T) {
	const announced, rounds = 1 << 20, 20
	stub := binary.BigEndian.AppendUint32(nil, announced)
	stub = append(stub, "0123456789"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		fr := &frameReader{src: &chunkReader{data: stub}}
		if _, err := fr.next(announced); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("next() error %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	// Without the growth each round allocates the announced 1 MiB.
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > announced/4 {
		t.Errorf("a truncated 1 MiB frame allocated %d bytes a round, want about %d", per, maxUpfront)
	}

	for _, n := range []int{int(maxUpfront) + 1, 3*int(maxUpfront) + 7, announced} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i * 7)
		}
		fr := &frameReader{src: &chunkReader{data: appendFrame(nil, want), sizes: []int{headerLen, 1000, readBufSize + 3, 1}}}
		got, err := fr.next(announced)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame of %d bytes: next() = %d bytes, %v; want it intact", n, len(got), err)
		}
	}
}

// chunkAhead is a frameReader.ahead over fr's chunkReader: it borrows a
// buffer and reads one chunk into it, as rawReader does from a socket
// once it has data.
func chunkAhead(fr *frameReader) func(bool) (int, error) {
	return func(bool) (int, error) {
		fr.buf = readBufs.Get().(*[]byte)
		return fr.src.Read(*fr.buf)
	}
}

// TestFrameReaderBuffers checks when frameReader holds a buffer: never
// while waiting for a header with nothing buffered, and only while read
// ahead data is buffered.
func TestFrameReaderBuffers(t *testing.T) {
	var b []byte
	for _, p := range []string{"one", "two", "three"} {
		b = appendFrame(b, []byte(p))
	}
	fr := &frameReader{src: &chunkReader{data: b}} // one read returns everything
	for i, want := range []string{"one", "two", "three"} {
		p, err := fr.next(100)
		if err != nil || string(p) != want {
			t.Fatalf("frame %d = %q, %v; want %q", i, p, err, want)
		}
		if held := fr.buf != nil; held != (i < 2) {
			t.Fatalf("after frame %d: holding a buffer = %v, want %v", i, held, i < 2)
		}
	}
	if _, err := fr.next(100); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}

	// Reading ahead, a header waited for with nothing buffered is read
	// with its payload, into a buffer borrowed for that read.
	fr = &frameReader{src: &chunkReader{data: b, sizes: []int{2, 100}}}
	reads := 0
	fr.ahead = func(wait bool) (int, error) {
		reads++
		if fr.buf != nil {
			t.Error("ahead called holding a buffer")
		}
		return chunkAhead(fr)(wait)
	}
	for i, want := range []string{"one", "two", "three"} {
		p, err := fr.next(100)
		if err != nil || string(p) != want {
			t.Fatalf("ahead: frame %d = %q, %v; want %q", i, p, err, want)
		}
	}
	if _, err := fr.next(100); err != io.EOF || fr.buf != nil {
		t.Fatalf("ahead, at the end: %v, holding a buffer %v; want io.EOF and none", err, fr.buf != nil)
	}
	if reads != 3 { // 2 bytes, the rest, then the end of the stream
		t.Errorf("ahead: %d reads, want 3", reads)
	}

	// A payload of at least a buffer is read straight into the frame.
	big := bytes.Repeat([]byte{7}, readBufSize+1)
	fr = &frameReader{src: &chunkReader{data: appendFrame(nil, big), sizes: []int{headerLen, readBufSize + 1}}}
	if p, err := fr.next(len(big)); err != nil || !bytes.Equal(p, big) {
		t.Fatalf("big frame: %d bytes, %v", len(p), err)
	}
	if fr.buf != nil {
		t.Fatal("a direct read left a buffer held")
	}
}

// TestFrameReaderQuiet drives the park decision with made-up times: a
// connection is quiet after a window with fewer than quietWaits waits per
// park delay, stays quiet through a liveness exchange, and is busy again
// after busyWaits quick waits, or after a busy window.
func TestFrameReaderQuiet(t *testing.T) {
	fr := &frameReader{parkAfter: time.Second}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	step := func(at time.Duration, want bool) {
		t.Helper()
		if got := fr.mayWait(at); got != want {
			t.Fatalf("at %v: may wait = %v, want %v", at, got, want)
		}
	}
	// Formation: a few frames in the first window, then silence.
	step(ms(100), true)
	step(ms(200), true)
	step(ms(300), true)
	// 13 s later, a ping: 3 waits over 13 s is quiet.
	step(ms(13_000), false)
	step(ms(13_050), false) // its pong: still quiet
	step(ms(26_000), false) // the next round
	// Turning busy: the waits are quick; busy after busyWaits of them.
	at := ms(26_100)
	for i := range busyWaits {
		step(at, i == busyWaits-1)
		at += ms(2)
	}
	for range 200 { // a busy second
		step(at, true)
		at += ms(5)
	}
	step(at+ms(10), true) // the window is judged busy
	step(at+ms(20_000), false)
}
