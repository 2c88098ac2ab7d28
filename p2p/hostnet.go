package p2p

import (
	"context"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Host's side of Network beyond what host.go has: streams as Stream, and the
// routing table and size estimate of its DHT.

// stream is a libp2p stream as a Stream.
type stream struct{ network.Stream }

// RemotePeer returns the peer at the other end.
func (s stream) RemotePeer() peer.ID { return s.Conn().RemotePeer() }

// OpenStream opens a stream of protocol proto to p over libp2p, dialling p
// with the addresses in the peerstore if it is not connected.
func (n *Host) OpenStream(ctx context.Context, p peer.ID, proto string) (Stream, error) {
	s, err := n.h.NewStream(ctx, p, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", proto, p, err)
	}
	return stream{s}, nil
}

// Handle serves proto on the libp2p host: h gets each stream a peer opens.
func (n *Host) Handle(proto string, h func(Stream)) {
	n.h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) { h(stream{s}) })
}

// Unhandle stops serving proto.
func (n *Host) Unhandle(proto string) { n.h.RemoveStreamHandler(protocol.ID(proto)) }

// Connected reports whether the host has a (non-relayed) connection to p.
func (n *Host) Connected(p peer.ID) bool {
	return n.h.Network().Connectedness(p) == network.Connected
}

// RoutingPeers returns the peers in the DHT routing table, sorted.
func (n *Host) RoutingPeers() []peer.ID {
	ps := n.dht.RoutingTable().ListPeers()
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// NetworkSize estimates the swarm's size, this host included: the DHT's
// estimate when it has one, never less than the connected peers or the
// routing table's, plus one.
func (n *Host) NetworkSize() int {
	size := max(len(n.Peers()), n.dht.RoutingTable().Size()) + 1
	if est, err := n.dht.NetworkSize(); err == nil {
		size = max(size, int(est))
	}
	return size
}

// FindHolders looks c up in the DHT (see FindProviders) and returns the
// providers' IDs; their addresses go to the peerstore for a while, so
// OpenStream can dial them.
func (n *Host) FindHolders(ctx context.Context, c cid.Cid, max int) ([]peer.ID, error) {
	ais, err := n.FindProviders(ctx, c, max)
	if err != nil {
		return nil, err
	}
	out := make([]peer.ID, 0, len(ais))
	for _, ai := range ais {
		if len(ai.Addrs) > 0 && ai.ID != n.h.ID() {
			n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		}
		out = append(out, ai.ID)
	}
	return out, nil
}
