package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Wire format. Every frame is a 4-byte big-endian length followed by that
// many bytes. The first frame on a connection is the hello: helloMagic
// followed by the dialer's advertised address.
const (
	headerLen  = 4
	helloMagic = "GSPT1\x00"
	// maxAddrLen bounds the advertised address carried in a hello. It is
	// generous for a DNS name (253) plus a port.
	maxAddrLen = 300
	// maxHelloLen bounds the hello frame, independently of the frame limit.
	maxHelloLen = len(helloMagic) + maxAddrLen
)

// readFrame reads one length-prefixed frame from r. hdr is scratch space for
// the header. The length is checked against limit before anything is
// allocated, so a hostile length prefix costs nothing. A clean end of stream
// before the header returns io.EOF; an end inside a frame returns
// io.ErrUnexpectedEOF. It is the reference parser: inbound connections use
// frameReader, which parses the same way with buffering of its own.
func readFrame(r io.Reader, hdr *[headerLen]byte, limit int) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if limit < 0 || uint64(n) > uint64(limit) {
		return nil, errTooLarge(n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return p, nil
}

// appendFrame appends the wire encoding of frame to dst.
func appendFrame(dst, frame []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
	return append(dst, frame...)
}

// helloPayload returns the payload of the hello frame announcing addr.
func helloPayload(addr string) []byte {
	p := make([]byte, 0, len(helloMagic)+len(addr))
	p = append(p, helloMagic...)
	return append(p, addr...)
}

// readHello reads the hello frame from r and returns the announced address.
// Every failure wraps ErrHandshake.
func readHello(r io.Reader, hdr *[headerLen]byte) (string, error) {
	return checkHello(readFrame(r, hdr, maxHelloLen))
}

// checkHello returns the address announced by a hello frame p read with
// error err. Every failure wraps ErrHandshake.
func checkHello(p []byte, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
	}
	return parseHello(p)
}

// parseHello checks the magic and version prefix of a hello payload and
// returns the announced address. Every failure wraps ErrHandshake.
func parseHello(p []byte) (string, error) {
	if len(p) < len(helloMagic) || string(p[:len(helloMagic)]) != helloMagic {
		return "", fmt.Errorf("%w: bad magic or version", ErrHandshake)
	}
	addr := string(p[len(helloMagic):])
	if err := validAddr(addr); err != nil {
		return "", fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return addr, nil
}

// validAddr reports whether addr is a usable host:port: printable ASCII, a
// non-empty host and a port in 1..65535.
func validAddr(addr string) error {
	if addr == "" || len(addr) > maxAddrLen {
		return fmt.Errorf("transport: address of %d bytes", len(addr))
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("transport: address %q has a non-printable byte", addr)
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("transport: address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("transport: address %q has no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("transport: address %q: port must be 1-65535", addr)
	}
	return nil
}

// checkAnnounced enforces the anti-spoofing rule for a hello: if the
// announced host is an IP literal it must equal the connection's remote IP
// (IPv4-mapped IPv6 and zones are normalised). The host name "localhost"
// requires a loopback remote IP. Any other host name is accepted without a
// DNS lookup, which would let a peer stall the handshake.
func checkAnnounced(remote netip.Addr, announced string) error {
	host, _, err := net.SplitHostPort(announced)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	remote = remote.Unmap().WithZone("")
	if strings.EqualFold(host, "localhost") {
		if !remote.IsLoopback() {
			return fmt.Errorf("%w: %q announced from non-loopback %s", ErrHandshake, announced, remote)
		}
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a host name: accepted as is
	}
	if ip.Unmap().WithZone("") != remote {
		return fmt.Errorf("%w: %q announced from %s", ErrHandshake, announced, remote)
	}
	return nil
}
