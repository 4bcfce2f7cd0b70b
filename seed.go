package gossip

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"

	"github.com/gossip-dev/gossip/transport"
)

// Seed is an entry point of the network. It accepts registrations, keeps
// the list of live peers, hands it to peers that ask, and removes a peer
// that leaves or that is reported dead and fails the seed's own probes.
//
// A Seed is created with NewSeed and runs with Run. Its methods are safe
// for concurrent use.
type Seed struct {
	n   *node
	st  *seedState
	ctr *seedCounters
}

// NewSeed returns a Seed that serves on tr. seeds is the whole seed list
// of the network (the config file); it may include tr.Addr(), and the
// other entries are the seeds this one shares confirmed deaths with. It
// performs no I/O and starts no goroutines. The caller owns tr and closes
// it after Run returns.
func NewSeed(tr transport.Transport, seeds []string, opts ...Option) (*Seed, error) {
	if tr == nil {
		return nil, errors.New("gossip: nil transport")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.ensureIdentity(); err != nil {
		return nil, err
	}
	ctr := new(seedCounters)
	rep := newReputation(cfg)
	st := newSeedState(cfg, tr.Addr(), slices.Clone(seeds), ctr, rep)
	n := newNode(tr, cfg, st, rep)
	// A seed hears from a peer when it registers, renews or reports: its
	// connections to peers close after each reply, so that a seed does not
	// hold a connection, and a goroutine, for every peer it lists.
	others := make(map[string]bool, len(seeds))
	for _, a := range seeds {
		others[a] = true
	}
	n.oneShot = func(addr string) bool { return !others[addr] }
	if cfg.persistPath != "" {
		n.prepare = func() {
			peers, err := loadPeerFile(cfg.persistPath)
			if err != nil {
				n.log.Error("cannot restore peer list; starting empty", "path", cfg.persistPath, "err", err)
				return
			}
			st.restored = peers
		}
	}
	return &Seed{n: n, st: st, ctr: ctr}, nil
}

// Run serves until ctx is done and then returns nil, after every goroutine
// it started has ended and every queued event was delivered. The frames
// already received when ctx ends are handled first, so a peer that left
// just before is not kept in the list the seed stops (and persists) with. It returns
// ErrAlreadyRunning if called more than once. Stopping is cancelling ctx;
// it is therefore idempotent.
func (s *Seed) Run(ctx context.Context) error { return s.n.run(ctx) }

// Addr returns the seed's address.
func (s *Seed) Addr() string { return s.n.tr.Addr() }

// ID returns the seed's identity, NodeID of its public key (see
// WithIdentity).
func (s *Seed) ID() string { return NodeID(s.n.cfg.identity.Public().(ed25519.PublicKey)) }

// Peers returns the registered peers, sorted. The caller owns the slice.
func (s *Seed) Peers() []string { return slices.Clone(*s.st.view.Load()) }

// SeedStats are a Seed's counters since it was created.
type SeedStats struct {
	// Registrations counts first registrations of a peer.
	Registrations uint64
	// DeadReports counts dead-node reports received from peers.
	DeadReports uint64
	// Refuted counts reports whose subject answered the seed's probe.
	Refuted uint64
	// Removed counts peers removed, dead or left.
	Removed uint64
	FrameStats
}

// Stats returns the seed's counters. It never blocks.
func (s *Seed) Stats() SeedStats {
	return SeedStats{
		Registrations: s.ctr.registrations.Load(),
		DeadReports:   s.ctr.reports.Load(),
		Refuted:       s.ctr.refuted.Load(),
		Removed:       s.ctr.removed.Load(),
		FrameStats:    s.n.stats.snapshot(),
	}
}
