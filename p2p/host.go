package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Timing of discovery. Not configurable: they only pace background work.
const (
	bootstrapMinBackoff = time.Second
	bootstrapMaxBackoff = time.Minute
	// bootstrapRecheck is how often the bootstrap loop looks at the peer count when it
	// has peers (it is also woken when the last peer leaves).
	bootstrapRecheck = 30 * time.Second
	dialTimeout      = 10 * time.Second
	// mdnsRestart is how often mDNS discovery is restarted while there are no peers.
	mdnsRestart     = 5 * time.Second
	connGracePeriod = 30 * time.Second
)

var (
	// ErrNoPeers is matched (errors.Is) by DHT operations that cannot start because the
	// routing table is empty: the host knows no other dray peer yet.
	ErrNoPeers = errors.New("p2p: no peers in the DHT routing table")
)

// Host is a dray peer's network endpoint: a libp2p host with the DHT, GossipSub,
// discovery and peer events. It is safe for concurrent use.
type Host struct {
	h        host.Host
	ownsHost bool
	rm       network.ResourceManager // closed by Close when we built it
	dht      *dht.IpfsDHT
	ann      *announcer // DHT announcements (Announce)
	ps       *pubsub.PubSub
	mdnsMu   sync.Mutex // guards mdns, restarted by mdnsLoop
	mdns     mdns.Service
	log      *slog.Logger
	cfg      Config
	boot     []peer.AddrInfo

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connSub   event.Subscription
	events    *eventQueue
	eventsRun bool          // the event queue's goroutine was started (it closes events.out)
	kick      chan struct{} // wakes the bootstrap loop when the last peer leaves

	mu      sync.Mutex
	topics  map[string]*gossipTopic
	dialing map[peer.ID]struct{} // mDNS dials in flight
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// New starts a Host. Unless cfg.Host is set it builds a libp2p host: the identity from
// cfg.DataDir, TCP and QUIC transports (TCP only with a swarm key), TLS and Noise
// security, yamux, the connection manager and a resource manager with the limits of
// ResourceLimits. It then listens (see DefaultListen for the port fallback), starts the
// Kademlia DHT in server mode under cfg.ProtocolPrefix, GossipSub, mDNS if asked, and
// dials the bootstrap peers in the background; New does not wait for them.
//
// ctx bounds start-up only; the Host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("p2p: start: %w", err)
	}
	boot, _ := cfg.bootstrapPeers()
	hctx, cancel := context.WithCancel(context.Background())
	n := &Host{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "p2p"),
		boot:    boot,
		ctx:     hctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
		topics:  make(map[string]*gossipTopic),
		dialing: make(map[peer.ID]struct{}),
		events:  newEventQueue(),
	}
	if err := n.start(ctx); err != nil {
		n.shutdown()
		return nil, err
	}
	return n, nil
}

func (n *Host) start(ctx context.Context) error {
	cfg := n.cfg
	if cfg.Host != nil {
		n.h = cfg.Host
	} else {
		if err := n.buildHost(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("p2p: start: %w", err)
	}
	sub, err := n.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(256), eventbus.Name("dray p2p peer events"))
	if err != nil {
		return fmt.Errorf("p2p: subscribe to peer events: %w", err)
	}
	n.connSub = sub

	kad, err := dht.New(n.h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(protocol.ID(cfg.ProtocolPrefix)),
		dht.BootstrapPeers(n.boot...),
	)
	if err != nil {
		return fmt.Errorf("p2p: start DHT: %w", err)
	}
	n.dht = kad
	ann, err := newAnnouncer(n.h, kad, cfg.AnnounceBacklog, cfg.AnnounceWorkers, n.log)
	if err != nil {
		return err
	}
	n.ann = ann
	n.ann.start()
	// Peer events are buffered by the subscription until here; onPeerEvent uses n.ann.
	n.eventsRun = true
	n.wg.Go(func() { n.events.run(sub.Out(), n.ctx.Done(), n.onPeerEvent) })

	ps, err := pubsub.NewGossipSub(n.ctx, n.h,
		pubsub.WithMaxMessageSize(cfg.MaxMessageSize+pubsubOverhead),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		// A host's own messages go to every known subscriber of the topic, not only
		// its mesh peers: beacons are small, and a message published before the mesh
		// has formed (the first heartbeat) would otherwise be lost.
		pubsub.WithFloodPublish(true),
		// Peers find a topic's other subscribers through the DHT (rendezvous
		// records under the topic name): in a large swarm split into shard
		// topics, a peer is not connected to its shard's peers by chance.
		pubsub.WithDiscovery(drouting.NewRoutingDiscovery(kad)),
	)
	if err != nil {
		return fmt.Errorf("p2p: start GossipSub: %w", err)
	}
	n.ps = ps

	if cfg.MDNS {
		svc := mdns.NewMdnsService(n.h, MDNSServiceName, mdnsNotifee{n})
		if err := svc.Start(); err != nil {
			return fmt.Errorf("p2p: start mDNS discovery: %w", err)
		}
		n.mdns = svc
		n.wg.Go(n.mdnsLoop)
	}
	if len(n.boot) > 0 {
		n.wg.Go(n.bootstrapLoop)
	}
	n.log.Info("p2p host started", "peer", n.h.ID(), "addrs", n.h.Network().ListenAddresses(), "mdns", cfg.MDNS, "private", cfg.SwarmKeyFile != "")
	return nil
}

// buildHost creates the libp2p host and its listeners.
func (n *Host) buildHost() error {
	cfg := n.cfg
	var (
		key crypto.PrivKey
		err error
	)
	if cfg.DataDir != "" {
		key, err = LoadOrCreateIdentity(cfg.DataDir)
	} else {
		key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		n.log.Info("no data directory: using an ephemeral identity")
	}
	if err != nil {
		return err
	}
	var psk pnet.PSK
	if cfg.SwarmKeyFile != "" {
		if psk, err = LoadSwarmKey(cfg.SwarmKeyFile); err != nil {
			return err
		}
	}
	listen, _ := cfg.listenAddrs()
	if psk != nil {
		if dropped := len(listen) - len(tcpOnly(listen)); dropped > 0 {
			// A warning: the node does not listen where it was told to.
			n.log.Warn("private swarm key: QUIC listen addresses dropped (libp2p private networks cover TCP only); listening on TCP only", "dropped", dropped)
		}
		listen = tcpOnly(listen)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		return fmt.Errorf("p2p: connection manager: %w", err)
	}
	rm, err := newResourceManager(cfg.MaxMemory, cfg.MaxFD)
	if err != nil {
		cm.Close()
		return fmt.Errorf("p2p: resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("dray"),
	}
	if psk != nil {
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...) // closes cm and rm itself on failure
	if err != nil {
		return fmt.Errorf("p2p: build libp2p host: %w", err)
	}
	n.h, n.ownsHost, n.rm = h, true, rm
	return n.listen(listen)
}

// listen listens on each address; an address whose port is taken (or otherwise
// refused) is retried on a random port, an address that still fails is skipped. It is
// an error only if nothing listens at the end.
func (n *Host) listen(addrs []ma.Multiaddr) error {
	var errs []error
	for _, a := range addrs {
		err := n.h.Network().Listen(a)
		if err == nil {
			continue
		}
		if a0, ok := withPortZero(a); ok {
			before := n.h.Network().ListenAddresses()
			if err0 := n.h.Network().Listen(a0); err0 == nil {
				n.log.Warn("listen port unavailable, listening on a random port instead",
					"addr", a.String(), "using", newAddrs(before, n.h.Network().ListenAddresses()), "err", err)
				continue
			}
		}
		n.log.Warn("cannot listen, skipping address", "addr", a.String(), "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	if len(n.h.Network().ListenAddresses()) == 0 {
		return fmt.Errorf("p2p: could not listen on any address: %w", errors.Join(errs...))
	}
	return nil
}

func newAddrs(before, after []ma.Multiaddr) []string {
	var out []string
	for _, a := range after {
		if !ma.Contains(before, a) {
			out = append(out, a.String())
		}
	}
	return out
}

// ID returns the host's peer ID.
func (n *Host) ID() peer.ID { return n.h.ID() }

// Libp2p returns the underlying libp2p host, for stream handlers and dialling streams.
func (n *Host) Libp2p() host.Host { return n.h }

// DHT returns the host's Kademlia DHT.
func (n *Host) DHT() *dht.IpfsDHT { return n.dht }

// Addrs returns the host's full addresses, each ending in /p2p/<id>: every listen
// address, with unspecified IPs (0.0.0.0, ::) expanded to the interface addresses,
// loopback included.
func (n *Host) Addrs() []ma.Multiaddr {
	listen := n.h.Network().ListenAddresses()
	var addrs []ma.Multiaddr
	if ifaces, err := n.h.Network().InterfaceListenAddresses(); err == nil {
		addrs = ifaces
	} else if ifaceAddrs, err := manet.InterfaceMultiaddrs(); err == nil {
		addrs, _ = manet.ResolveUnspecifiedAddresses(listen, ifaceAddrs)
	}
	if len(addrs) == 0 {
		addrs = listen
	}
	for _, a := range n.h.Addrs() { // observed / announced addresses the host knows
		if !ma.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.h.ID(), Addrs: addrs})
	if err != nil {
		return nil
	}
	return out
}

// AddrInfo returns the host's ID and addresses (without /p2p), ready for Connect.
func (n *Host) AddrInfo() peer.AddrInfo {
	infos, err := peer.AddrInfosFromP2pAddrs(n.Addrs()...)
	if err != nil || len(infos) != 1 {
		return peer.AddrInfo{ID: n.h.ID()}
	}
	return infos[0]
}

// Peers returns the connected peers, sorted.
func (n *Host) Peers() []peer.ID {
	var out []peer.ID
	for _, p := range n.h.Network().Peers() {
		if n.h.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Connect dials ai (a no-op if already connected), past any dial backoff. Its addresses are remembered in the
// peerstore for later dials.
func (n *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if ai.ID == n.h.ID() {
		return fmt.Errorf("p2p: connect to %s: that is this host", ai.ID)
	}
	if n.isClosed() {
		return fmt.Errorf("p2p: connect to %s: %w", ai.ID, ErrClosed)
	}
	// An explicit connect dials now, even if an earlier dial to ai (one
	// the DHT made while peers learned each other's addresses, say)
	// failed and put its addresses in libp2p's dial backoff.
	ctx = network.WithForceDirectDial(ctx, "explicit connect")
	if err := n.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("p2p: connect to %s: %w", ai.ID, err)
	}
	return nil
}

// Provide announces in the DHT that this host holds c: the record goes to the peers
// closest to c. It fails with ErrNoPeers if the routing table is empty. Records expire
// (after 48 h in the DHT); the caller re-provides what it keeps.
//
// Provide waits for a full DHT lookup and the record sends, for one CID: use it
// when the caller needs to know. Announce queues CIDs without waiting and announces
// them in batches, many times faster.
func (n *Host) Provide(ctx context.Context, c cid.Cid) error {
	if !c.Defined() {
		return errors.New("p2p: provide: undefined CID")
	}
	if n.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("p2p: provide %s: %w", c, ErrNoPeers)
	}
	if err := n.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("p2p: provide %s: %w", c, err)
	}
	return nil
}

// FindProviders looks c up in the DHT and returns up to max providers with their known
// addresses (max <= 0: all that the lookup finds). This host is included if it provides
// c itself. With an empty routing table only the local record store is searched.
func (n *Host) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	if !c.Defined() {
		return nil, errors.New("p2p: find providers: undefined CID")
	}
	if max < 0 {
		max = 0
	}
	var out []peer.AddrInfo
	for ai := range n.dht.FindProvidersAsync(ctx, c, max) {
		out = append(out, ai)
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("p2p: find providers of %s: %w", c, err)
		}
	}
	return out, nil
}

// Join joins a GossipSub topic, or returns the Topic already joined under that name.
// Messages above the host's MaxMessageSize are refused both ways.
func (n *Host) Join(topic string) (Topic, error) {
	if topic == "" {
		return nil, errors.New("p2p: join: empty topic name")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("p2p: join %q: %w", topic, ErrClosed)
	}
	if t, ok := n.topics[topic]; ok {
		return t, nil
	}
	limit := n.cfg.MaxMessageSize
	if err := n.ps.RegisterTopicValidator(topic, sizeValidator(limit)); err != nil {
		return nil, fmt.Errorf("p2p: join %q: %w", topic, err)
	}
	pt, err := n.ps.Join(topic)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(topic)
		return nil, fmt.Errorf("p2p: join %q: %w", topic, err)
	}
	t := &gossipTopic{h: n, name: topic, t: pt, limit: limit, subs: make(map[*gossipSub]struct{})}
	n.topics[topic] = t
	return t, nil
}

func (n *Host) forgetTopic(t *gossipTopic) {
	n.mu.Lock()
	if n.topics[t.name] == t {
		delete(n.topics, t.name)
	}
	n.mu.Unlock()
	_ = n.ps.UnregisterTopicValidator(t.name)
}

// PeerEvents returns the channel of peer connected/disconnected notifications. There is
// one channel per Host (every call returns it), meant for one consumer such as the
// scheduler; it is closed by Close. Events never block the network: while the consumer
// lags they are coalesced per peer (the latest state wins), so the consumer always
// learns each peer's final state but may miss a quick disconnect-reconnect.
func (n *Host) PeerEvents() <-chan PeerEvent { return n.events.out }

func (n *Host) onPeerEvent(ev PeerEvent) {
	if ev.Kind == PeerConnected {
		n.ann.peerConnected() // the DHT provider starts with the first peer
	}
	if ev.Kind == PeerDisconnected && len(n.boot) > 0 && len(n.Peers()) == 0 {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
}

// Close stops discovery, leaves all topics, closes the DHT and, unless it was passed in
// Config.Host, the libp2p host. It is idempotent.
func (n *Host) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown() })
	return n.closeErr
}

func (n *Host) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// shutdown releases whatever start managed to set up.
func (n *Host) shutdown() error {
	n.mu.Lock()
	n.closed = true
	topics := make([]*gossipTopic, 0, len(n.topics))
	for _, t := range n.topics {
		topics = append(topics, t)
	}
	n.mu.Unlock()

	var errs []error
	for _, t := range topics {
		if err := t.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	n.cancel() // stops GossipSub, the bootstrap and mDNS loops, mDNS dials and the event queue
	if n.ann != nil {
		n.ann.close() // before the DHT it uses
	}
	n.mdnsMu.Lock()
	if n.mdns != nil {
		if err := n.mdns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("p2p: close mDNS: %w", err))
		}
		n.mdns = nil
	}
	n.mdnsMu.Unlock()
	if n.dht != nil {
		if err := n.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("p2p: close DHT: %w", err))
		}
	}
	if n.connSub != nil {
		_ = n.connSub.Close()
	}
	if n.ownsHost && n.h != nil {
		if err := n.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("p2p: close libp2p host: %w", err))
		}
	}
	if n.rm != nil {
		_ = n.rm.Close()
	}
	n.wg.Wait()
	if !n.eventsRun {
		// The event queue never ran: close its channel for consumers ourselves.
		close(n.events.out)
	}
	return errors.Join(errs...)
}

// bootstrapLoop dials the bootstrap peers at start, then again (with exponential
// backoff) whenever the host has no peers.
func (n *Host) bootstrapLoop() {
	backoff := bootstrapMinBackoff
	for {
		wait := bootstrapRecheck
		if len(n.Peers()) == 0 {
			if n.dialBootstrap() {
				backoff = bootstrapMinBackoff
			} else {
				wait = backoff
				backoff = min(2*backoff, bootstrapMaxBackoff)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-n.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// dialBootstrap dials every bootstrap peer concurrently; it reports whether any
// connection succeeded, in which case the DHT routing table is refreshed.
func (n *Host) dialBootstrap() bool {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for _, ai := range n.boot {
		if ai.ID == n.h.ID() {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			defer cancel()
			if err := n.h.Connect(ctx, ai); err != nil {
				if n.ctx.Err() == nil {
					n.log.Warn("bootstrap dial failed", "peer", ai.ID, "err", err)
				}
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
			n.log.Debug("connected to bootstrap peer", "peer", ai.ID)
		})
	}
	wg.Wait()
	if ok > 0 {
		select {
		case <-n.dht.RefreshRoutingTable(): // just starts a refresh; don't wait for it
		default:
		}
	}
	return ok > 0
}

// mdnsLoop restarts mDNS discovery every mdnsRestart while the host has no peers. The
// libp2p mDNS browser stops querying after its first answer (often its own), so two
// peers that start at the same moment, or before the network is fully up, can miss
// each other; a fresh browser queries again.
func (n *Host) mdnsLoop() {
	t := time.NewTicker(mdnsRestart)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if len(n.Peers()) > 0 {
			continue
		}
		n.mdnsMu.Lock()
		if n.ctx.Err() != nil || n.mdns == nil {
			n.mdnsMu.Unlock()
			return
		}
		_ = n.mdns.Close()
		svc := mdns.NewMdnsService(n.h, MDNSServiceName, mdnsNotifee{n})
		if err := svc.Start(); err != nil {
			n.log.Warn("mDNS: restart failed", "err", err)
			n.mdns = nil
			n.mdnsMu.Unlock()
			return
		}
		n.mdns = svc
		n.mdnsMu.Unlock()
		n.log.Debug("mDNS: no peers, restarted discovery")
	}
}

// mdnsNotifee dials peers found on the LAN.
type mdnsNotifee struct{ n *Host }

// HandlePeerFound implements mdns.Notifee.
func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.h.ID() || n.h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	if _, busy := n.dialing[ai.ID]; busy {
		n.mu.Unlock()
		return
	}
	n.dialing[ai.ID] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.dialing, ai.ID)
			n.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		defer cancel()
		if err := n.h.Connect(ctx, ai); err != nil {
			if n.ctx.Err() == nil {
				n.log.Debug("mDNS: dial failed", "peer", ai.ID, "err", err)
			}
			return
		}
		n.log.Info("mDNS: connected to LAN peer", "peer", ai.ID)
	}()
}
