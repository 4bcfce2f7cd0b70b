package gossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// Peer is a member of the gossip network. It registers with a majority of
// the seeds, connects to neighbours chosen from their peer lists, originates
// and relays gossip messages, and checks its neighbours' liveness,
// reporting dead ones to its seeds.
//
// A Peer is created with NewPeer and runs with Run. Its methods are safe
// for concurrent use.
type Peer struct {
	n   *node
	st  *peerState
	ctr *peerCounters
}

// NewPeer returns a Peer that communicates over tr and joins through seeds
// (the seed list of the network, e.g. from LoadSeeds). It performs no I/O
// and starts no goroutines. The caller owns tr and closes it after Run
// returns.
func NewPeer(tr transport.Transport, seeds []string, opts ...Option) (*Peer, error) {
	if tr == nil {
		return nil, errors.New("gossip: nil transport")
	}
	if len(seeds) == 0 {
		return nil, ErrNoSeeds
	}
	for i, a := range seeds {
		if a == "" || slices.Contains(seeds[:i], a) {
			return nil, fmt.Errorf("%w: empty or duplicate seed address %q", ErrBadConfig, a)
		}
		if a == tr.Addr() {
			return nil, fmt.Errorf("%w: peer address %s is a seed address", ErrBadConfig, a)
		}
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.ensureIdentity(); err != nil {
		return nil, err
	}
	ctr := new(peerCounters)
	rep := newReputation(cfg)
	st := newPeerState(cfg, tr.Addr(), seeds, ctr, rep)
	n := newNode(tr, cfg, st, rep)
	// A peer talks to its seeds only to register, renew and report: its
	// connections to them close after each request.
	isSeed := make(map[string]bool, len(seeds))
	for _, a := range seeds {
		isSeed[a] = true
	}
	n.oneShot = func(addr string) bool { return isSeed[addr] }
	return &Peer{n: n, st: st, ctr: ctr}, nil
}

// Run takes part in the network until ctx is done, then leaves gracefully
// (its seeds and neighbours are told, so nobody reports it dead) and
// returns nil, after every goroutine it started has ended and every queued
// event was delivered. With WithJoinTimeout it returns a *JoinError when
// no majority of seeds accepted it in time. It returns ErrAlreadyRunning if
// called more than once. Stopping is cancelling ctx; it is therefore
// idempotent.
func (p *Peer) Run(ctx context.Context) error { return p.n.run(ctx) }

// Addr returns the peer's address.
func (p *Peer) Addr() string { return p.n.tr.Addr() }

// Broadcast originates a gossip message carrying a copy of payload and
// sends it to every neighbour. It waits until Run is running, and returns
// ErrPayloadTooLarge, ErrNoNeighbors, ErrStopped after Run has returned, or
// ctx's error.
func (p *Peer) Broadcast(ctx context.Context, payload []byte) error {
	if len(payload) > p.n.cfg.maxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(payload), p.n.cfg.maxPayload)
	}
	payload = bytes.Clone(payload)
	var err error
	if e := p.n.do(ctx, func(now time.Time) { err = p.st.broadcast(payload, now) }); e != nil {
		return e
	}
	return err
}

// PublicKey returns the peer's Ed25519 public key (see WithIdentity).
func (p *Peer) PublicKey() ed25519.PublicKey {
	return p.n.cfg.identity.Public().(ed25519.PublicKey)
}

// ID returns the peer's identity, NodeID of its public key.
func (p *Peer) ID() string { return NodeID(p.PublicKey()) }

// Neighbors returns the current neighbours' addresses, sorted. It never
// blocks; the caller owns the slice.
func (p *Peer) Neighbors() []string { return slices.Clone(*p.st.view.Load()) }

// Link describes one neighbour link of a Peer.
type Link struct {
	// Addr is the neighbour's address.
	Addr string
	// Outbound is true when this peer chose and dialed the neighbour,
	// false when the neighbour dialed in. Inbound links never take the
	// outbound slots (WithMinDegree).
	Outbound bool
	// Since is when the link was established.
	Since time.Time
}

// Links returns the current neighbour links, sorted by address. It never
// blocks; the caller owns the slice.
func (p *Peer) Links() []Link { return slices.Clone(*p.st.linkView.Load()) }

// PeerStats are a Peer's counters since it was created.
type PeerStats struct {
	// Originated counts messages this peer created.
	Originated uint64
	// Delivered counts first receipts of other peers' messages.
	Delivered uint64
	// Duplicates counts receipts of messages already seen.
	Duplicates uint64
	// Forwarded counts messages relayed to a neighbour.
	Forwarded uint64
	// Repaired counts messages sent to a neighbour by anti-entropy.
	Repaired uint64
	// Pruned counts copies not forwarded to a neighbour because the
	// neighbour that sent the message shares it and sent it there itself
	// (WithSelfPruning).
	Pruned uint64
	// DeadReports counts neighbours reported dead.
	DeadReports uint64
	// Dropped counts messages refused: from non-neighbours or unexpected.
	Dropped uint64
	FrameStats
}

// Stats returns the peer's counters. It never blocks.
func (p *Peer) Stats() PeerStats {
	return PeerStats{
		Originated:  p.ctr.originated.Load(),
		Delivered:   p.ctr.delivered.Load(),
		Duplicates:  p.ctr.duplicates.Load(),
		Forwarded:   p.ctr.forwarded.Load(),
		Repaired:    p.ctr.repaired.Load(),
		Pruned:      p.ctr.pruned.Load(),
		DeadReports: p.ctr.deadReports.Load(),
		Dropped:     p.ctr.dropped.Load(),
		FrameStats:  p.n.stats.snapshot(),
	}
}
