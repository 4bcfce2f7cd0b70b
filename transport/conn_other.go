//go:build !unix

package transport

import (
	"net"
	"syscall"
)

// peerCloseDetected says that closeCheck does not work on this system.
const peerCloseDetected = false

// closeCheck would tell whether the peer of an outbound connection has
// closed it. Without a non-blocking read on this system there is none: a
// batch written to a connection the peer has closed may then be lost, and
// the write that fails after it redials.
type closeCheck struct{}

func newCloseCheck(net.Conn) *closeCheck { return nil }

func (*closeCheck) peerGone() bool { return false }

func (*closeCheck) raw() syscall.RawConn { return nil }

// setRawAhead would make fr read through c's socket; without the unix
// system calls fr reads through c.
func setRawAhead(*frameReader, net.Conn) {}
