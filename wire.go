package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// wireVersion is the version of the wire format written by this package.
// Receivers accept any version >= 1 and ignore fields they do not know.
const wireVersion = 1

// maxDigest bounds the message IDs in one digest or want message.
const maxDigest = 4096

// kind identifies a wire message. Values are append-only: never renumber or
// reuse one.
type kind uint8

const (
	kindRegister       kind = iota + 1 // peer → seed: register (Degree)
	kindRegisterAck                    // seed → peer: accepted (Peers)
	kindRegisterReject                 // seed → peer: refused (Reason)
	kindPeerListReq                    // peer → seed: send your list
	kindPeerList                       // seed → peer: the list (Peers)
	kindDegree                         // peer → seed: my degree changed (Degree)
	kindDeadReport                     // peer → seed: Addr is dead (Stamp)
	kindSeedDead                       // seed → seed: Addr failed my probes (Stamp), registered with Key
	kindLeave                          // peer → seeds and neighbours: leaving for good
	kindConnect                        // peer → peer: be my neighbour
	kindConnectAck                     // peer → peer: accepted
	kindConnectReject                  // peer → peer: refused (Reason)
	kindDisconnect                     // peer → peer: we are no longer neighbours
	kindGossip                         // peer → peer: Origin, Seq, Stamp, Hops, Payload
	kindPing                           // any → any: liveness request (Stamp)
	kindPong                           // reply: echoes Stamp; Addr is the requester
	kindDigest                         // peer → neighbour: IDs of recent messages I have
	kindWant                           // peer → neighbour: send me these IDs
	kindIHave                          // lazy push: IDs of messages I received
	kindGraft                          // lazy push: send me these IDs and push to me eagerly
	kindPrune                          // lazy push: stop pushing to me eagerly
	kindChallenge                      // seed → peer: solve this proof of work (Nonce, Diff, Stamp = expiry)
	kindNeighbors                      // self-pruning: the sender's neighbours (Peers, addresses only), list version Seq
	kindMax                            // first unused value
)

var kindNames = [...]string{
	kindRegister: "register", kindRegisterAck: "register-ack", kindRegisterReject: "register-reject",
	kindPeerListReq: "peer-list-req", kindPeerList: "peer-list", kindDegree: "degree",
	kindDeadReport: "dead-report", kindSeedDead: "seed-dead", kindLeave: "leave",
	kindConnect: "connect", kindConnectAck: "connect-ack", kindConnectReject: "connect-reject",
	kindDisconnect: "disconnect", kindGossip: "gossip", kindPing: "ping", kindPong: "pong",
	kindDigest: "digest", kindWant: "want",
	kindIHave: "ihave", kindGraft: "graft", kindPrune: "prune", kindChallenge: "challenge",
	kindNeighbors: "neighbors",
}

func (k kind) String() string {
	if k > 0 && k < kindMax {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// wirePeer is one entry of a peer list.
type wirePeer struct {
	Addr   string `codec:"a" json:"a"`
	Degree int    `codec:"d,omitempty" json:"d,omitempty"`
	Key    []byte `codec:"k,omitempty" json:"k,omitempty"` // its Ed25519 public key
	Level  int    `codec:"l,omitempty" json:"l,omitempty"` // its level in the eager tree (lazy push; 0: unknown)
}

// wireMsg is the one message struct of the protocol; K says which fields
// are meaningful. Short tags keep frames small.
type wireMsg struct {
	V       uint8      `codec:"v" json:"v"`
	K       kind       `codec:"k" json:"k"`
	Addr    string     `codec:"a,omitempty" json:"a,omitempty"`
	Degree  int        `codec:"d,omitempty" json:"d,omitempty"`
	Peers   []wirePeer `codec:"p,omitempty" json:"p,omitempty"`
	Origin  string     `codec:"o,omitempty" json:"o,omitempty"`
	Seq     uint64     `codec:"s,omitempty" json:"s,omitempty"`
	Stamp   int64      `codec:"t,omitempty" json:"t,omitempty"`
	Hops    int        `codec:"h,omitempty" json:"h,omitempty"`
	Payload []byte     `codec:"b,omitempty" json:"b,omitempty"`
	Reason  string     `codec:"r,omitempty" json:"r,omitempty"`
	IDs     []uint64   `codec:"i,omitempty" json:"i,omitempty"`
	IDHops  []byte     `codec:"ih,omitempty" json:"ih,omitempty"` // ihave: the announcer's hops for each of IDs (255: that many or more)
	Key     []byte     `codec:"pk,omitempty" json:"pk,omitempty"` // origin's (gossip) or registrant's Ed25519 public key
	Sig     []byte     `codec:"sg,omitempty" json:"sg,omitempty"` // origin's signature (gossip)
	Nonce   []byte     `codec:"n,omitempty" json:"n,omitempty"`   // proof-of-work challenge nonce
	Diff    uint8      `codec:"df,omitempty" json:"df,omitempty"` // proof-of-work difficulty
	Counter uint64     `codec:"c,omitempty" json:"c,omitempty"`   // proof-of-work solution
	Link    linkMode   `codec:"l,omitempty" json:"l,omitempty"`   // connect, connect-ack: how the sender starts the link (lazy push)
	NV      uint64     `codec:"nv,omitempty" json:"nv,omitempty"` // gossip: version of the sender's neighbour list it was forwarded under (self-pruning; 0: none, or a repair)
}

// validate rejects messages whose fields cannot be right for their kind,
// so that the state machines never see them.
func (m *wireMsg) validate(maxPayload int) error {
	if m.V < 1 {
		return fmt.Errorf("gossip: wire version %d", m.V)
	}
	if m.K == 0 || m.K >= kindMax {
		return fmt.Errorf("gossip: unknown message kind %d", uint8(m.K))
	}
	if m.Degree < 0 || m.Hops < 0 {
		return fmt.Errorf("gossip: negative degree or hops in %v", m.K)
	}
	switch m.K {
	case kindDeadReport, kindSeedDead:
		if m.Addr == "" {
			return fmt.Errorf("gossip: %v without address", m.K)
		}
	case kindChallenge:
		if len(m.Nonce) != 16 || m.Diff > 64 {
			return fmt.Errorf("gossip: malformed challenge")
		}
	case kindDigest, kindWant, kindIHave, kindGraft:
		if len(m.IDs) > maxDigest {
			return fmt.Errorf("gossip: %v with %d ids, limit %d", m.K, len(m.IDs), maxDigest)
		}
		if len(m.IDHops) != 0 && len(m.IDHops) != len(m.IDs) {
			return fmt.Errorf("gossip: %v with %d ids and %d hop counts", m.K, len(m.IDs), len(m.IDHops))
		}
	case kindNeighbors:
		if len(m.Peers) > MaxDegreeLimit {
			return fmt.Errorf("gossip: neighbors with %d entries, limit %d", len(m.Peers), MaxDegreeLimit)
		}
	case kindGossip:
		if m.Origin == "" {
			return fmt.Errorf("gossip: gossip without origin")
		}
		if len(m.Payload) > maxPayload {
			return fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(m.Payload))
		}
	}
	return nil
}

// detach gives m's byte fields their own memory, when m was decoded in
// place (codec.AliasUnmarshaler): a field a state machine keeps, such as
// a key from a peer list, would otherwise pin the whole frame it came in.
// The node keeps gossip messages in place, where the frame is the
// message's own.
func (m *wireMsg) detach() {
	clone := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return bytes.Clone(b)
	}
	m.Payload, m.IDHops, m.Key, m.Sig, m.Nonce = clone(m.Payload), clone(m.IDHops), clone(m.Key), clone(m.Sig), clone(m.Nonce)
	for i := range m.Peers {
		m.Peers[i].Key = clone(m.Peers[i].Key)
	}
}

// msgID is the identity of a gossip message: the first 64 bits of a
// SHA-256 hash of its origin, sequence number, origin timestamp and
// payload. Receivers compute it themselves; it is never taken from the
// wire, except as a reference in anti-entropy digests. 64 bits keep the
// seen-set and digests small; an accidental collision among 100 000 live
// messages has probability below 1e-9, and finding a second message with
// a given ID takes about 2^64 hashes.
type msgID uint64

func gossipID(origin string, seq uint64, stamp int64, payload []byte) msgID {
	return gossipIDKey(origin, nil, seq, stamp, payload)
}

// id is the identity of gossip message m; a signed message's key is part
// of it, so a copy re-signed by someone else cannot suppress the original.
func (m *wireMsg) id() msgID { return gossipIDKey(m.Origin, m.Key, m.Seq, m.Stamp, m.Payload) }

func gossipIDKey(origin string, key []byte, seq uint64, stamp int64, payload []byte) msgID {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(len(origin)))
	h.Write(b[:4])
	h.Write([]byte(origin))
	if len(key) > 0 {
		h.Write([]byte{0xff, byte(len(key))})
		h.Write(key)
	}
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(stamp))
	h.Write(b[:])
	h.Write(payload)
	var sum [sha256.Size]byte
	return msgID(binary.BigEndian.Uint64(h.Sum(sum[:0])))
}

// registrationBytes is what a registrant signs to prove it holds its key:
// the seed's fresh challenge nonce, its own address and the seed's.
func registrationBytes(nonce []byte, addr, seed string) []byte {
	b := append([]byte("gossip-register-v1\x00"), nonce...)
	b = binary.AppendUvarint(b, uint64(len(addr)))
	b = append(b, addr...)
	return append(b, seed...)
}

// linkBytes is what a peer signs in a connect or connect-ack: the kind,
// both addresses, a timestamp and the dialer's link nonce (a connect-ack
// signs the nonce of the connect it answers, so it cannot be replayed).
func linkBytes(k kind, from, to string, stamp int64, nonce []byte) []byte {
	b := append([]byte("gossip-link-v2\x00"), byte(k))
	b = binary.AppendUvarint(b, uint64(len(from)))
	b = append(b, from...)
	b = binary.AppendUvarint(b, uint64(len(to)))
	b = append(b, to...)
	b = binary.BigEndian.AppendUint64(b, uint64(stamp))
	return append(b, nonce...)
}

// linkNonceSize is the length of a connect's nonce.
const linkNonceSize = 16

// signedBytes is what an origin signs: a domain tag, then the origin
// address (length-prefixed), sequence number, timestamp and payload.
func signedBytes(m *wireMsg) []byte {
	b := make([]byte, 0, 32+len(m.Origin)+len(m.Payload))
	b = append(b, "gossip-msg-v1\x00"...)
	b = binary.AppendUvarint(b, uint64(len(m.Origin)))
	b = append(b, m.Origin...)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Stamp))
	return append(b, m.Payload...)
}
