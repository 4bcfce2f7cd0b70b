package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// readBufSize sizes the read buffers that inbound connections borrow.
const readBufSize = 16 << 10

// readBufs holds the read buffers. A connection holds one only while data
// it has read is still buffered, never while it waits for a new frame: a
// buffer owned per connection pinned readBufSize bytes for its whole life,
// idle or not.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// frameReader reads length-prefixed frames from an inbound connection. It
// parses what readFrame parses, with the same errors, but buffers like a
// bufio.Reader whose buffer is borrowed from a pool only while data is
// buffered:
//
//   - With nothing buffered, the next frame's header is read straight
//     into hdr, or, with ahead (on sockets), into a buffer borrowed only
//     once the socket is readable, together with what follows it. That
//     is where an idle connection waits, holding no buffer.
//   - A payload not already buffered is read into a borrowed buffer,
//     which also reads ahead whatever else has arrived, or straight into
//     the payload when it is at least a buffer long.
//   - The buffer goes back to the pool as soon as it is drained.
//
// Compared with a bufio.Reader, a connection that goes quiet between
// frames pays, without ahead, one extra small read per burst: the header
// that ends the wait. next runs on the connection's long-lived goroutine, one per
// inbound connection; it is kept shallow so that goroutine's stack stays
// at the 2 KiB minimum (see TCP.receive).
type frameReader struct {
	src  io.Reader
	buf  *[]byte // borrowed from readBufs; nil while nothing is buffered
	r, w int     // (*buf)[r:w] is buffered
	hdr  [headerLen]byte
	// ready, if set, is called before each read from src, which may
	// wait: the connection is idle from then until the read returns. It
	// returns the time, as the transport counts it (since its epoch).
	ready func() time.Duration
	// ahead, if set, replaces the read of a header with nothing buffered:
	// it waits until the connection has data, only then borrows a buffer
	// into buf, and fills it with whatever has arrived, returning how many
	// bytes it read. One read then takes the header and the payload behind
	// it, where reading the header alone into hdr costs a second read for
	// the payload: a third of the read system calls of a connection that
	// gets one frame at a time. On error it may leave buf set, with
	// nothing read. With wait false it does not wait: with nothing to
	// read it returns errWouldBlock, having read nothing. See rawReader in
	// conn_unix.go.
	ahead func(wait bool) (int, error)

	// parkAfter, if positive (it needs ready and ahead), makes a quiet
	// connection give up its goroutine: one that waited for a new frame
	// fewer than quietWaits times per parkAfter, on average since the
	// window began, returns errWouldBlock from a wait for a new frame that
	// would block, nothing read, and the caller parks it (see TCP.park).
	// The window is at least parkAfter long; it is judged, and a new one
	// begins, at the first wait after it; a quiet connection that waits
	// busyWaits times within a window is busy at once. A busy connection
	// thus never parks, and pays nothing for it; one that turns busy parks
	// and resumes at most busyWaits times.
	parkAfter   time.Duration
	windowStart time.Duration // when the window began
	waits       int           // waits for a new frame in the window
	quiet       bool          // the last window was quiet
}

// busyWaits is the number of waits within a window after which a quiet
// connection is busy at once: a connection that turns busy parks and
// resumes at most that many times.
const busyWaits = 8

// quietWaits is the number of waits for a new frame per park delay below
// which a connection is quiet: a liveness exchange (a ping, later a pong)
// is two waits, a few seconds apart.
const quietWaits = 2

// errWouldBlock is what a frameReader with parkAfter returns from next
// when a quiet connection has no new frame yet. Nothing was read.
var errWouldBlock = errors.New("transport: no frame yet")

// maxUpfront is the most that next allocates for a frame before its
// bytes arrive; a larger frame's buffer grows as they do (see nextLarge).
// A variable only so that tests can lower it.
var maxUpfront uint32 = 64 << 10

// next reads one frame and returns its payload, which the caller owns.
// The length is checked against limit before anything is allocated. A
// clean end of stream before a header returns io.EOF; an end inside a
// frame returns io.ErrUnexpectedEOF.
func (fr *frameReader) next(limit int) ([]byte, error) {
	var n uint32
	if fr.w-fr.r >= headerLen {
		n = binary.BigEndian.Uint32((*fr.buf)[fr.r:])
		fr.r += headerLen
	} else {
		if err := fr.readHeader(); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint32(fr.hdr[:])
	}
	if limit < 0 || uint64(n) > uint64(limit) {
		return nil, errTooLarge(n, limit)
	}
	if n > maxUpfront {
		return fr.nextLarge(int(n))
	}
	p := make([]byte, n)
	k := fr.take(p)
	for k < len(p) {
		m, err := fr.fill(p[k:])
		k += m
		if err != nil && k < len(p) {
			return nil, errInFrame(err)
		}
	}
	return p, nil
}

// nextLarge reads the payload of a frame of n bytes, over maxUpfront,
// into a buffer that starts at maxUpfront and doubles, up to n, each time
// it fills. A peer that announces a large frame and then sends it slowly,
// or never, thus makes the reader hold at most about twice what it has
// sent, not the announced length: with the default 1 MiB limit and 1024
// connections, a gigabyte for a few bytes sent on each. It is out of
// next to keep next's frame small.
//
//go:noinline
func (fr *frameReader) nextLarge(n int) ([]byte, error) {
	p := make([]byte, maxUpfront)
	k := fr.take(p)
	for k < n {
		if k == len(p) {
			grow := min(n-k, k)
			p = slices.Grow(p, grow)[:k+grow]
			// What was read ahead past the full buffer comes first;
			// fill may run only once nothing is buffered.
			k += fr.take(p[k:])
			continue
		}
		m, err := fr.fill(p[k:])
		k += m
		if err != nil && k < n {
			return nil, errInFrame(err)
		}
	}
	return p, nil
}

// errInFrame is the error of a read that ended inside a frame: an end of
// stream there is unexpected.
func errInFrame(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errTooLarge is out of line to keep next's frame small.
//
//go:noinline
func errTooLarge(n uint32, limit int) error {
	return fmt.Errorf("transport: frame of %d bytes over limit of %d: %w", n, limit, ErrFrameTooLarge)
}

// readHeader reads a header into hdr: first what is buffered, then,
// holding no buffer, straight from src.
func (fr *frameReader) readHeader() error {
	k := 0
	if fr.buf != nil {
		k = copy(fr.hdr[:], (*fr.buf)[fr.r:fr.w])
		fr.release()
	}
	for k < headerLen {
		wait := true
		if fr.ready != nil {
			now := fr.ready()
			if k == 0 && fr.parkAfter > 0 {
				wait = fr.mayWait(now)
			}
		}
		var m int
		var err error
		if fr.ahead != nil {
			m, err = fr.headerAhead(k, wait)
		} else {
			m, err = fr.src.Read(fr.hdr[k:])
		}
		k += m
		if err != nil && k < headerLen {
			if k > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// mayWait is called as a wait for a new frame begins, at now, on a
// reader with parkAfter: it says whether the read may block, or must
// return errWouldBlock because the connection is quiet.
func (fr *frameReader) mayWait(now time.Duration) bool {
	if elapsed := now - fr.windowStart; elapsed >= fr.parkAfter {
		fr.quiet = time.Duration(fr.waits)*fr.parkAfter < quietWaits*elapsed
		fr.windowStart, fr.waits = now, 0
	} else if fr.quiet && fr.waits >= busyWaits {
		fr.quiet = false // turned busy: do not wait for the window's end
		fr.windowStart, fr.waits = now, 0
	}
	fr.waits++
	return !fr.quiet
}

// headerAhead reads through ahead into a borrowed buffer and copies what
// it can of the rest of the header, from hdr[k:], out of it; the rest of
// the buffer stays buffered. It returns how many header bytes it copied.
func (fr *frameReader) headerAhead(k int, wait bool) (int, error) {
	m, err := fr.ahead(wait)
	if m <= 0 {
		fr.release()
		return 0, err
	}
	fr.r, fr.w = 0, m
	return fr.take(fr.hdr[k:]), err
}

// take copies what is buffered into p and returns how many bytes it
// copied, releasing the buffer if that drains it.
func (fr *frameReader) take(p []byte) int {
	if fr.buf == nil {
		return 0
	}
	k := copy(p, (*fr.buf)[fr.r:fr.w])
	fr.r += k
	if fr.r == fr.w {
		fr.release()
	}
	return k
}

// fill reads more of a payload into p, which is not buffered: straight
// into p when it is at least a buffer long, otherwise into a borrowed
// buffer, reading ahead. It returns how many bytes of p it filled.
func (fr *frameReader) fill(p []byte) (int, error) {
	if fr.ready != nil {
		fr.ready()
	}
	if len(p) >= readBufSize {
		return fr.src.Read(p)
	}
	if fr.buf == nil {
		fr.buf = readBufs.Get().(*[]byte)
	}
	m, err := fr.src.Read(*fr.buf)
	fr.r, fr.w = 0, max(m, 0)
	return fr.take(p), err
}

// release returns the buffer to the pool, discarding anything buffered.
func (fr *frameReader) release() {
	if fr.buf != nil {
		readBufs.Put(fr.buf)
		fr.buf = nil
	}
	fr.r, fr.w = 0, 0
}
