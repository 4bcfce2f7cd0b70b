package gossip

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

// lazyPeers is 60, or 30 under the race detector.
var lazyPeers = scaled(60, 30)

const (
	lazyMessages     = 200
	lazyLoss         = 0.05
	lazyMaxPerDeliv  = 1.3 // payload transmissions per delivery, lazy push
	floodMinPerDeliv = 2.0 // flooding sends clearly more
)

// runDissemination grows a network, has peers broadcast lazyMessages
// messages under 5% loss, and returns the delivered fraction and the
// payload transmissions (gossip frames sent) per delivery.
func runDissemination(t *testing.T, opts ...Option) (coverage, perDelivery float64) {
	var frames atomic.Int64
	cd := codec.Msgpack()
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, append([]Option{WithMessages(0)}, opts...)...)
		c.startSeeds()
		peers := c.startPeers(lazyPeers, joinGap)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		c.net.SetDefaultFault(transport.Fault{Drop: lazyLoss, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond})
		c.net.SetFilter(func(from, to string, frame []byte) bool {
			var m wireMsg
			if cd.Unmarshal(frame, &m) == nil && m.K == kindGossip {
				frames.Add(1)
			}
			return true
		})
		for i := range lazyMessages {
			_ = c.peers[peers[0]].Broadcast(t.Context(), fmt.Appendf(nil, "m%d", i))
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		var fwd, rep uint64
		for _, p := range peers {
			st := c.peers[p].Stats()
			fwd += st.Forwarded
			rep += st.Repaired
		}
		t.Logf("relayed in full %d, repaired %d, gossip frames delivered %d", fwd, rep, frames.Load())
		delivered := len(c.rec.kind(EventMessage))
		coverage = float64(delivered) / float64(lazyMessages*(lazyPeers-1))
		perDelivery = float64(frames.Load()) / float64(delivered)
	})
	return coverage, perDelivery
}

func TestLazyPushSavesTransmissions(t *testing.T) {
	if testing.Short() {
		t.Skip("two 60-peer runs")
	}
	lazyCov, lazyPer := runDissemination(t, WithLazyPush(50*time.Millisecond, time.Second))
	floodCov, floodPer := runDissemination(t)
	t.Logf("%d peers, 5%% loss, %d messages: lazy push coverage %.4f, %.2f payload sends per delivery; flooding coverage %.4f, %.2f",
		lazyPeers, lazyMessages, lazyCov, lazyPer, floodCov, floodPer)
	if lazyCov != 1 || floodCov != 1 {
		t.Errorf("coverage lazy %.4f, flood %.4f; want 1", lazyCov, floodCov)
	}
	if lazyPer > lazyMaxPerDeliv {
		t.Errorf("lazy push sent %.2f payloads per delivery, want <= %v", lazyPer, lazyMaxPerDeliv)
	}
	if floodPer < floodMinPerDeliv {
		t.Errorf("flooding sent only %.2f payloads per delivery; the comparison is meaningless", floodPer)
	}
}
