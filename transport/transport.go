// Package transport carries opaque frames between gossip nodes.
//
// A [Transport] is datagram-like: [Transport.Send] queues one frame for an
// address and returns at once; frames arrive on [Transport.Packets] tagged
// with the sender's advertised address. Delivery is best effort and may
// drop frames (full queues, dead links); the gossip protocol above is built
// to tolerate loss. Two implementations ship with the package:
//
//   - [TCP], for real networks: length-prefixed frames over TCP connections,
//     a bounded queue per destination, drained by a goroutine only while it
//     holds frames, a reader per inbound connection only while it is busy
//     (on Linux, quiet connections park in one epoll set per transport:
//     [WithParkAfter]), connections a node can release between exchanges
//     ([Releaser]), a handshake that names the dialer's listening address,
//     a handshake deadline, an idle timeout, and a frame size limit checked
//     before any allocation.
//   - [Network] and [Mem], an in-process network for tests and simulations,
//     with seeded loss, latency, partitions and crashes, built only on
//     channels and timers so that it runs under testing/synctest.
//
// The conformance suite in package transporttest runs against both.
package transport

import (
	"context"
	"errors"
)

// Packet is one inbound frame. The receiver owns Payload.
type Packet struct {
	// From is the advertised address of the sending transport (the address
	// other nodes use to reach it), not an ephemeral socket address.
	From string
	// Payload is the frame's content, exactly as passed to Send.
	Payload []byte
}

// Transport carries opaque frames between nodes. Implementations must be safe
// for concurrent use.
type Transport interface {
	// Addr returns the address other nodes use to reach this one.
	Addr() string
	// Send queues frame for delivery to addr. A nil error means the frame
	// was queued, not that it arrived. Send must not retain frame after it
	// returns and must not wait on network I/O. It returns ErrClosed after
	// Close and ErrFrameTooLarge for a frame over the transport's limit.
	Send(ctx context.Context, addr string, frame []byte) error
	// Packets returns the channel of inbound frames. The channel is never
	// closed; consumers stop on their own context.
	Packets() <-chan Packet
	// Close stops the transport and waits for all its goroutines. It is
	// idempotent; Send after Close returns ErrClosed.
	Close() error
}

// Releaser is implemented by transports that keep a connection to a
// destination open between sends, such as [TCP]. A node calls Release for
// a destination it exchanges only the odd request or reply with, as a peer
// with a seed: the connection then costs nothing between exchanges, where
// an open one would cost a socket at each end, and a goroutine where
// connections do not park, for as long as the transport's idle timeout. Frames sent after Release are delivered
// as usual, over a new connection.
type Releaser interface {
	// Release closes the connection to addr once every frame queued for
	// addr has been written. It does nothing if there is none, and never
	// waits on the network.
	Release(addr string)
}

// Errors returned by transports. Test for them with errors.Is.
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrFrameTooLarge is returned for a frame over the size limit, on
	// send or (wrapped) when a peer announces one.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrUnknownAddr is returned by the in-memory network for an address
	// that no transport was ever created for.
	ErrUnknownAddr = errors.New("transport: unknown address")
	// ErrAddrInUse is returned when an address is already taken.
	ErrAddrInUse = errors.New("transport: address in use")
	// ErrHandshake is wrapped by errors about a failed connection handshake.
	ErrHandshake = errors.New("transport: bad handshake")
)
