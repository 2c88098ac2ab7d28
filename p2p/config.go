package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultListen are the listen addresses used when Config.Listen is empty: all
// interfaces, TCP and QUIC, port 4001, IPv4 and IPv6. An address whose port is taken is
// replaced by the same address on a random port (and a log line says so); an address
// that cannot be listened on at all (say, IPv6 disabled) is skipped with a warning.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip6/::/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
}

// Defaults used by DefaultConfig and by New for zero fields.
const (
	// DefaultProtocolPrefix prefixes the DHT protocol IDs (/dray/kad/1.0.0), so dray
	// peers never join or answer IPFS's public DHT.
	DefaultProtocolPrefix = "/dray"
	// DefaultConnLow and DefaultConnHigh are the connection manager watermarks: above
	// High connections, the least useful are trimmed down to Low.
	DefaultConnLow  = 100
	DefaultConnHigh = 400
	// DefaultMaxMessageSize is the largest GossipSub message payload published or
	// accepted (load beacons and work offers are small).
	DefaultMaxMessageSize = 64 << 10
	// MDNSServiceName is the DNS-SD service name dray advertises and browses on the
	// LAN. It differs from libp2p's "_p2p._udp" so dray peers only find each other.
	MDNSServiceName = "_dray._udp"
	// IdentityFile is the name of the identity key file inside Config.DataDir.
	IdentityFile = "identity.key"
)

// ErrInvalidConfig is matched (errors.Is) by every error from Config.Validate.
var ErrInvalidConfig = errors.New("p2p: invalid config")

// Config configures a Host. The zero value is usable: zero fields take the defaults of
// DefaultConfig except MDNS, which stays off.
type Config struct {
	// DataDir holds the identity key at DataDir/identity.key (created with mode 0600 on
	// first start, reused afterwards so the peer ID is stable). Empty means an
	// ephemeral identity, new at every start.
	DataDir string
	// Listen are the multiaddrs to listen on; empty means DefaultListen.
	Listen []string
	// Bootstrap are multiaddrs that include /p2p/<id>. They are dialled at start and
	// re-dialled, with backoff, while the host has no peers.
	Bootstrap []string
	// MDNS turns on LAN discovery with the service name MDNSServiceName; found peers
	// are dialled.
	MDNS bool
	// SwarmKeyFile, when set, makes the host join only the private network whose
	// pre-shared key ("/key/swarm/psk/1.0.0/" format) is in that file. Private networks
	// run over TCP only, since QUIC has no PSK support: QUIC listen addresses are
	// dropped (with a log line) and QUIC is not dialled. A missing, unreadable or
	// malformed file makes New fail with an error naming the file.
	SwarmKeyFile string
	// ProtocolPrefix prefixes the DHT protocols (default "/dray"), so dray never joins
	// IPFS's DHT and separate dray swarms can be kept apart.
	ProtocolPrefix string
	// ConnLow and ConnHigh are the connection manager watermarks (defaults 100, 400).
	ConnLow, ConnHigh int
	// MaxMessageSize bounds GossipSub payloads, published and received (default 64 KiB).
	MaxMessageSize int
	// MaxMemory and MaxFD are the resource manager's budget for the whole host; zero
	// means 1/8 of the machine's RAM and 1/2 of the process's file descriptor limit.
	// See ResourceLimits.
	MaxMemory int64
	MaxFD     int
	// AnnounceBacklog bounds the CIDs waiting to be handed to the DHT provider
	// (Announce); past it the oldest are dropped. It also bounds the CIDs handed over
	// whose first record is not out yet (the backlog then waits). Zero means
	// DefaultAnnounceBacklog.
	AnnounceBacklog int
	// AnnounceWorkers sizes the DHT provider's worker pool: how many keyspace regions
	// are provided or reprovided at once. One worker is kept for the reprovide sweep
	// and one for new announcements, so values below 2 mean 2. Zero means
	// DefaultAnnounceWorkers.
	AnnounceWorkers int
	// Logger receives the host's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Host, when non-nil, is used instead of building one (the simulator passes
	// mocknet hosts); DataDir, Listen, SwarmKeyFile, connection manager and resource
	// limits are then ignored. Close does not close a Host passed in: its creator does.
	Host host.Host
}

// DefaultConfig returns the configuration of a normal dray peer: DefaultListen, mDNS on,
// the "/dray" protocol prefix, and the default watermarks and message size.
func DefaultConfig() Config {
	return Config{
		Listen:          append([]string(nil), DefaultListen...),
		MDNS:            true,
		ProtocolPrefix:  DefaultProtocolPrefix,
		ConnLow:         DefaultConnLow,
		ConnHigh:        DefaultConnHigh,
		MaxMessageSize:  DefaultMaxMessageSize,
		AnnounceBacklog: DefaultAnnounceBacklog,
		AnnounceWorkers: DefaultAnnounceWorkers,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if len(c.Listen) == 0 {
		c.Listen = append([]string(nil), DefaultListen...)
	}
	if c.ProtocolPrefix == "" {
		c.ProtocolPrefix = DefaultProtocolPrefix
	}
	if c.ConnLow == 0 && c.ConnHigh == 0 {
		c.ConnLow, c.ConnHigh = DefaultConnLow, DefaultConnHigh
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.AnnounceBacklog == 0 {
		c.AnnounceBacklog = DefaultAnnounceBacklog
	}
	if c.AnnounceWorkers == 0 {
		c.AnnounceWorkers = DefaultAnnounceWorkers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first problem with c, after defaults are applied for zero fields.
// Every error matches ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := c.listenAddrs(); err != nil {
		return err
	}
	if _, err := c.bootstrapPeers(); err != nil {
		return err
	}
	p := c.ProtocolPrefix
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " \t\n") {
		return fmt.Errorf("%w: protocol prefix %q must start with '/', not end with '/', and have no spaces", ErrInvalidConfig, p)
	}
	if c.ConnLow < 0 || c.ConnHigh <= 0 || c.ConnLow > c.ConnHigh {
		return fmt.Errorf("%w: connection watermarks low=%d high=%d: want 0 <= low <= high and high > 0", ErrInvalidConfig, c.ConnLow, c.ConnHigh)
	}
	if c.MaxMessageSize < 0 || c.MaxMessageSize > maxPubsubMessage {
		return fmt.Errorf("%w: message size limit %d outside 1..%d", ErrInvalidConfig, c.MaxMessageSize, maxPubsubMessage)
	}
	if c.MaxMemory < 0 || c.MaxFD < 0 {
		return fmt.Errorf("%w: negative resource budget (memory %d, fds %d)", ErrInvalidConfig, c.MaxMemory, c.MaxFD)
	}
	if c.AnnounceBacklog < 0 || c.AnnounceWorkers < 0 || c.AnnounceWorkers > maxAnnounceWorkers {
		return fmt.Errorf("%w: announce backlog %d and workers %d: want backlog >= 0 and workers in 0..%d", ErrInvalidConfig, c.AnnounceBacklog, c.AnnounceWorkers, maxAnnounceWorkers)
	}
	if c.Host == nil && c.SwarmKeyFile != "" {
		addrs, _ := c.listenAddrs()
		if len(tcpOnly(addrs)) == 0 {
			return fmt.Errorf("%w: a swarm key needs a TCP listen address (QUIC has no private network support), got %v", ErrInvalidConfig, c.Listen)
		}
	}
	return nil
}

// maxAnnounceWorkers caps AnnounceWorkers.
const maxAnnounceWorkers = 256

// maxPubsubMessage caps MaxMessageSize: GossipSub messages are hints, not payloads.
const maxPubsubMessage = 16 << 20

func (c Config) listenAddrs() ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(c.Listen))
	for _, s := range c.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %w", ErrInvalidConfig, s, err)
		}
		if !isTCP(a) && !isQUIC(a) {
			return nil, fmt.Errorf("%w: listen address %q: only TCP and QUIC (quic-v1) are supported", ErrInvalidConfig, s)
		}
		out = append(out, a)
	}
	return out, nil
}

func (c Config) bootstrapPeers() ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(c.Bootstrap))
	for _, s := range c.Bootstrap {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q: %w", ErrInvalidConfig, s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q must end in /p2p/<peer id>: %w", ErrInvalidConfig, s, err)
		}
		addrs = append(addrs, a)
	}
	ais, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap addresses: %w", ErrInvalidConfig, err)
	}
	return ais, nil
}

func hasProto(a ma.Multiaddr, code int) bool {
	for _, c := range a {
		if c.Protocol().Code == code {
			return true
		}
	}
	return false
}

func isTCP(a ma.Multiaddr) bool  { return hasProto(a, ma.P_TCP) }
func isQUIC(a ma.Multiaddr) bool { return hasProto(a, ma.P_QUIC_V1) }

func tcpOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if isTCP(a) {
			out = append(out, a)
		}
	}
	return out
}

// withPortZero returns a with its TCP or UDP port replaced by 0, and whether it had a
// non-zero port to replace.
func withPortZero(a ma.Multiaddr) (ma.Multiaddr, bool) {
	out := make(ma.Multiaddr, 0, len(a))
	changed := false
	for _, c := range a {
		code := c.Protocol().Code
		if (code == ma.P_TCP || code == ma.P_UDP) && c.Value() != "0" {
			z, err := ma.NewComponent(c.Protocol().Name, "0")
			if err != nil {
				return a, false
			}
			out = append(out, *z)
			changed = true
			continue
		}
		out = append(out, c)
	}
	return out, changed
}
