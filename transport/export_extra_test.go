package transport

// WithInboxWaitHook calls f, on the connection's reader goroutine, each
// time an inbound frame from from finds the inbox full and starts to wait
// for room. Give it after WithHooks, which resets every hook.
func WithInboxWaitHook(f func(from string)) TCPOption {
	return func(c *tcpConfig) error {
		c.hooks.inboxWait = f
		return nil
	}
}

// PeerCloseDetected reports whether a writer notices, before its next
// batch, that the peer has closed the connection (see closeCheck).
const PeerCloseDetected = peerCloseDetected
