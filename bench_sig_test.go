package gossip

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// BenchmarkSignMessage and BenchmarkVerifyMessage measure what signing adds
// per originated and per received message (256-byte payload).
func BenchmarkSignMessage(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	m := &wireMsg{K: kindGossip, Origin: "127.0.0.1:40001", Seq: 1, Stamp: time.Now().UnixNano(), Payload: make([]byte, 256)}
	b.ReportAllocs()
	for b.Loop() {
		m.Sig = ed25519.Sign(key, signedBytes(m))
	}
}

func BenchmarkVerifyMessage(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	m := &wireMsg{K: kindGossip, Origin: "127.0.0.1:40001", Seq: 1, Stamp: time.Now().UnixNano(), Payload: make([]byte, 256)}
	m.Sig = ed25519.Sign(key, signedBytes(m))
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, signedBytes(m), m.Sig) {
			b.Fatal("bad signature")
		}
	}
}
