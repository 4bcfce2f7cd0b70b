package gossip

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrBadIdentity is wrapped by LoadIdentity's errors about a key file that
// exists but does not hold an Ed25519 private key.
var ErrBadIdentity = errors.New("gossip: bad identity file")

// NodeID returns the identity derived from a node's public key: the first
// 16 bytes of its SHA-256 hash, in hex. Addresses say where a node is; the
// ID says who it is, and only the holder of the private key can produce the
// signatures (registrations, links, messages) that the ID vouches for.
func NodeID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:16])
}

// LoadIdentity returns the Ed25519 private key kept in the file at path, a
// PEM "PRIVATE KEY" block (PKCS #8). If the file does not exist it
// generates a key and writes it there first, readable by the owner only,
// so that a node keeps its identity across restarts. Pass the key to
// WithIdentity. A file that exists but holds no Ed25519 key gives an error
// wrapping ErrBadIdentity; it is never overwritten.
func LoadIdentity(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createIdentity(path)
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: read identity: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s: no PEM PRIVATE KEY block", ErrBadIdentity, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadIdentity, path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: a %T, not an Ed25519 key", ErrBadIdentity, path, k)
	}
	return key, nil
}

func createIdentity(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("gossip: generate identity: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("gossip: encode identity: %w", err)
	}
	// O_EXCL: two processes racing to create the file never both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gossip: create identity: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("gossip: write identity: %w", err)
	}
	return key, nil
}
