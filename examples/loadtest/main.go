// Command loadtest measures the gossip library under a broadcast workload
// over real TCP on 127.0.0.1, in one process.
//
// It starts -seeds seeds and -n peers (one every -stagger), waits until
// every peer has a neighbour and the graph of mutual links is connected,
// then peer 0 originates -m messages of -size bytes at -rate per second
// (message i at start + i/rate) with Peer.Broadcast. Every other peer
// records the first arrival of each message from its event handler. The
// program prints one JSON object: delivered fraction, latency percentiles
// (one process clock), duplicates, bytes and frames written by every TCP
// transport during the workload, peak heap and goroutines. It stops by
// itself after -timeout, cancelling every node and closing every
// transport, and exits 1 if not every message reached every peer.
//
// Only the workload is measured: no spec messages (WithMessages(0)),
// hour-long liveness and refresh intervals, no anti-entropy or silence
// check, and DoS limits (per-source rates, per-origin rate, address
// groups, which would put every 127.0.0.1 node in one group) raised out of
// the way. -lazy switches from flooding to gossip.WithLazyPush.
//
//	go run ./examples/loadtest
//	go run ./examples/loadtest -n 50 -rate 5000 -m 5000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Peers, "n", cfg.Peers, "number of peers")
	flag.IntVar(&cfg.Seeds, "seeds", cfg.Seeds, "number of seeds")
	flag.IntVar(&cfg.Messages, "m", cfg.Messages, "messages originated by peer 0")
	flag.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes per message (at least 8)")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages per second")
	flag.IntVar(&cfg.MinDegree, "min-degree", cfg.MinDegree, "gossip.WithMinDegree")
	flag.IntVar(&cfg.MaxDegree, "max-degree", cfg.MaxDegree, "gossip.WithMaxDegree")
	flag.Float64Var(&cfg.Exponent, "degree-exponent", cfg.Exponent, "gossip.WithDegreeExponent")
	flag.DurationVar(&cfg.Stagger, "stagger", cfg.Stagger, "delay between peer starts")
	flag.DurationVar(&cfg.Drain, "drain", cfg.Drain, "how long to wait for deliveries after the last send")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole run")
	flag.IntVar(&cfg.QueueSize, "queue", cfg.QueueSize, "transport.WithQueueSize (frames per destination)")
	flag.IntVar(&cfg.InboxSize, "inbox", cfg.InboxSize, "transport.WithInboxSize")
	flag.IntVar(&cfg.QueueBytes, "queue-bytes", cfg.QueueBytes, "transport.WithQueueBytes (bytes per destination)")
	flag.IntVar(&cfg.InboxBytes, "inbox-bytes", cfg.InboxBytes, "transport.WithInboxBytes")
	flag.Uint64Var(&cfg.RandSeed, "seed", cfg.RandSeed, "random seed of the nodes")
	flag.IntVar(&cfg.PoW, "pow", cfg.PoW, "gossip.WithProofOfWork difficulty of registration (0: off)")
	flag.BoolVar(&cfg.Signatures, "signatures", cfg.Signatures, "gossip.WithSignatures: sign and verify every message")
	flag.DurationVar(&cfg.LazyFlush, "lazy", cfg.LazyFlush, "gossip.WithLazyPush flush interval (0: flooding)")
	flag.DurationVar(&cfg.LazyGraft, "lazy-graft", cfg.LazyGraft, "gossip.WithLazyPush graft timeout")
	flag.IntVar(&cfg.EagerLinks, "eager-links", cfg.EagerLinks, "gossip.WithEagerLinks: dialed links that start eager with lazy push (0: all)")
	flag.BoolVar(&cfg.SelfPrune, "self-prune", cfg.SelfPrune, "gossip.WithSelfPruning: a flooding peer skips the neighbours it shares with the sender")
	flag.DurationVar(&cfg.RelayWait, "relay-wait", cfg.RelayWait, "gossip.WithRelayWait: a flooding peer waits this long before relaying, and skips the neighbours that sent it a copy meanwhile (0: relay at once)")
	flag.DurationVar(&cfg.Slow, "slow", 0, "log every delivery slower than this to stderr (0: none)")
	cfg.SlowLog = os.Stderr
	verbose := flag.Bool("v", false, "log warnings to stderr")
	debug := flag.Bool("debug", false, "log everything, down to debug level, to stderr")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile at the end of the workload to this file")
	flag.Parse()
	switch {
	case *debug:
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case *verbose:
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(2)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	cfg.HeapProfile = *memProfile

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, cfg)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(res); encErr != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", encErr)
		os.Exit(1)
	}
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		code = 1
	} else if res.Delivered < 1 {
		fmt.Fprintf(os.Stderr, "loadtest: delivered %.4f of the messages\n", res.Delivered)
		code = 1
	}
	pprof.StopCPUProfile()
	stop()
	os.Exit(code)
}
