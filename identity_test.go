package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gossip-dev/gossip/transport"
)

func TestLoadIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	key, err := LoadIdentity(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	again, err := LoadIdentity(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !key.Equal(again) {
		t.Fatal("reloading gave another key")
	}

	bad := map[string][]byte{
		"empty":       nil,
		"not PEM":     []byte("hello"),
		"wrong block": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"bad DER":     []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	}
	for name, data := range bad {
		p := filepath.Join(t.TempDir(), "bad.key")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(p); !errors.Is(err, ErrBadIdentity) {
			t.Errorf("%s: err %v, want ErrBadIdentity", name, err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
			t.Errorf("%s: the file was changed", name)
		}
	}
	if _, err := LoadIdentity(filepath.Join(t.TempDir(), "no", "such", "dir", "k")); err == nil {
		t.Error("an uncreatable path gave no error")
	}
}

func TestNodeID(t *testing.T) {
	a := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	b := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	ida, idb := NodeID(a.Public().(ed25519.PublicKey)), NodeID(b.Public().(ed25519.PublicKey))
	if len(ida) != 32 || ida == idb || ida != NodeID(a.Public().(ed25519.PublicKey)) {
		t.Fatalf("NodeID: %q and %q", ida, idb)
	}
	net := transport.NewNetwork(1)
	tr, err := net.NewTransport("p:1")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p, err := NewPeer(tr, []string{"s:1"}, WithIdentity(a))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID() != ida {
		t.Fatalf("Peer.ID %q, want %q", p.ID(), ida)
	}
	str, err := net.NewTransport("s:1")
	if err != nil {
		t.Fatal(err)
	}
	defer str.Close()
	s, err := NewSeed(str, []string{"s:1"}, WithIdentity(b))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != idb {
		t.Fatalf("Seed.ID %q, want %q", s.ID(), idb)
	}
}
