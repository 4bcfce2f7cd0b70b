package gossip

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gossip-dev/gossip/codec"
)

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrAlreadyRunning is returned by Run when the node is already running
	// or has run before: a Seed or Peer runs at most once.
	ErrAlreadyRunning = errors.New("gossip: Run called twice")
	// ErrStopped is returned by calls made after Run has returned.
	ErrStopped = errors.New("gossip: node stopped")
	// ErrNoSeeds is returned when a peer is given no seed addresses.
	ErrNoSeeds = errors.New("gossip: no seed addresses")
	// ErrPayloadTooLarge is returned by Broadcast for a payload over the
	// WithMaxPayload limit.
	ErrPayloadTooLarge = errors.New("gossip: payload too large")
	// ErrNoNeighbors is returned by Broadcast when the peer has no
	// neighbour to send to yet.
	ErrNoNeighbors = errors.New("gossip: no neighbours")
	// ErrNoMajority is wrapped by errors and events reporting that a peer
	// could not register with a majority of the seeds.
	ErrNoMajority = errors.New("gossip: no majority of seeds reachable")
	// ErrBadConfig is wrapped by every error about a seed list; see
	// ConfigError.
	ErrBadConfig = errors.New("gossip: bad configuration")
	// ErrBadOption is wrapped by errors from options given invalid values.
	ErrBadOption = errors.New("gossip: invalid option")
)

// JoinError is returned by Peer.Run when WithJoinTimeout expires before a
// majority of the seeds accepted the peer's registration.
type JoinError struct {
	// Need is the number of seeds that had to accept (⌊n/2⌋+1).
	Need int
	// Registered lists the seeds that did accept.
	Registered []string
	// Failed lists the seeds that did not answer or refused.
	Failed []string
}

// Error says how many seeds accepted and which failed.
func (e *JoinError) Error() string {
	return fmt.Sprintf("gossip: join: %d of %d needed seeds accepted (registered %v, failed %v)",
		len(e.Registered), e.Need, e.Registered, e.Failed)
}

// Unwrap makes errors.Is(err, ErrNoMajority) true for a JoinError.
func (e *JoinError) Unwrap() error { return ErrNoMajority }

// EventKind says what an Event reports. The zero value is invalid.
type EventKind uint8

// Event kinds. Peer events come from a Peer, seed events from a Seed.
const (
	// EventRegistered (peer): a seed accepted the registration. Addr is
	// the seed.
	EventRegistered EventKind = iota + 1
	// EventJoined (peer): a majority of the seeds accepted. Peers lists
	// the seeds registered with.
	EventJoined
	// EventRegisterFailed (peer): a registration round ended without a
	// majority; the peer retries with backoff. Err wraps ErrNoMajority.
	EventRegisterFailed
	// EventPeerList (peer): a seed sent its peer list. Addr is the seed,
	// Peers the list.
	EventPeerList
	// EventNeighborUp (peer): a neighbour link was established. Addr is the
	// neighbour; Reason is "outbound" or "inbound".
	EventNeighborUp
	// EventNeighborDown (peer): a neighbour link ended. Addr is the
	// neighbour; Reason says why ("dead", "left", "disconnected").
	EventNeighborDown
	// EventMessage (peer): a gossip message was received for the first
	// time and delivered. Origin is the peer that created it, From the
	// neighbour that relayed it, Seq its sequence number at the origin,
	// Stamp the origin's timestamp, Hops the number of links it crossed,
	// Payload its content.
	EventMessage
	// EventOriginated (peer): this peer created and sent a gossip message.
	// Seq, Stamp and Payload describe it; Peers lists the neighbours it was
	// sent to.
	EventOriginated
	// EventDeadReportSent (peer): a neighbour missed too many liveness
	// checks and was reported dead. Addr is the dead node, Stamp the
	// report's timestamp, Peers the seeds it was sent to.
	EventDeadReportSent
	// EventPeerRegistered (seed): a peer registered for the first time.
	// Addr is the peer; Peers is the peer list after the change.
	EventPeerRegistered
	// EventPeerListServed (seed): a peer was sent the peer list. Addr is
	// the peer.
	EventPeerListServed
	// EventDeadReportReceived (seed): a dead-node report arrived. Addr is
	// the reported node, From the reporter, Stamp the report's timestamp.
	// The seed then probes Addr itself before removing anything.
	EventDeadReportReceived
	// EventDeadReportRefuted (seed): the reported node answered the seed's
	// probe and is kept. Addr is the node, Peers the reporters.
	EventDeadReportRefuted
	// EventPeerRemoved (seed): a peer was removed from the peer list.
	// Addr is the peer, Reason why ("dead" after failed probes of a
	// majority of the seeds, "left", "banned"), Peers the peer list after
	// the change.
	EventPeerRemoved
	// EventBanned (seed or peer): a node's reputation fell to the ban
	// threshold; its frames are ignored for the ban duration. Addr is the
	// node.
	EventBanned
	// EventDeadReportConfirmed (seed): the reported node failed every one
	// of this seed's probes; the seed votes for its removal and tells the
	// other seeds. Addr is the node, Peers the reporters. The node is
	// removed (EventPeerRemoved) once a majority of the seeds voted.
	EventDeadReportConfirmed
)

var eventNames = [...]string{
	EventRegistered:          "registered",
	EventJoined:              "joined",
	EventRegisterFailed:      "register-failed",
	EventPeerList:            "peer-list",
	EventNeighborUp:          "neighbor-up",
	EventNeighborDown:        "neighbor-down",
	EventMessage:             "message",
	EventOriginated:          "originated",
	EventDeadReportSent:      "dead-report-sent",
	EventPeerRegistered:      "peer-registered",
	EventPeerListServed:      "peer-list-served",
	EventDeadReportReceived:  "dead-report-received",
	EventDeadReportRefuted:   "dead-report-refuted",
	EventPeerRemoved:         "peer-removed",
	EventBanned:              "banned",
	EventDeadReportConfirmed: "dead-report-confirmed",
}

// String returns a short lower-case name such as "message".
func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event reports something a node did or observed. Which fields are set
// depends on Kind (see the EventKind constants). An Event is a copy: the
// handler owns it, including Payload and Peers.
type Event struct {
	// Kind says what happened and so which fields are set.
	Kind EventKind
	// Time is the local time at which the node acted.
	Time time.Time
	// Node is the address of the node that emits the event.
	Node string
	// Addr is the subject: a seed, a neighbour, a registered or dead peer.
	Addr string
	// From is the node a message came from: the relaying neighbour of a
	// gossip message, the reporter of a dead-node report.
	From string
	// Origin is the peer that created a gossip message.
	Origin string
	// Seq is a gossip message's sequence number at its origin.
	Seq uint64
	// Hops is the number of links a gossip message crossed to get here.
	Hops int
	// Stamp is the timestamp a message carries: a gossip message's origin
	// time or a dead-node report's time.
	Stamp time.Time
	// Payload is a gossip message's content. It shares memory with the
	// copy the peer keeps and forwards: a handler must not modify it
	// (clone it to keep a changed copy).
	Payload []byte
	// Peers is a list of addresses (see the kind).
	Peers []string
	// Reason explains a link or membership change.
	Reason string
	// Err is set on failure events.
	Err error
}

// String renders the event as one human-readable line without the local
// time. Messages and dead-node reports start with the protocol's text
// formats, for example "1764081234.125:127.0.0.1:7001:3 from
// 127.0.0.1:7004" and "Dead Node:127.0.0.1:7002:1764081234.125:127.0.0.1:7001
// sent to seeds [127.0.0.1:7000]"; DeadNodeLine gives the bare line.
func (e Event) String() string {
	switch e.Kind {
	case EventRegistered:
		return "registered with seed " + e.Addr
	case EventJoined:
		return fmt.Sprintf("joined: registered with %d seeds %v", len(e.Peers), e.Peers)
	case EventRegisterFailed:
		return fmt.Sprintf("registration failed, retrying: %v", e.Err)
	case EventPeerList:
		return fmt.Sprintf("peer list from seed %s: %v", e.Addr, e.Peers)
	case EventNeighborUp:
		return fmt.Sprintf("neighbour connected: %s (%s)", e.Addr, e.Reason)
	case EventNeighborDown:
		return fmt.Sprintf("neighbour lost: %s (%s)", e.Addr, e.Reason)
	case EventMessage:
		return fmt.Sprintf("%s from %s", printable(e.Payload), e.From)
	case EventOriginated:
		return fmt.Sprintf("originated %s to %d neighbours", printable(e.Payload), len(e.Peers))
	case EventDeadReportSent:
		return fmt.Sprintf("%s sent to seeds %v", DeadNodeLine(e.Addr, e.Stamp, e.Node), e.Peers)
	case EventPeerRegistered:
		return fmt.Sprintf("registered peer %s; peer list %v", e.Addr, e.Peers)
	case EventPeerListServed:
		return "sent peer list to " + e.Addr
	case EventDeadReportReceived:
		return fmt.Sprintf("%s received from %s; probing", DeadNodeLine(e.Addr, e.Stamp, e.From), e.From)
	case EventDeadReportConfirmed:
		return fmt.Sprintf("dead-node report about %s confirmed: it failed this seed's probes; voting for its removal (reporters %v)", e.Addr, e.Peers)
	case EventDeadReportRefuted:
		return fmt.Sprintf("dead-node report about %s refuted: it answered the probe (reporters %v)", e.Addr, e.Peers)
	case EventPeerRemoved:
		return fmt.Sprintf("removed peer %s (%s); peer list %v", e.Addr, e.Reason, e.Peers)
	case EventBanned:
		return fmt.Sprintf("banned %s: reputation fell to the threshold", e.Addr)
	}
	return e.Kind.String()
}

// printable returns p as text when it is valid UTF-8 without control
// characters, and quoted otherwise.
func printable(p []byte) string {
	if utf8.Valid(p) && !strings.ContainsFunc(string(p), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return string(p)
	}
	return strconv.Quote(string(p))
}

// FormatStamp renders t as Unix seconds with millisecond precision, the
// colon-free timestamp used in the protocol's text formats.
func FormatStamp(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// DeadNodeLine renders the protocol's dead-node report line
// "Dead Node:<IP>:<Port>:<timestamp>:<reporter>" for the dead node's
// host:port address.
func DeadNodeLine(dead string, stamp time.Time, reporter string) string {
	return "Dead Node:" + dead + ":" + FormatStamp(stamp) + ":" + reporter
}

// SpecMessage returns the protocol's default gossip text
// "<timestamp>:<IP>:<Port>:<Msg#>" for the peer at host:port addr.
func SpecMessage(now time.Time, addr string, seq int) []byte {
	return []byte(FormatStamp(now) + ":" + addr + ":" + strconv.Itoa(seq))
}

// Option configures a Seed or a Peer. Options are applied in order, later
// ones overriding earlier ones; a nil Option is skipped. Options that only
// concern the other role are accepted and ignored, so one option list can
// serve both.
type Option func(*config) error

type config struct {
	logger  *slog.Logger
	codec   codec.Codec
	onEvent func(Event)
	seed    uint64
	seeded  bool

	// peer
	messages         int
	gossipInterval   time.Duration
	livenessInterval time.Duration
	maxMisses        int
	minDegree        int
	maxDegree        int
	degreeExponent   float64
	registerTimeout  time.Duration
	retryMin         time.Duration
	retryMax         time.Duration
	joinTimeout      time.Duration
	connectTimeout   time.Duration
	maintainInterval time.Duration
	refreshInterval  time.Duration
	seenSize         int
	seenTTL          time.Duration
	maxPayload       int
	maxHops          int
	messageFunc      func(now time.Time, addr string, seq int) []byte
	livenessRetry    time.Duration // 0: no retransmission; -1: interval/3
	antiEntropy      time.Duration // 0 disables
	cacheSize        int
	cacheTTL         time.Duration

	// seed
	probeTimeout  time.Duration
	probeAttempts int
	peerListLimit int
	maxPeers      int
	persistPath   string

	// abuse resistance
	frameRate, byteRate   float64
	frameBurst, byteBurst int
	originRate            float64
	originBurst           int
	halfLife              time.Duration
	banThreshold          float64
	banDuration           time.Duration
	groupPrefix           int
	groupLimit            int // seed: registrations per address group
	inboundPerGroup       int // peer: inbound neighbours per address group
	reportRate            float64
	reportBurst           int
	silenceWindow         time.Duration
	silenceMin            int
	powDifficulty         int
	identity              ed25519.PrivateKey
	signing               bool
	lazy                  bool
	lazyFlush             time.Duration
	graftTimeout          time.Duration
	eagerLinks            int
	selfPruning           bool
	relayWait             time.Duration
}

// Defaults. Each With* option documents the one it overrides.
const (
	// DefaultMessages is how many spec messages a peer originates.
	DefaultMessages = 10
	// DefaultGossipInterval is the period between a peer's spec messages.
	DefaultGossipInterval = 5 * time.Second
	// DefaultLivenessInterval is the period of liveness requests.
	DefaultLivenessInterval = 13 * time.Second
	// DefaultMaxMisses is how many consecutive unanswered liveness
	// requests make a neighbour dead.
	DefaultMaxMisses = 3
	// DefaultMinDegree is the number of neighbours a peer keeps at least.
	DefaultMinDegree = 2
	// DefaultMaxDegree caps a peer's neighbours.
	DefaultMaxDegree = 32
	// DefaultDegreeExponent is γ of the power law of dialled degrees.
	DefaultDegreeExponent = 2.5
	// DefaultRegisterTimeout is how long a peer waits for one seed.
	DefaultRegisterTimeout = 2 * time.Second
	// DefaultRetryMin is the first backoff after a failed registration round.
	DefaultRetryMin = 1 * time.Second
	// DefaultRetryMax caps the registration backoff.
	DefaultRetryMax = 30 * time.Second
	// DefaultConnectTimeout is how long a peer waits for a neighbour link.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultMaintainInterval is how often a peer short of neighbours asks
	// its seeds for candidates.
	DefaultMaintainInterval = 10 * time.Second
	// DefaultRefreshInterval is how often a peer renews its registrations.
	DefaultRefreshInterval = 60 * time.Second
	// DefaultSeenSize bounds the seen-set's entries.
	DefaultSeenSize = 100_000
	// DefaultSeenTTL is how long a seen-set entry is kept.
	DefaultSeenTTL = 10 * time.Minute
	// DefaultMaxPayload caps a gossip message's payload.
	DefaultMaxPayload = 64 << 10
	// DefaultMaxHops caps the links a gossip message may cross.
	DefaultMaxHops = 64
	// DefaultAntiEntropy is the period of digest exchanges with a random
	// neighbour.
	DefaultAntiEntropy = 20 * time.Second
	// DefaultCacheSize bounds the recent messages kept for anti-entropy.
	DefaultCacheSize = 1024
	// DefaultCacheTTL is how long a message stays in that cache.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultProbeTimeout is how long a seed waits for one probe's answer.
	DefaultProbeTimeout = 2 * time.Second
	// DefaultProbeAttempts is how many probes a seed sends a reported peer.
	DefaultProbeAttempts = 3
	// DefaultPeerListLimit caps the entries of one peer list.
	DefaultPeerListLimit = 512
	// DefaultMaxPeers caps a seed's registered peers.
	DefaultMaxPeers = 100_000
	// DefaultFrameRate is the frames per second accepted from one source.
	DefaultFrameRate = 2000
	// DefaultByteRate is the bytes per second accepted from one source.
	DefaultByteRate = 16 << 20
	// DefaultOriginRate is the new messages per second accepted from one
	// origin.
	DefaultOriginRate = 100
	// DefaultHalfLife is the half-life of reputation scores.
	DefaultHalfLife = 5 * time.Minute
	// DefaultBanThreshold is the score at which a node is banned.
	DefaultBanThreshold = -100
	// DefaultBanDuration is how long a ban lasts.
	DefaultBanDuration = 10 * time.Minute
	// DefaultGroupPrefix is the IPv4 prefix length of an address group.
	DefaultGroupPrefix = 24
	// DefaultGroupLimit caps a seed's registrations per address group.
	DefaultGroupLimit = 16
	// DefaultInboundPerGroup caps a peer's inbound neighbours per group.
	DefaultInboundPerGroup = 8
	// DefaultReportRate is the dead-node reports per second a seed takes
	// from one reporter.
	DefaultReportRate = 1
	// DefaultSilenceWindow is the window of the silent-neighbour check.
	DefaultSilenceWindow = time.Minute
	// DefaultPoWDifficulty is the registration puzzle's difficulty in
	// leading zero bits (a mean solve of 71 ms on one idle core here,
	// about twice that on a busy one).
	DefaultPoWDifficulty = 19
)

// MaxDegreeLimit is the largest value WithMinDegree and WithMaxDegree
// accept.
const MaxDegreeLimit = 1024

// Upper bounds of the other integer options.
const (
	maxMessages     = 1 << 20
	maxPayloadLimit = 1 << 30
	maxRate         = 1 << 30 // frames or messages per second
	maxByteRate     = 1 << 40
)

func newConfig(opts []Option) (*config, error) {
	c := &config{
		logger:           slog.Default().With("component", "gossip"),
		codec:            codec.Msgpack(),
		messages:         DefaultMessages,
		gossipInterval:   DefaultGossipInterval,
		livenessInterval: DefaultLivenessInterval,
		maxMisses:        DefaultMaxMisses,
		minDegree:        DefaultMinDegree,
		maxDegree:        DefaultMaxDegree,
		degreeExponent:   DefaultDegreeExponent,
		registerTimeout:  DefaultRegisterTimeout,
		retryMin:         DefaultRetryMin,
		retryMax:         DefaultRetryMax,
		connectTimeout:   DefaultConnectTimeout,
		maintainInterval: DefaultMaintainInterval,
		refreshInterval:  DefaultRefreshInterval,
		seenSize:         DefaultSeenSize,
		seenTTL:          DefaultSeenTTL,
		maxPayload:       DefaultMaxPayload,
		maxHops:          DefaultMaxHops,
		messageFunc:      SpecMessage,
		livenessRetry:    -1,
		antiEntropy:      DefaultAntiEntropy,
		cacheSize:        DefaultCacheSize,
		cacheTTL:         DefaultCacheTTL,
		probeTimeout:     DefaultProbeTimeout,
		probeAttempts:    DefaultProbeAttempts,
		peerListLimit:    DefaultPeerListLimit,
		maxPeers:         DefaultMaxPeers,
		frameRate:        DefaultFrameRate,
		frameBurst:       2 * DefaultFrameRate,
		byteRate:         DefaultByteRate,
		byteBurst:        2 * DefaultByteRate,
		originRate:       DefaultOriginRate,
		originBurst:      2 * DefaultOriginRate,
		halfLife:         DefaultHalfLife,
		banThreshold:     DefaultBanThreshold,
		banDuration:      DefaultBanDuration,
		groupPrefix:      DefaultGroupPrefix,
		groupLimit:       DefaultGroupLimit,
		inboundPerGroup:  DefaultInboundPerGroup,
		reportRate:       DefaultReportRate,
		silenceWindow:    DefaultSilenceWindow,
		silenceMin:       5,
		signing:          true,
		powDifficulty:    DefaultPoWDifficulty,
		lazyFlush:        50 * time.Millisecond,
		graftTimeout:     time.Second,
		eagerLinks:       DefaultEagerLinks,
		reportBurst:      10,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.minDegree > c.maxDegree {
		return nil, fmt.Errorf("%w: min degree %d above max degree %d", ErrBadOption, c.minDegree, c.maxDegree)
	}
	if c.livenessRetry < 0 {
		c.livenessRetry = c.livenessInterval / 3
	}
	if c.livenessRetry >= c.livenessInterval {
		return nil, fmt.Errorf("%w: liveness retransmit %v not below the interval %v", ErrBadOption, c.livenessRetry, c.livenessInterval)
	}
	if c.cacheTTL > c.seenTTL {
		return nil, fmt.Errorf("%w: message cache ttl %v above the seen-set ttl %v", ErrBadOption, c.cacheTTL, c.seenTTL)
	}
	if c.retryMin > c.retryMax {
		return nil, fmt.Errorf("%w: retry backoff min %v above max %v", ErrBadOption, c.retryMin, c.retryMax)
	}
	return c, nil
}

func durationOpt(name string, d time.Duration, set func(*config, time.Duration)) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %v", ErrBadOption, name, d)
		}
		set(c, d)
		return nil
	}
}

// intOpt checks n against [min, max]. Every integer option has an upper
// bound too: a huge value would otherwise overflow a derived burst or make
// a loop over the range run for ever.
func intOpt(name string, n, min, max int, set func(*config, int)) Option {
	return func(c *config) error {
		if n < min || n > max {
			return fmt.Errorf("%w: %s must be in [%d, %d], got %d", ErrBadOption, name, min, max, n)
		}
		set(c, n)
		return nil
	}
}

// WithLogger sets the structured logger. Default:
// slog.Default().With("component", "gossip"). Per-message chatter is logged
// at Debug, degraded conditions at Warn.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrBadOption)
		}
		c.logger = l
		return nil
	}
}

// WithCodec sets the wire codec. Default: codec.Msgpack(). Every node of a
// network must use the same codec. A codec that also implements
// codec.AppendMarshaler (as the default does) encodes outbound frames into
// a reused buffer, which relies on the transport not retaining a frame
// after Send returns, as transport.Transport requires.
func WithCodec(cd codec.Codec) Option {
	return func(c *config) error {
		if cd == nil {
			return fmt.Errorf("%w: nil codec", ErrBadOption)
		}
		c.codec = cd
		return nil
	}
}

// WithEventHandler sets fn to receive the node's events. fn runs on a
// goroutine of its own, started while events are waiting for it, in
// order, never concurrently with itself, never under a lock and never on
// the protocol loop: a slow fn delays later events, not the protocol. Events queued when Run stops are still delivered before Run
// returns. Default: no handler.
func WithEventHandler(fn func(Event)) Option {
	return func(c *config) error {
		c.onEvent = fn
		return nil
	}
}

// WithRandSeed makes the node's random choices (seed order, neighbour
// choice, degree targets) reproducible for a given order of inputs.
// Default: a random seed.
func WithRandSeed(seed uint64) Option {
	return func(c *config) error {
		c.seed, c.seeded = seed, true
		return nil
	}
}

// WithMessages sets how many spec gossip messages a peer originates, one per
// gossip interval once it has neighbours (default 10; 0 leaves only
// Broadcast).
func WithMessages(n int) Option {
	return intOpt("messages", n, 0, maxMessages, func(c *config, v int) { c.messages = v })
}

// WithMessageFunc sets how a peer builds the text of its seq-th spec
// message (seq counts from 1). Default: SpecMessage,
// "<timestamp>:<IP>:<Port>:<Msg#>".
func WithMessageFunc(fn func(now time.Time, addr string, seq int) []byte) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("%w: nil message func", ErrBadOption)
		}
		c.messageFunc = fn
		return nil
	}
}

// WithGossipInterval sets the period between a peer's spec messages
// (default 5s).
func WithGossipInterval(d time.Duration) Option {
	return durationOpt("gossip interval", d, func(c *config, v time.Duration) { c.gossipInterval = v })
}

// WithLivenessInterval sets the period of liveness requests to each
// neighbour (default 13s).
func WithLivenessInterval(d time.Duration) Option {
	return durationOpt("liveness interval", d, func(c *config, v time.Duration) { c.livenessInterval = v })
}

// WithMaxMisses sets how many consecutive unanswered liveness requests make
// a neighbour dead (default 3).
func WithMaxMisses(n int) Option {
	return intOpt("max misses", n, 1, 1000, func(c *config, v int) { c.maxMisses = v })
}

// WithMinDegree sets the number of neighbours a peer keeps at least, while
// enough peers are known (default 2, so that no single failure isolates a
// peer; at most MaxDegreeLimit).
func WithMinDegree(n int) Option {
	return intOpt("min degree", n, 1, MaxDegreeLimit, func(c *config, v int) { c.minDegree = v })
}

// WithMaxDegree caps a peer's neighbours, inbound and outbound together
// (default 32, at most MaxDegreeLimit). A peer at the cap refuses new
// neighbours.
func WithMaxDegree(n int) Option {
	return intOpt("max degree", n, 1, MaxDegreeLimit, func(c *config, v int) { c.maxDegree = v })
}

// WithDegreeExponent sets γ of the power law P(k) ∝ k^-γ from which a peer
// draws how many neighbours it dials, between the min and max degree
// (default 2.5). Larger values make high targets rarer.
func WithDegreeExponent(g float64) Option {
	return func(c *config) error {
		if !(g >= 1 && g <= 10) {
			return fmt.Errorf("%w: degree exponent must be in [1, 10], got %v", ErrBadOption, g)
		}
		c.degreeExponent = g
		return nil
	}
}

// WithLivenessRetransmit makes a peer resend an unanswered liveness
// request once, d after the first copy, within the same round, so that one
// lost frame on a lossy link does not count as a miss; a round is missed
// only if neither copy is answered. Default: a third of the liveness
// interval; 0 disables retransmission. Over TCP, which does not lose
// frames on a live connection, it changes nothing.
func WithLivenessRetransmit(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: liveness retransmit must not be negative, got %v", ErrBadOption, d)
		}
		c.livenessRetry = d
		return nil
	}
}

// WithAntiEntropy sets how often a peer exchanges a digest of recent
// message IDs with one random neighbour, pulling the messages it lacks and
// pushing those the neighbour lacks; a peer also does so with every
// neighbour it dials. This repairs losses and partitions within the
// message cache's window. Default 20s; 0 disables the periodic exchange.
func WithAntiEntropy(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: anti-entropy interval must not be negative, got %v", ErrBadOption, d)
		}
		c.antiEntropy = d
		return nil
	}
}

// WithMessageCache bounds the recent messages a peer keeps to repair its
// neighbours by anti-entropy: at most size messages, each kept for ttl
// (default 1024 messages, 5 minutes). ttl must not exceed the seen-set ttl.
// size 0 disables the cache and so anti-entropy. With lazy push the cache
// also answers grafts, and keeps each message for as long as one may come
// (the lazy flush interval plus three graft timeouts) even beyond size, up
// to 4×size messages: a burst faster than that is repaired too.
func WithMessageCache(size int, ttl time.Duration) Option {
	return func(c *config) error {
		if size < 0 || size > maxDigest || ttl <= 0 {
			return fmt.Errorf("%w: message cache needs 0 <= size <= %d and ttl > 0, got %d, %v", ErrBadOption, maxDigest, size, ttl)
		}
		c.cacheSize, c.cacheTTL = size, ttl
		return nil
	}
}

// WithRegisterTimeout sets how long a peer waits for a seed to accept its
// registration before trying another seed (default 2s).
func WithRegisterTimeout(d time.Duration) Option {
	return durationOpt("register timeout", d, func(c *config, v time.Duration) { c.registerTimeout = v })
}

// WithRetryBackoff sets the backoff between registration rounds that found
// no majority: it starts at min and doubles up to max (default 1s to 30s).
func WithRetryBackoff(min, max time.Duration) Option {
	return func(c *config) error {
		if min <= 0 || max <= 0 {
			return fmt.Errorf("%w: retry backoff must be positive, got %v..%v", ErrBadOption, min, max)
		}
		c.retryMin, c.retryMax = min, max
		return nil
	}
}

// WithJoinTimeout makes Peer.Run fail with a *JoinError when no majority of
// the seeds has accepted the peer within d. Default 0: retry forever,
// reporting each failed round with an EventRegisterFailed event and a
// warning.
func WithJoinTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: join timeout must not be negative, got %v", ErrBadOption, d)
		}
		c.joinTimeout = d
		return nil
	}
}

// WithConnectTimeout sets how long a peer waits for a chosen neighbour to
// accept the link before choosing another (default 2s).
func WithConnectTimeout(d time.Duration) Option {
	return durationOpt("connect timeout", d, func(c *config, v time.Duration) { c.connectTimeout = v })
}

// WithMaintainInterval sets how often a peer with fewer than the minimum
// neighbours asks its seeds for a fresh peer list (default 10s).
func WithMaintainInterval(d time.Duration) Option {
	return durationOpt("maintain interval", d, func(c *config, v time.Duration) { c.maintainInterval = v })
}

// WithRefreshInterval sets how often a peer renews its registrations, so
// that a seed that lost its list learns it again (default 60s).
func WithRefreshInterval(d time.Duration) Option {
	return durationOpt("refresh interval", d, func(c *config, v time.Duration) { c.refreshInterval = v })
}

// WithSeenSet bounds the set of seen message hashes: at most size entries,
// each kept for ttl (default 100000 entries, 10 minutes). A message older
// than ttl that arrives again is treated as new, so ttl should exceed the
// time a message takes to cross the network.
func WithSeenSet(size int, ttl time.Duration) Option {
	return func(c *config) error {
		if size < 1 || size > 1<<24 || ttl <= 0 {
			return fmt.Errorf("%w: seen set needs size in [1, %d] and ttl > 0, got %d, %v", ErrBadOption, 1<<24, size, ttl)
		}
		c.seenSize, c.seenTTL = size, ttl
		return nil
	}
}

// WithMaxPayload caps the payload of a gossip message, originated or
// relayed (default 64 KiB).
func WithMaxPayload(n int) Option {
	return intOpt("max payload", n, 1, maxPayloadLimit, func(c *config, v int) { c.maxPayload = v })
}

// WithMaxHops sets how many links a gossip message may cross; a message
// arriving with more is dropped (default 64).
func WithMaxHops(n int) Option {
	return intOpt("max hops", n, 1, 1<<16, func(c *config, v int) { c.maxHops = v })
}

// WithProbe sets how a seed checks a peer reported dead: it sends up to
// attempts liveness requests, each answered within timeout or counted as
// missed, and removes the peer only if none is answered (default 3 attempts
// of 2s).
func WithProbe(attempts int, timeout time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 || attempts > 100 || timeout <= 0 {
			return fmt.Errorf("%w: probe needs attempts in [1, 100] and timeout > 0, got %d, %v", ErrBadOption, attempts, timeout)
		}
		c.probeAttempts, c.probeTimeout = attempts, timeout
		return nil
	}
}

// WithPeerListLimit caps how many peers a seed returns in one peer list; a
// longer list is sampled at random (default 512).
func WithPeerListLimit(n int) Option {
	return intOpt("peer list limit", n, 1, 1<<16, func(c *config, v int) { c.peerListLimit = v })
}

// WithPersistFile makes a seed keep its peer list in the file at path: it
// loads the list when Run starts and rewrites the file (write, sync,
// rename; CRC-32C checksummed) at most once a second after changes. A
// missing file is an empty start; a torn or corrupt one is logged as an
// error wrapping ErrCorruptState and also gives an empty start. Default:
// no file (peers re-register within one refresh interval anyway).
func WithPersistFile(path string) Option {
	return func(c *config) error {
		if path == "" {
			return fmt.Errorf("%w: empty persist file path", ErrBadOption)
		}
		c.persistPath = path
		return nil
	}
}

// WithRateLimit sets the per-source limits every node applies to inbound
// frames before decoding them: frames per second and bytes per second, each
// with a burst of twice the rate (default 2000 frames/s and 16 MiB/s). A
// frame over a limit is dropped and costs the source reputation.
func WithRateLimit(framesPerSec, bytesPerSec int) Option {
	return func(c *config) error {
		if framesPerSec < 1 || bytesPerSec < 1 || framesPerSec > maxRate || bytesPerSec > maxByteRate {
			return fmt.Errorf("%w: rate limits must be in [1, %d] frames/s and [1, %d] bytes/s, got %d, %d",
				ErrBadOption, maxRate, maxByteRate, framesPerSec, bytesPerSec)
		}
		c.frameRate, c.frameBurst = float64(framesPerSec), 2*framesPerSec
		c.byteRate, c.byteBurst = float64(bytesPerSec), 2*bytesPerSec
		return nil
	}
}

// WithOriginRate caps how many new messages per second a peer accepts from
// one origin, with a burst of twice that (default 100/s). Messages over the
// cap are dropped, not forwarded; when the origin itself sent them it loses
// reputation. Applications that broadcast faster must raise it on every
// peer.
func WithOriginRate(msgsPerSec int) Option {
	return intOpt("origin rate", msgsPerSec, 1, maxRate, func(c *config, v int) {
		c.originRate, c.originBurst = float64(v), 2*v
	})
}

// WithReputation sets how scores behave: they decay towards zero with
// halfLife, and a node whose score reaches threshold (negative) is
// disconnected and ignored for banFor (default 5 minutes, -100, 10
// minutes). See the package documentation for the weights.
func WithReputation(halfLife time.Duration, threshold float64, banFor time.Duration) Option {
	return func(c *config) error {
		if halfLife <= 0 || threshold >= 0 || banFor <= 0 {
			return fmt.Errorf("%w: reputation needs halfLife > 0, threshold < 0, banFor > 0", ErrBadOption)
		}
		c.halfLife, c.banThreshold, c.banDuration = halfLife, threshold, banFor
		return nil
	}
}

// WithAddressGroups sets how addresses are grouped against Sybil and
// eclipse attacks: IPv4 addresses by their /prefix (default 24; IPv6 by
// /48), a seed registers at most perSeed peers of one group (default 16) and
// hands out peer lists in which no group exceeds a tenth of the entries (or
// 8, if more), and a peer accepts at most inboundPerPeer inbound neighbours
// of one group (default 8).
func WithAddressGroups(prefix, perSeed, inboundPerPeer int) Option {
	return func(c *config) error {
		if prefix < 8 || prefix > 32 || perSeed < 1 || inboundPerPeer < 1 || perSeed > 1<<24 || inboundPerPeer > 1<<24 {
			return fmt.Errorf("%w: address groups need prefix in [8, 32] and limits in [1, %d]", ErrBadOption, 1<<24)
		}
		c.groupPrefix, c.groupLimit, c.inboundPerGroup = prefix, perSeed, inboundPerPeer
		return nil
	}
}

// WithSilenceCheck sets how a peer finds neighbours that accept links but
// relay nothing: at the end of every window (checked on the maintain
// interval), if at least minNew new messages arrived from others, every
// neighbour linked for the whole window that sent no gossip frame, not even
// a duplicate, is dropped and not dialed again for the ban duration
// (default 1 minute, 5 messages; a zero window disables the check). The
// messages must also come from at least 3 distinct origins: with fewer, an
// honest neighbour downstream of this peer on every path from them sends
// nothing back, and looks silent.
func WithSilenceCheck(window time.Duration, minNew int) Option {
	return func(c *config) error {
		if window < 0 || minNew < 1 || minNew > 1<<20 {
			return fmt.Errorf("%w: silence check needs window >= 0 and minNew >= 1", ErrBadOption)
		}
		c.silenceWindow, c.silenceMin = window, minNew
		return nil
	}
}

// WithIdentity sets the node's Ed25519 key. Peers sign the messages they
// originate with it and register its public key with the seeds, which hand
// it out with their peer lists so that receivers can tell a forged origin.
// Default: a key generated when the node is created (so a restarted process
// has a new identity unless the application keeps its key).
func WithIdentity(key ed25519.PrivateKey) Option {
	return func(c *config) error {
		if len(key) != ed25519.PrivateKeySize {
			return fmt.Errorf("%w: identity must be an Ed25519 private key", ErrBadOption)
		}
		c.identity = key
		return nil
	}
}

// WithProofOfWork sets the difficulty, in leading zero bits of a SHA-256
// hash, of the puzzle a seed requires from a peer that registers a new
// address or key (renewals by the same key need none): about 2^d hashes,
// 71 ms of one idle core at the default 19 (BenchmarkSolveDifficulty in
// internal/pow). The puzzle is bound to a fresh seed nonce, the peer's key
// and its address, is single use and expires after 30 s; the difficulty
// rises by a bit per doubling of the solve rate above 100 a minute, up to
// 24. 0 disables the requirement. A seed-side option.
func WithProofOfWork(difficulty int) Option {
	return func(c *config) error {
		if difficulty < 0 || difficulty > 24 {
			return fmt.Errorf("%w: proof-of-work difficulty must be in [0, 24], got %d", ErrBadOption, difficulty)
		}
		c.powDifficulty = difficulty
		return nil
	}
}

// WithSignatures turns message signing and verification on or off (default
// on). With it on, a peer drops gossip that is unsigned, badly signed,
// signed by a key other than the one the seeds list for its origin, or
// stamped outside the replay window (older than the mean of the seen-set
// and message-cache lifetimes, 7.5 minutes by default, or more than a
// minute ahead), and the sender loses reputation. Every node of a network
// must use the same setting. Off saves about 40 µs per originated message
// and 90-100 µs per received one (BenchmarkSignMessage,
// BenchmarkVerifyMessage).
func WithSignatures(on bool) Option {
	return func(c *config) error {
		c.signing = on
		return nil
	}
}

// DefaultEagerLinks is how many of the links a lazy-push peer dials start
// eager; see WithEagerLinks.
const DefaultEagerLinks = 1

// WithEagerLinks sets how many of the links it dials a lazy-push peer
// (WithLazyPush) makes eager from the start (default DefaultEagerLinks):
// the first pushes both ways, the next k−1 push only to this peer. Its
// other links start lazy both ways and carry announcements until a graft
// makes them push. Of the peers one round of dials picks, the best
// connected get the eager links. Peers dial peers that joined before them,
// so the links eager both ways connect the overlay: the first message need
// not flood every link while the tree forms, and a peer that the eager
// links do not reach grafts a neighbour that announces the message. In the
// simulator at 10 000 peers, k=1 sends 1.07 payloads per delivery over ten
// messages (1.23 at 5 % loss) with 12 hops to the last peer; k=2 gives
// each peer a second way in and a shallower tree (9 hops) for 1.18 (1.33
// at 5 % loss). 0 makes every link start eager both ways (the first
// message floods, and the tree emerges from its duplicates). It has no
// effect on flooding peers, and peers with different settings
// interoperate.
func WithEagerLinks(k int) Option {
	return func(c *config) error {
		if k < 0 {
			return fmt.Errorf("%w: eager links %d", ErrBadOption, k)
		}
		c.eagerLinks = k
		return nil
	}
}

// WithSelfPruning makes a flooding peer skip, when it forwards a message
// it got from neighbour A, the neighbours it shares with A: A sent them the
// message itself. This is the self-pruning of flooding in ad hoc networks
// (Lim and Kim, 2001). Peers with it on tell each neighbour whom they are
// linked to whenever that changes, on the same ordered link as their
// gossip, and number those lists; a message carries the number of the
// list its sender forwarded it under. A peer skips neighbour B for A's
// message only if it holds that list of A's and both A and B say they are
// linked to each other. Every peer still gets every message by push, with
// the same hops; what goes are the duplicates that crossed a triangle.
// Copies sent by anti-entropy are never pruned from, and a peer whose
// neighbours have it off forwards to them as usual. Every peer in the
// network should run a version that knows the option, on or off: older
// ones take the neighbour lists for malformed frames and hold them against
// the sender's reputation.
//
// It trusts a neighbour's word that it forwards to its own neighbours: a
// neighbour that lies about its links, or forwards to some and not to
// others, can keep a message from the peers it shares with this one until
// anti-entropy repairs it (see SECURITY.md). On a lossy transport it also
// removes the redundancy that hides a lost copy. Default off: the spec's
// rule is to forward to every neighbour but the sender. It has no effect
// with lazy push, which sends one payload per delivery already.
func WithSelfPruning(on bool) Option {
	return func(c *config) error {
		c.selfPruning = on
		return nil
	}
}

// WithRelayWait makes a flooding peer wait d after the first copy of a
// message before relaying it. The message is delivered at once; only the
// relay waits. The relay then skips every neighbour that sent the peer a
// copy meanwhile, and, with WithSelfPruning, every neighbour one of them
// shares with the peer: copies that crossed a triangle a moment late are
// not sent again. It costs d of latency per hop for fewer copies per
// delivery, and like self-pruning loses no delivery while links hold.
// Default 0: relay at once. At most 1s. It has no effect with lazy push.
func WithRelayWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > time.Second {
			return fmt.Errorf("%w: relay wait must be in [0, 1s], got %v", ErrBadOption, d)
		}
		c.relayWait = d
		return nil
	}
}

// WithLazyPush switches a peer from flooding to Plumtree-style lazy push:
// a message travels in full only along "eager" links, which form a spanning
// tree as links that bring duplicates are pruned; the other links carry
// batched announcements of message IDs (once per flush interval, on a
// schedule offset from peer to peer; the first on each link at once), and a peer that hears of a message it does not
// receive within graftTimeout grafts the link it heard of it on, pulling
// the message and making the link eager again (after one flush interval
// while no link has pushed to it yet). This sends about one payload per delivery instead of about
// degree-1, at the cost of latency after losses (default off: flooding, as
// the spec describes; 50 ms flush and 1 s graft timeout when on). Peers of
// both modes interoperate.
func WithLazyPush(flush, graftTimeout time.Duration) Option {
	return func(c *config) error {
		if flush <= 0 || graftTimeout <= 0 {
			return fmt.Errorf("%w: lazy push needs positive flush and graft timeout", ErrBadOption)
		}
		c.lazy, c.lazyFlush, c.graftTimeout = true, flush, graftTimeout
		return nil
	}
}

// WithMaxPeers caps how many peers a seed keeps registered; further
// registrations are refused (default 100000).
func WithMaxPeers(n int) Option {
	return intOpt("max peers", n, 1, 1<<24, func(c *config, v int) { c.maxPeers = v })
}

// ensureIdentity generates the node's key unless WithIdentity gave one.
func (c *config) ensureIdentity() error {
	if c.identity != nil {
		return nil
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return fmt.Errorf("gossip: generate identity: %w", err)
	}
	c.identity = key
	return nil
}

// repairWindow is how long after a message a neighbour may still graft
// it, or pull it with a want: every try, each a graft timeout apart, after
// the announcement's flush. The message cache keeps messages at least that
// long (see msgCache). Without lazy push, only anti-entropy asks for
// messages, and the window is 0.
func (c *config) repairWindow() time.Duration {
	if !c.lazy {
		return 0
	}
	return c.lazyFlush + maxRequestTries*c.graftTimeout
}

// maxAge is the replay window of signed messages: older ones are dropped.
// It lies between the message-cache lifetime (anti-entropy re-sends
// messages that old) and the seen-set lifetime (a replay after it would
// otherwise look new).
func (c *config) maxAge() time.Duration { return (c.seenTTL + c.cacheTTL) / 2 }

// maxSkew is how far ahead of the local clock a message may be stamped.
const maxSkew = time.Minute
