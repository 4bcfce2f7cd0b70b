// Package sim is a simulator of the real gossip code: it runs real Seeds
// and Peers on an in-memory transport.Network in virtual time
// (testing/synctest), so it is a test binary rather than a command:
//
//	go test ./examples/sim -run TestSim -v -args -n 1000 -loss 0.05 -out /tmp/sim
//
// A network of -n peers and -seeds seeds grows one peer every -stagger,
// settles, then -origins peers broadcast -msgs messages each, -interval
// apart. Every link has -latency plus up to -jitter of delay and loses a
// -loss fraction of frames. The test reports coverage (the fraction of
// peers that delivered each message), hops to the last peer, payload
// transmissions per delivery, virtual time to full coverage, heap per
// peer and the degree histogram, and writes sim.json, coverage.svg
// (coverage over virtual time) and degree.svg (degree distribution on
// log-log axes) into -out (default: a temporary directory).
//
// -lazy switches from flooding to gossip.WithLazyPush. The registration
// proof of work is off by default (-pow): its puzzles burn real CPU, which
// virtual time does not hide, and would make large runs take hours.
//
// Without -n, it simulates 1000 peers, or 200 under -short, under the race
// detector or when the CI environment variable is set.
package sim
