//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// poller would wait for data on parked connections; it needs epoll, so
// on this system connections never park and each keeps its reader.
type poller struct{}

func newPoller() (*poller, error) {
	return nil, errors.New("transport: parking idle connections needs Linux")
}

func (*poller) arm(syscall.RawConn, uint64, bool) error { return errors.ErrUnsupported }

func (*poller) run(func(uint64)) error { return nil }

func (*poller) close() {}
