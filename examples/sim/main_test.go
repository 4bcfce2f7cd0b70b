package sim

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the simulated network, real Seeds and Peers on the
// in-memory transport, leaves no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
