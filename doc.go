// Package gossip broadcasts messages over a peer-to-peer network that is
// bootstrapped by seed nodes, and checks the liveness of every link.
//
// # Roles
//
// A [Seed] is an entry point whose address is listed in the network's seed
// list (see [ParseSeeds] and [LoadSeeds]). It accepts registrations, keeps
// the list of live peers, hands it to peers that ask, and removes a peer
// that leaves, or that is reported dead and then fails the seed's own
// liveness probes: one forged report cannot evict anybody.
//
// A [Peer] registers with ⌊n/2⌋+1 of the n seeds, chosen at random (any two
// majorities intersect, so the union of their lists sees every registered
// peer), and connects to neighbours chosen from that union. It originates
// messages (by default the spec's ten "<timestamp>:<IP>:<Port>:<Msg#>"
// messages, one every 5 s, plus anything passed to [Peer.Broadcast]) and
// relays every message once, the first time it sees it, to every neighbour
// but the one it came from and the origin. It sends each neighbour a
// liveness request every 13 s; a neighbour that leaves three consecutive
// requests unanswered is reported to the peer's seeds and dropped.
//
// # Overlay shape
//
// Node degrees follow a power law. Each peer draws how many neighbours it
// dials from P(k) ∝ k^-γ on [min degree, max degree] (γ = 2.5 by default,
// see [WithDegreeExponent]) and picks them by preferential attachment:
// with probability proportional to degree+1, using the degrees that peers
// report to their seeds. A peer at the maximum degree refuses new links; a
// peer below the minimum asks its seeds for fresh candidates.
//
// # Lifecycle
//
// [NewSeed] and [NewPeer] validate their arguments and options and do no
// I/O. [Seed.Run] and [Peer.Run] do the work until their context is
// cancelled, then return nil once every goroutine they started has ended.
// A peer that stops leaves gracefully: its seeds deregister it and its
// neighbours drop it at once. Run may be called once. The caller owns the
// transport and closes it after Run returns.
//
// # Concurrency
//
// Each node's protocol state is owned by a single goroutine; the exported
// methods talk to it through channels or read atomically published
// snapshots, and are safe for concurrent use. Events go to the handler set
// with [WithEventHandler] on a separate goroutine, in order, so a slow
// handler never stalls the protocol. Run delivers the events still queued
// when it stops, so it returns only after the handler has returned from
// each of them: a handler that blocks for ever keeps Run from returning.
//
// # Identity and security
//
// Every node has an Ed25519 key ([WithIdentity]; [LoadIdentity] keeps one
// in a file across restarts, otherwise a new one is generated) and an
// identity derived from it, [NodeID]. Peers sign the messages they
// originate and receivers verify them against the key the seeds list for
// the origin; registrations sign the seed's proof-of-work challenge nonce;
// a neighbour link is set up by a signed connect carrying a fresh nonce
// and a signed connect-ack over that nonce, so nobody can claim another
// node's address. Seeds require a proof of work from new registrants, cap
// registrations per address group, and remove a reported peer only when a
// majority of them fail to reach it. Every node rate-limits each source
// before decoding, keeps a decaying reputation score per node and bans
// nodes that misbehave, and bounds every table and queue. SECURITY.md in
// the repository states the threat model, parameters and measured results.
//
// # Transports and codecs
//
// Nodes exchange opaque frames through a [transport.Transport]:
// [transport.ListenTCP] for real networks, or a [transport.Network] of
// in-memory transports with seeded loss, latency, partitions and crashes
// for tests and simulations. Frames are encoded by a [codec.Codec],
// msgpack by default (see [WithCodec]).
//
// # Memory
//
// An idle peer costs, over TCP on Linux, three goroutines: its protocol
// loop (the goroutine that calls Run), the transport's accept loop and the
// transport's poller, which waits for data on every quiet inbound
// connection at once (see [transport.WithParkAfter]); a connection's
// reader runs only while frames come more often than about two a second.
// On other systems each neighbour that sends to the peer keeps a reader
// goroutine. Writers run only while they have work and a moment after
// ([transport.WithWriterWait], 100 ms), the event dispatcher only while
// events wait, and a node releases its connections to the other kind of node
// ([transport.Releaser]) after each exchange, so a seed holds no
// connection to the peers it lists. The runtime keeps the stacks of
// recently ended goroutines for reuse, and by default starts goroutines
// with the average stack seen at its last collection, often 4 KiB or more
// while a busy process starts them; a program that hosts many nodes can
// run with GODEBUG=adaptivestackstart=0 to start them at 2 KiB (the
// README's performance section has the figures). Under load, what a TCP
// transport buffers is bounded in frames and in bytes: each destination's
// send queue holds at most 4096 frames or 4 MiB ([transport.WithQueueSize],
// [transport.WithQueueBytes]), and the inbox 4096 frames or 64 MiB
// ([transport.WithInboxSize], [transport.WithInboxBytes]).
//
// # Wire compatibility
//
// Every message carries a version number and a kind; kinds are never
// renumbered, and decoders ignore fields they do not know, so new fields
// and kinds can be added without breaking older nodes. All nodes of a
// network must use the same codec.
//
// # Testing
//
// The protocol runs in virtual time under testing/synctest on a
// [transport.Network]: hundreds of nodes and minutes of protocol time run
// in a fraction of a second, deterministically in time.
package gossip
