// Package sim is a simulator of the real gossip code: it runs real Seeds
// and Peers on an in-memory transport.Network in virtual time
// (testing/synctest), so it is a test binary rather than a command:
//
//	go test ./examples/sim -run TestSim -v -args -n 1000 -loss 0.05 -out /tmp/sim
//
// A network of -n peers and -seeds seeds grows one peer every -stagger,
// settles, then -origins peers broadcast -msgs messages each, -interval
// apart. Every link has -latency plus up to -jitter of delay and loses a
// -loss fraction of frames. -lazy switches from flooding to
// gossip.WithLazyPush.
//
// # What it reports
//
// sim.json and the -v log give, among the rest:
//
//   - coverage: the fraction of the other peers that delivered each
//     message (min and mean), and the virtual time to full coverage;
//   - hops to the last peer: the largest hop count of any delivery;
//   - payload frames sent per delivery: the gossip frames (the only wire
//     kind that carries a payload) of the simulated messages that nodes
//     handed to the network, lost ones included, over the deliveries.
//     They are counted where each node hands frames to its transport, and
//     checked against the peers' own Forwarded + Repaired counters. The
//     figure is also split into the first round (each origin's first
//     message) and the later ones, and given per message;
//   - degree statistics when the broadcasts start (mean, median, min, max,
//     mutual and one-sided links) and the flood bound, what pure flooding
//     sends per delivery on that overlay: mean degree × n/(n−1) − 1;
//   - targets: the performance targets (100 % coverage, hops to the last
//     peer ≤ 10, payload frames per delivery ≤ the flood bound when
//     flooding or ≤ 1.3 with lazy push), each marked met or not;
//   - duplicates: per message, the payload copies delivered to a peer that
//     already had the message, and for the later rounds why each was sent
//     (an answer to a graft or digest, or an eager push on a link its
//     receiver never pruned, whose prune was lost, or that was made eager
//     again);
//   - the peers' events during the workload by kind and reason, such as
//     links dropped by the silent-neighbour check (-silence-window 0 turns
//     the check off, to measure without it);
//   - heap and stack per peer of the idle network, and wall-clock time per
//     phase;
//   - with -deepest, the path of each message's deepest delivery, one
//     "peer:hops/shortest/best+delay" entry per hop: the hop count of
//     that peer's copy, its shortest distance from the origin, the fewest
//     hops a neighbour's copy would have given it, and how long after the
//     peer before it the copy came (far over the link latency: a repair).
//
// It also writes coverage.svg (coverage over virtual time) and degree.svg
// (degree distribution on log-log axes) into -out (default: a temporary
// directory). Missed targets are reported, not failed; the test fails
// only on its own inconsistencies, or on less than full coverage of a
// connected overlay on loss-free links.
//
// # Cost
//
// The code is real, so the cost is CPU (virtual time hides only waiting)
// and memory. Signatures are on by default (-signatures) and cost one
// Ed25519 verification per delivery. The registration proof of work is
// off by default (-pow 0): its puzzles burn real CPU off the nodes' loops,
// and the seeds raise the difficulty by a bit per doubling of the
// registrations above 100 a minute, which the simulated join rate (one
// per -stagger, 6000 a minute by default) exceeds about fortyfold, so
// -pow 8 means puzzles of about 14 bits. At n=10 000 most of the CPU goes
// to the seeds building a peer list (sorting every registered address) for
// each registration and each peer's periodic re-registration, and most of
// the heap to the peer lists each peer accumulates; a run takes about ten
// minutes of one core and about 9 GB of memory (GOGC=50 lowers the peak).
//
// Without -n, it simulates 1000 peers, or 200 under -short, under the race
// detector or when the CI environment variable is set.
package sim
