package memnet

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/p2p"
)

var (
	// ErrUnreachable is matched (errors.Is) by OpenStream and Connect when
	// the peer is unknown, closed, or cut off from this one.
	ErrUnreachable = errors.New("memnet: peer unreachable")
	// ErrProtocolNotSupported is matched by OpenStream when the peer does
	// not handle the protocol.
	ErrProtocolNotSupported = errors.New("memnet: protocol not supported")
)

// link names an unordered pair of peers.
type link struct{ a, b peer.ID }

func linkOf(a, b peer.ID) link {
	if b < a {
		a, b = b, a
	}
	return link{a, b}
}

// conn is a connection between two peers: the streams open on it.
type conn struct {
	streams map[*duplex]struct{}
}

// Network is an in-memory network of peers (see the package doc). It is
// safe for concurrent use.
type Network struct {
	// mu guards everything below and every Peer's fields but its event queue.
	mu      sync.Mutex
	peers   map[peer.ID]*Peer
	conns   map[link]*conn
	cut     map[link]bool
	holders map[string]map[peer.ID]struct{} // by multihash
	made    int                             // peers made, for their IDs
}

// New returns an empty network.
func New() *Network {
	return &Network{
		peers:   make(map[peer.ID]*Peer),
		conns:   make(map[link]*conn),
		cut:     make(map[link]bool),
		holders: make(map[string]map[peer.ID]struct{}),
	}
}

// AddPeer adds a peer, connected to nobody. Its ID is a real Ed25519 peer ID
// derived from its rank in nw: the i-th peer of every Network has the same ID.
func (nw *Network) AddPeer() *Peer {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	seed := sha256.Sum256(fmt.Appendf(nil, "dray memnet peer %d", nw.made))
	nw.made++
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		panic(fmt.Sprintf("memnet: peer key: %v", err)) // a 32-byte key always unmarshals
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		panic(fmt.Sprintf("memnet: peer ID: %v", err))
	}
	p := &Peer{
		nw:       nw,
		id:       id,
		handlers: make(map[string]func(p2p.Stream)),
		topics:   make(map[string]*topic),
		provides: make(map[string]struct{}),
		events:   newEventQueue(),
		done:     make(chan struct{}),
	}
	nw.peers[id] = p
	return p
}

// AddPeers adds k peers and connects each to every other.
func (nw *Network) AddPeers(k int) []*Peer {
	ps := make([]*Peer, k)
	for i := range ps {
		ps[i] = nw.AddPeer()
	}
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if err := nw.Connect(a, b); err != nil {
				panic(err) // new peers are open and not cut off
			}
		}
	}
	return ps
}

// Connect connects a and b (a no-op if they are connected): each gets a
// PeerConnected event. It fails with ErrUnreachable if either is closed or
// their link is cut.
func (nw *Network) Connect(a, b *Peer) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	_, err := nw.connectLocked(a.id, b.id)
	return err
}

func (nw *Network) connectLocked(a, b peer.ID) (*conn, error) {
	pa, pb := nw.peers[a], nw.peers[b]
	switch {
	case a == b:
		return nil, fmt.Errorf("memnet: connect %s to itself", a)
	case pa == nil || pa.closed:
		return nil, fmt.Errorf("memnet: connect from %s: %w (closed)", a, ErrUnreachable)
	case pb == nil || pb.closed:
		return nil, fmt.Errorf("memnet: connect to %s: %w (closed or unknown)", b, ErrUnreachable)
	case nw.cut[linkOf(a, b)]:
		return nil, fmt.Errorf("memnet: connect %s to %s: %w (link cut)", a, b, ErrUnreachable)
	}
	l := linkOf(a, b)
	if c := nw.conns[l]; c != nil {
		return c, nil
	}
	c := &conn{streams: make(map[*duplex]struct{})}
	nw.conns[l] = c
	pa.events.push(p2p.PeerEvent{Peer: b, Kind: p2p.PeerConnected})
	pb.events.push(p2p.PeerEvent{Peer: a, Kind: p2p.PeerConnected})
	return c, nil
}

// Disconnect closes the connection between a and b, if any: its streams are
// reset and each gets a PeerDisconnected event. They may connect again (a
// stream opened dials).
func (nw *Network) Disconnect(a, b *Peer) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.disconnectLocked(a.id, b.id)
}

func (nw *Network) disconnectLocked(a, b peer.ID) {
	l := linkOf(a, b)
	c := nw.conns[l]
	if c == nil {
		return
	}
	delete(nw.conns, l)
	for d := range c.streams {
		d.ab.reset()
		d.ba.reset()
	}
	for _, id := range []peer.ID{a, b} {
		other := a
		if id == a {
			other = b
		}
		if p := nw.peers[id]; !p.closed {
			p.events.push(p2p.PeerEvent{Peer: other, Kind: p2p.PeerDisconnected})
		}
	}
}

// Partition cuts every link between peers of different sides: their
// connections close (see Disconnect) and neither dials the other until Heal.
func (nw *Network) Partition(sides ...[]*Peer) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for i, side := range sides {
		for _, other := range sides[i+1:] {
			for _, a := range side {
				for _, b := range other {
					nw.cut[linkOf(a.id, b.id)] = true
					nw.disconnectLocked(a.id, b.id)
				}
			}
		}
	}
}

// Heal restores every link Partition cut and connects the open peers at
// both ends again.
func (nw *Network) Heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	cut := nw.cut
	nw.cut = make(map[link]bool)
	for l := range cut {
		_, _ = nw.connectLocked(l.a, l.b) // fails only for a closed peer
	}
}

// Close closes every peer.
func (nw *Network) Close() {
	nw.mu.Lock()
	ps := make([]*Peer, 0, len(nw.peers))
	for _, p := range nw.peers {
		ps = append(ps, p)
	}
	nw.mu.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
}

// Peer is one peer of a Network: a p2p.Network in memory. Its fields are
// guarded by its network's mu.
type Peer struct {
	nw       *Network
	id       peer.ID
	handlers map[string]func(p2p.Stream)
	topics   map[string]*topic
	provides map[string]struct{} // multihashes this peer announced
	syncing  map[string]struct{} // announced during a reprovider sync
	reprov   bool
	closed   bool

	events *eventQueue
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

var _ p2p.Network = (*Peer)(nil)

// ID returns the peer's ID.
func (p *Peer) ID() peer.ID { return p.id }

// String returns the peer's ID.
func (p *Peer) String() string { return p.id.String() }

// OpenStream opens a stream of proto to q, connecting to q first if needed;
// q's handler gets the other end in a new goroutine.
func (p *Peer) OpenStream(ctx context.Context, q peer.ID, proto string) (p2p.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memnet: open %s stream to %s: %w", proto, q, err)
	}
	nw := p.nw
	nw.mu.Lock()
	if p.closed {
		nw.mu.Unlock()
		return nil, fmt.Errorf("memnet: open %s stream to %s: %w", proto, q, p2p.ErrClosed)
	}
	c, err := nw.connectLocked(p.id, q)
	if err != nil {
		nw.mu.Unlock()
		return nil, fmt.Errorf("memnet: open %s stream: %w", proto, err)
	}
	h := nw.peers[q].handlers[proto]
	if h == nil {
		nw.mu.Unlock()
		return nil, fmt.Errorf("memnet: open %s stream to %s: %w", proto, q, ErrProtocolNotSupported)
	}
	d := &duplex{ab: newPipe(), ba: newPipe()}
	d.forget = func() {
		nw.mu.Lock()
		delete(c.streams, d)
		nw.mu.Unlock()
	}
	c.streams[d] = struct{}{}
	nw.mu.Unlock()
	mine, theirs := ends(d, p.id, q, proto)
	go h(theirs)
	return mine, nil
}

// Handle serves proto with h.
func (p *Peer) Handle(proto string, h func(p2p.Stream)) {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	p.handlers[proto] = h
}

// Unhandle stops serving proto.
func (p *Peer) Unhandle(proto string) {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	delete(p.handlers, proto)
}

// Peers returns the peers connected to p, sorted.
func (p *Peer) Peers() []peer.ID {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	return p.peersLocked()
}

func (p *Peer) peersLocked() []peer.ID {
	var out []peer.ID
	for l := range p.nw.conns {
		switch p.id {
		case l.a:
			out = append(out, l.b)
		case l.b:
			out = append(out, l.a)
		}
	}
	slices.Sort(out)
	return out
}

// Connected reports whether q is connected to p.
func (p *Peer) Connected(q peer.ID) bool {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	return p.nw.conns[linkOf(p.id, q)] != nil
}

// RoutingPeers returns every open peer p is not cut off from, sorted: a
// memnet's routing table knows the whole network.
func (p *Peer) RoutingPeers() []peer.ID {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	var out []peer.ID
	for id, q := range p.nw.peers {
		if id != p.id && !q.closed && !p.nw.cut[linkOf(p.id, id)] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// NetworkSize returns the number of open peers in the network.
func (p *Peer) NetworkSize() int {
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	size := 0
	for _, q := range p.nw.peers {
		if !q.closed {
			size++
		}
	}
	return size
}

// PeerEvents returns the channel of p's peers connected and disconnected, in
// order and without coalescing; it is closed by Close.
func (p *Peer) PeerEvents() <-chan p2p.PeerEvent { return p.events.out }

// Announce records at once that p holds cs, in the network's provider table.
func (p *Peer) Announce(cs ...cid.Cid) {
	nw := p.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if p.closed {
		return
	}
	for _, c := range cs {
		if !c.Defined() {
			continue
		}
		k := string(c.Hash())
		p.provides[k] = struct{}{}
		if p.syncing != nil {
			p.syncing[k] = struct{}{}
		}
		hs := nw.holders[k]
		if hs == nil {
			hs = make(map[peer.ID]struct{})
			nw.holders[k] = hs
		}
		hs[p.id] = struct{}{}
	}
}

// StartReprovider replaces p's records by the CIDs keys yields (and those
// announced meanwhile): once before it returns, then every interval
// (p2p.DefaultReprovideInterval if zero) until p closes. It can be started
// once.
func (p *Peer) StartReprovider(interval time.Duration, keys p2p.KeySource) error {
	switch {
	case keys == nil:
		return errors.New("memnet: start reprovider: nil key source")
	case interval < 0:
		return fmt.Errorf("memnet: start reprovider: negative interval %v", interval)
	case interval == 0:
		interval = p2p.DefaultReprovideInterval
	}
	p.nw.mu.Lock()
	switch {
	case p.closed:
		p.nw.mu.Unlock()
		return fmt.Errorf("memnet: start reprovider: %w", p2p.ErrClosed)
	case p.reprov:
		p.nw.mu.Unlock()
		return errors.New("memnet: start reprovider: already started")
	}
	p.reprov = true
	p.wg.Add(1)
	p.nw.mu.Unlock()
	p.sync(keys)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.sync(keys)
			}
		}
	}()
	return nil
}

// sync replaces p's records by keys and what is announced while it runs.
func (p *Peer) sync(keys p2p.KeySource) {
	nw := p.nw
	nw.mu.Lock()
	p.syncing = make(map[string]struct{})
	nw.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	held := make(map[string]struct{})
	err := keys(ctx, func(c cid.Cid) bool {
		if c.Defined() {
			held[string(c.Hash())] = struct{}{}
		}
		return true
	})
	cancel()
	nw.mu.Lock()
	defer nw.mu.Unlock()
	during := p.syncing
	p.syncing = nil
	if err != nil || p.closed {
		return // the records stay as they were
	}
	for k := range during {
		held[k] = struct{}{}
	}
	for k := range p.provides {
		if _, ok := held[k]; !ok {
			delete(nw.holders[k], p.id)
			if len(nw.holders[k]) == 0 {
				delete(nw.holders, k)
			}
		}
	}
	for k := range held {
		hs := nw.holders[k]
		if hs == nil {
			hs = make(map[peer.ID]struct{})
			nw.holders[k] = hs
		}
		hs[p.id] = struct{}{}
	}
	p.provides = held
}

// FindHolders returns up to max peers (max <= 0: all) that announced c,
// sorted, p included if it did. The lookup is perfect: a partition does not
// hide records, and, as in a DHT, the records of a closed peer stay.
func (p *Peer) FindHolders(ctx context.Context, c cid.Cid, max int) ([]peer.ID, error) {
	if !c.Defined() {
		return nil, errors.New("memnet: find holders: undefined CID")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memnet: find holders of %s: %w", c, err)
	}
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	var out []peer.ID
	for id := range p.nw.holders[string(c.Hash())] {
		out = append(out, id)
	}
	slices.Sort(out)
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Close disconnects p from every peer, leaves its topics, stops its
// reprovider and closes its event channel. Its provider records stay. It is
// idempotent.
func (p *Peer) Close() error {
	nw := p.nw
	nw.mu.Lock()
	if p.closed {
		nw.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, q := range p.peersLocked() {
		nw.disconnectLocked(p.id, q)
	}
	topics := make([]*topic, 0, len(p.topics))
	for _, t := range p.topics {
		topics = append(topics, t)
	}
	clear(p.handlers)
	nw.mu.Unlock()
	for _, t := range topics {
		_ = t.Close()
	}
	close(p.done)
	p.events.close()
	p.wg.Wait()
	return nil
}

// eventQueue delivers a peer's events in order, never blocking the network:
// pending events wait in an unbounded queue.
type eventQueue struct {
	out  chan p2p.PeerEvent
	wake chan struct{}
	done chan struct{}
	mu   sync.Mutex // guards q
	q    []p2p.PeerEvent
	wg   sync.WaitGroup
}

func newEventQueue() *eventQueue {
	e := &eventQueue{out: make(chan p2p.PeerEvent, 16), wake: make(chan struct{}, 1), done: make(chan struct{})}
	e.wg.Go(e.run)
	return e
}

func (e *eventQueue) push(ev p2p.PeerEvent) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) run() {
	defer close(e.out)
	for {
		e.mu.Lock()
		if len(e.q) == 0 {
			e.mu.Unlock()
			select {
			case <-e.wake:
				continue
			case <-e.done:
				return
			}
		}
		ev := e.q[0]
		e.mu.Unlock()
		select {
		case e.out <- ev:
			e.mu.Lock()
			e.q = e.q[1:]
			e.mu.Unlock()
		case <-e.done:
			return
		}
	}
}

// close stops the queue and closes out; pending events are dropped.
func (e *eventQueue) close() {
	close(e.done)
	e.wg.Wait()
}
