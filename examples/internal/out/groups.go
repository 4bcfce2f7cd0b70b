package out

import (
	"net"
	"net/netip"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/transport"
)

// Largest values of the -group-limit and -inbound-group-limit flags: the
// bounds gossip.WithAddressGroups accepts.
const (
	MaxGroupLimit        = 1 << 24
	MaxInboundGroupLimit = gossip.MaxDegreeLimit
)

// IsLoopback reports whether addr (host:port or a bare host) names a
// loopback address: 127.0.0.0/8, ::1 or "localhost".
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckGroupLimits returns a usage error if a -group-limit or
// -inbound-group-limit value is out of range. 0 means "choose from the
// address" (see AddressGroups).
func CheckGroupLimits(perSeed, inbound int) error {
	if perSeed < 0 || perSeed > MaxGroupLimit {
		return Usagef("-group-limit must be in [0, %d], got %d", MaxGroupLimit, perSeed)
	}
	if inbound < 0 || inbound > MaxInboundGroupLimit {
		return Usagef("-inbound-group-limit must be in [0, %d], got %d", MaxInboundGroupLimit, inbound)
	}
	return nil
}

// AddressGroups returns the gossip.WithAddressGroups option of a node that
// listens on addr, from the -group-limit (perSeed: a seed's registrations
// per address group) and -inbound-group-limit (inbound: a peer's inbound
// neighbours per address group) flags; a seed ignores the second, a peer
// the first.
//
// 0 picks the default from addr. On a public address it is the library's
// (gossip.DefaultGroupLimit, gossip.DefaultInboundPerGroup): the caps stop
// Sybils crowded into one /24 from filling a seed or a peer. On a loopback
// address they would only break a local network: every node that can
// reach a loopback address runs on this machine, every peer is in the one
// group 127.0.0.1, and a seed capped at 16 of them refuses the 17th peer.
// So a loopback node gets no cap (MaxGroupLimit registrations,
// MaxInboundGroupLimit inbound neighbours, which -max-degree bounds
// anyway).
func AddressGroups(addr string, perSeed, inbound int) gossip.Option {
	loop := IsLoopback(addr)
	if perSeed == 0 {
		perSeed = gossip.DefaultGroupLimit
		if loop {
			perSeed = MaxGroupLimit
		}
	}
	if inbound == 0 {
		inbound = gossip.DefaultInboundPerGroup
		if loop {
			inbound = MaxInboundGroupLimit
		}
	}
	return gossip.WithAddressGroups(gossip.DefaultGroupPrefix, perSeed, inbound)
}

// LoopbackConnsPerIP is the cap on simultaneous inbound connections from
// one IP address of a node listening on a loopback address: the
// transport's default total cap of inbound connections.
const LoopbackConnsPerIP = 1024

// TCPOptions returns the transport options of a node that will listen on
// addr, after opts. On a loopback address it lifts the transport's cap of
// 32 inbound connections per source IP (transport.WithMaxConnsPerIP): every
// node of a local network connects from 127.0.0.1, so a seed capped at 32
// would stop answering the 31st peer (beside two other seeds). Elsewhere
// the transport's defaults apply.
func TCPOptions(addr string, opts ...transport.TCPOption) []transport.TCPOption {
	if IsLoopback(addr) {
		opts = append(opts, transport.WithMaxConnsPerIP(LoopbackConnsPerIP))
	}
	return opts
}
