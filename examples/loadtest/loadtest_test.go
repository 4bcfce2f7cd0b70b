package main

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoadSmoke runs a small load test over real TCP: every message must
// reach every peer, and every goroutine must be gone afterwards (TestMain).
func TestLoadSmoke(t *testing.T) {
	for _, tc := range []struct {
		prune bool
		wait  time.Duration
	}{{false, 0}, {true, 0}, {true, 500 * time.Microsecond}} {
		t.Run(fmt.Sprintf("self-prune=%v/relay-wait=%v", tc.prune, tc.wait), func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Peers, cfg.Messages, cfg.Rate = 8, 50, 500
			cfg.Timeout = 30 * time.Second
			cfg.PoW = 8 // the real registration puzzle, made cheap for -race
			cfg.SelfPrune, cfg.RelayWait = tc.prune, tc.wait
			res, err := run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("run: %v (result %+v)", err, res)
			}
			if res.Delivered != 1.0 || res.Incomplete != 0 || res.Unreached != 0 {
				t.Fatalf("delivered %v (%d of %d; %d peers missed some, %d messages reached none), want 1.0",
					res.Delivered, res.Deliveries, res.Expected, res.Incomplete, res.Unreached)
			}
			if res.Sent != cfg.Messages || res.Bytes == 0 || res.Frames == 0 || res.LatencyMax <= 0 || res.MaxHops < 1 {
				t.Errorf("implausible result: %+v", res)
			}
			t.Logf("p50 %.2fms p99 %.2fms, %.0f B/delivery, %d duplicates, mean degree %.2f",
				res.LatencyP50, res.LatencyP99, res.BytesPerDelivery, res.Duplicates, res.MeanDegree)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, mod := range []func(*config){
		func(c *config) { c.Peers = 1 },
		func(c *config) { c.Seeds = 0 },
		func(c *config) { c.Messages = 0 },
		func(c *config) { c.Size = 7 },
		func(c *config) { c.Rate = 0 },
		func(c *config) { c.Timeout = 0 },
	} {
		c := defaultConfig()
		mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if c := defaultConfig(); c.validate() != nil {
		t.Error("default config rejected")
	}
}
