package transport

// Hooks exposes the TCP transport's internal event hooks to the external
// test package. Each function may be nil and is called on a transport
// goroutine, never under a lock.
type Hooks struct {
	BeforeDial func(addr string)
	AfterBatch func(addr string, n int)
	PeerClosed func(addr string)
	PeerGone   func(addr string)
	WriterDone func(addr string)
	WriterRun  func(addr string)
	WriterWait func(addr string)
	WriterEnd  func(addr string)
	ReaderDone func(from string)
	Rejected   func(remote string, err error)
}

// WithHooks installs h.
func WithHooks(h Hooks) TCPOption {
	return func(c *tcpConfig) error {
		c.hooks = tcpHooks{
			beforeDial: h.BeforeDial,
			afterBatch: h.AfterBatch,
			peerClosed: h.PeerClosed,
			peerGone:   h.PeerGone,
			writerDone: h.WriterDone,
			writerRun:  h.WriterRun,
			writerWait: h.WriterWait,
			writerEnd:  h.WriterEnd,
			readerDone: h.ReaderDone,
			rejected:   h.Rejected,
		}
		return nil
	}
}

// WithoutPoller makes the transport run as on a system without a poller:
// no connection parks, and writers check their connections before each
// batch.
func WithoutPoller() TCPOption {
	return func(c *tcpConfig) error { c.noPoller = true; return nil }
}

// HelloFrame returns the wire bytes of a hello announcing addr.
func HelloFrame(addr string) []byte { return appendFrame(nil, helloPayload(addr)) }

// Frame returns the wire bytes of frame.
func Frame(frame []byte) []byte { return appendFrame(nil, frame) }

// Parks reports whether tr parks quiet connections: it has a poller and
// a park delay.
func Parks(tr *TCP) bool { return tr.poller != nil && tr.cfg.parkAfter > 0 }
