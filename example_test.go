package gossip_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/transport"
)

// Example runs a seed and two peers on an in-memory network; one peer
// broadcasts and the other receives.
func Example() {
	net := transport.NewNetwork(1)
	seedTr, _ := net.NewTransport("seed:7000")
	aTr, _ := net.NewTransport("a:8000")
	bTr, _ := net.NewTransport("b:8000")
	defer seedTr.Close()
	defer aTr.Close()
	defer bTr.Close()

	seeds := []string{"seed:7000"}
	quiet := gossip.WithLogger(slog.New(slog.DiscardHandler))
	linked := make(chan struct{}, 1)
	received := make(chan gossip.Event, 1)

	seed, _ := gossip.NewSeed(seedTr, seeds, quiet)
	a, _ := gossip.NewPeer(aTr, seeds, quiet, gossip.WithMessages(0),
		gossip.WithEventHandler(func(ev gossip.Event) {
			if ev.Kind == gossip.EventNeighborUp {
				select { // never block the dispatcher
				case linked <- struct{}{}:
				default:
				}
			}
		}))
	b, _ := gossip.NewPeer(bTr, seeds, quiet, gossip.WithMessages(0),
		gossip.WithEventHandler(func(ev gossip.Event) {
			if ev.Kind == gossip.EventMessage {
				received <- ev
			}
		}))

	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return seed.Run(ctx) })
	g.Go(func() error { return a.Run(ctx) })
	g.Go(func() error { return b.Run(ctx) })

	<-linked
	if err := a.Broadcast(ctx, []byte("hello")); err != nil {
		fmt.Println("broadcast:", err)
	}
	ev := <-received
	fmt.Printf("b got %q from %s, relayed by %s\n", ev.Payload, ev.Origin, ev.From)

	cancel()
	fmt.Println("stopped:", g.Wait())
	// Output:
	// b got "hello" from a:8000, relayed by a:8000
	// stopped: <nil>
}

func ExampleParseSeeds() {
	config := `# seeds of the test network
127.0.0.1:7001
127.0.0.1,7002
`
	seeds, err := gossip.ParseSeeds(strings.NewReader(config))
	fmt.Println(seeds, err)

	_, err = gossip.ParseSeeds(strings.NewReader("127.0.0.1:7001\n127.0.0.1:http\n"))
	fmt.Println(err)
	// Output:
	// [127.0.0.1:7001 127.0.0.1:7002] <nil>
	// gossip: seed config line 2 "127.0.0.1:http": bad port "http"
}

func ExampleDeadNodeLine() {
	fmt.Println(gossip.DeadNodeLine("127.0.0.1:8002", time.Unix(1764081234, 125e6), "127.0.0.1:8001"))
	// Output: Dead Node:127.0.0.1:8002:1764081234.125:127.0.0.1:8001
}
