package transport_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// Two TCP transports on loopback: one sends a frame, the other receives it
// tagged with the sender's advertised address.
func ExampleListenTCP() {
	a, err := transport.ListenTCP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := transport.ListenTCP("127.0.0.1:0",
		transport.WithIdleTimeout(time.Minute), // every limit is an option
		transport.WithParkAfter(time.Second),   // the default: quiet links give up their readers
	)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	if err := a.Send(context.Background(), b.Addr(), []byte("hello")); err != nil {
		log.Fatal(err)
	}
	p := <-b.Packets()
	fmt.Println(string(p.Payload), p.From == a.Addr())
	// Output: hello true
}

// Release closes a connection once what is queued on it is written: for a
// destination a node talks to only now and then. A later Send is delivered
// as usual, over a new connection.
func ExampleTCP_Release() {
	a, _ := transport.ListenTCP("127.0.0.1:0")
	defer a.Close()
	b, _ := transport.ListenTCP("127.0.0.1:0")
	defer b.Close()

	ctx := context.Background()
	_ = a.Send(ctx, b.Addr(), []byte("register"))
	a.Release(b.Addr())
	fmt.Println(string((<-b.Packets()).Payload))
	_ = a.Send(ctx, b.Addr(), []byte("again"))
	fmt.Println(string((<-b.Packets()).Payload))
	// Output:
	// register
	// again
}

// An in-memory network for tests and simulations: seeded faults, no
// sockets.
func ExampleNetwork() {
	net := transport.NewNetwork(1)
	a, _ := net.NewTransport("a:1")
	b, _ := net.NewTransport("b:1")
	defer a.Close()
	defer b.Close()
	net.SetFault("a:1", "b:1", transport.Fault{Latency: 10 * time.Millisecond})

	_ = a.Send(context.Background(), "b:1", []byte("ping"))
	p := <-b.Packets()
	fmt.Println(p.From, string(p.Payload))
	// Output: a:1 ping
}
