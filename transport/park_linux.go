package transport

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// poller waits, on one goroutine, for data on the inbound connections
// whose readers have parked: an epoll set of their sockets, each armed
// for one event (EPOLLONESHOT) under a token naming its park. The epoll
// descriptor is itself pollable, so the poller goroutine waits for it in
// the runtime's network poller, like any socket, and holds no thread.
type poller struct {
	f   *os.File
	rc  syscall.RawConn
	evs [16]syscall.EpollEvent
	err error
}

// newPoller returns a poller, or an error if this system cannot give one.
func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	// A file the runtime cannot poll has no deadlines: waiting on it
	// would block a thread, or fail.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("epoll descriptor not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &poller{f: f, rc: rc}, nil
}

// arm registers c's socket for one readability event under tok; again is
// false the first time c is armed.
func (p *poller) arm(c syscall.RawConn, tok uint64, again bool) error {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(tok)),
		Pad:    int32(uint32(tok >> 32)),
	}
	var err error
	cerr := c.Control(func(fd uintptr) {
		p.rc.Control(func(ep uintptr) {
			op := syscall.EPOLL_CTL_ADD
			if again {
				op = syscall.EPOLL_CTL_MOD
			}
			err = syscall.EpollCtl(int(ep), op, int(fd), &ev)
			if again && errors.Is(err, syscall.ENOENT) {
				err = syscall.EpollCtl(int(ep), syscall.EPOLL_CTL_ADD, int(fd), &ev)
			}
		})
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// run calls wake with the token of every armed socket that becomes
// readable (or closed, or failed), until close. It returns nil after close,
// or the error that stopped it.
func (p *poller) run(wake func(tok uint64)) error {
	err := p.rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), p.evs[:], 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				p.err = os.NewSyscallError("epoll_wait", err)
				return true
			}
			for _, ev := range p.evs[:n] {
				wake(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
			}
			if n < len(p.evs) {
				return false // drained: wait for the descriptor to be readable
			}
		}
	})
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.err
}

// close ends run. The sockets still armed need no unregistering: closing
// a socket removes it from the set.
func (p *poller) close() { _ = p.f.Close() }
