//go:build unix

package transport

import (
	"io"
	"net"
	"os"
	"syscall"
)

// peerCloseDetected says that closeCheck works on this system.
const peerCloseDetected = true

// closeCheck tells whether the peer of an outbound connection has closed
// or reset it, or has written to it (it never should), without blocking:
// it tries a one-byte read of the non-blocking socket. An outbound
// connection has no reader goroutine, so the writer checks before each
// batch rather than losing the batch on a dead socket, unless the
// transport's poller watches the connection (see TCP.watch).
//
// A read, not a peek: the peer sends nothing on this connection, so there
// is nothing a read could take that the writer wants kept, and recvfrom's
// address buffer outgrew the writer goroutine's initial stack, whose
// growth cost a twentieth of the load generator's CPU. The check is made
// once per connection and reused: getting the RawConn and a closure per
// batch were two of a lone frame's seven allocations.
type closeCheck struct {
	rc   syscall.RawConn
	try  func(fd uintptr) bool // k.read, bound once
	gone bool
	b    [1]byte
}

// newCloseCheck returns the check for c, or nil if c has no socket.
func newCloseCheck(c net.Conn) *closeCheck {
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	k := &closeCheck{rc: rc}
	k.try = k.read
	return k
}

func (k *closeCheck) read(fd uintptr) bool {
	for {
		_, err := syscall.Read(int(fd), k.b[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			// Nothing to read: the connection is open.
		default:
			// End of stream (no error, nothing read), an error such as
			// a reset, or data the peer had no business sending.
			k.gone = true
		}
		return true // never wait for readability
	}
}

// raw returns the connection's syscall.RawConn; nil for a nil check.
func (k *closeCheck) raw() syscall.RawConn {
	if k == nil {
		return nil
	}
	return k.rc
}

// peerGone reports whether the peer has closed, reset or written to the
// connection. A nil check reports false.
func (k *closeCheck) peerGone() bool {
	if k == nil {
		return false
	}
	k.gone = false
	if err := k.rc.Read(k.try); err != nil {
		return true
	}
	return k.gone
}

// rawReader implements frameReader.ahead on a socket: it reads through the
// connection's syscall.RawConn, whose Read calls try when the socket may
// have data and waits for readability whenever try says it had none.
// try borrows a read buffer just for the read system call and gives it
// back if there was nothing to read, so a connection waiting for its next
// frame holds no buffer, and the read that ends the wait takes everything
// that has arrived.
type rawReader struct {
	rc   syscall.RawConn
	fr   *frameReader
	try  func(fd uintptr) bool // r.read, bound once: binding per call would allocate
	once func(fd uintptr) bool // r.readOnce, bound once
	n    int
	err  error
}

// setRawAhead makes fr read through c's socket when it waits for a
// frame, if c has one.
func setRawAhead(fr *frameReader, c net.Conn) {
	rc := rawConn(c)
	if rc == nil {
		return
	}
	r := &rawReader{rc: rc, fr: fr}
	r.try, r.once = r.read, r.readOnce
	fr.ahead = r.readAhead
}

func (r *rawReader) read(fd uintptr) bool {
	b := readBufs.Get().(*[]byte)
	for {
		r.n, r.err = syscall.Read(int(fd), *b)
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN || r.err == syscall.EWOULDBLOCK {
		readBufs.Put(b)
		return false
	}
	r.fr.buf = b
	return true
}

// readOnce is read that never waits for readability.
func (r *rawReader) readOnce(fd uintptr) bool {
	r.read(fd)
	return true
}

func (r *rawReader) readAhead(wait bool) (int, error) {
	r.n, r.err = 0, nil
	try := r.try
	if !wait {
		try = r.once
	}
	if err := r.rc.Read(try); err != nil {
		return 0, err
	}
	switch {
	case r.err == syscall.EAGAIN || r.err == syscall.EWOULDBLOCK:
		return 0, errWouldBlock // only when !wait: read waits otherwise
	case r.err != nil:
		return 0, os.NewSyscallError("read", r.err)
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}
