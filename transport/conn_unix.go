//go:build unix

package transport

import (
	"net"
	"syscall"
)

// peerCloseDetected says that peerGone works on this system.
const peerCloseDetected = true

// peerGone reports whether the peer of an outbound connection has closed
// or reset it, or has written to it (it never should), without blocking:
// it peeks at the socket. An outbound connection has no reader goroutine,
// so the writer checks before each batch rather than losing the batch on
// a dead socket.
func peerGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				// Nothing to read: the connection is open.
			default:
				// End of stream (no error, nothing read), an error such as
				// a reset, or data the peer had no business sending.
				gone = true
			}
			return true // never wait for readability
		}
	})
	return gone || err != nil
}
