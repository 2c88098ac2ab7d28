package p2p

import (
	"context"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Network is what a dray node needs from the network: streams of named
// protocols, the peers it can reach, content routing and gossip topics. Host
// implements it over libp2p; package memnet implements it in memory, for tests
// and simulations. Implementations are safe for concurrent use.
//
// It is composed of small interfaces, as go-libp2p's routing.ContentRouting is,
// so a consumer can ask for only the part it uses.
type Network interface {
	Streams
	Membership
	ContentRouting
	PubSub
}

// Streams opens and serves streams of named protocols ("/dray/session/1").
type Streams interface {
	// OpenStream opens a stream of protocol proto to peer p, connecting to p
	// first if needed. It fails if p cannot be reached or does not serve proto.
	OpenStream(ctx context.Context, p peer.ID, proto string) (Stream, error)
	// Handle serves proto: h is called, in a goroutine of its own, with each
	// stream a peer opens, and owns it. It replaces any handler of proto.
	Handle(proto string, h func(Stream))
	// Unhandle stops serving proto; streams already handed over are unaffected.
	Unhandle(proto string)
}

// Membership is this peer and the peers it knows.
type Membership interface {
	// ID returns this peer's ID.
	ID() peer.ID
	// Peers returns the peers connected now, sorted.
	Peers() []peer.ID
	// Connected reports whether p is connected now.
	Connected(p peer.ID) bool
	// RoutingPeers returns the peers in the routing table: peers known to be
	// reachable, connected or not. It may be empty.
	RoutingPeers() []peer.ID
	// NetworkSize estimates how many peers the swarm has, this one
	// included: never less than the peers connected or in the routing table,
	// plus one.
	NetworkSize() int
	// PeerEvents returns the channel of peers connected and disconnected
	// (one channel, meant for one consumer). It is closed when the network
	// endpoint closes.
	PeerEvents() <-chan PeerEvent
}

// ContentRouting announces which peers hold which CIDs and finds them.
type ContentRouting interface {
	// Announce queues CIDs to be announced as held by this peer. It never
	// blocks on the network.
	Announce(cs ...cid.Cid)
	// StartReprovider keeps the announcements in step with keys, now and
	// every interval (a default if zero): CIDs keys no longer yields stop
	// being announced. It can be started once.
	StartReprovider(interval time.Duration, keys KeySource) error
	// FindHolders returns up to max peers (max <= 0: all found) that
	// announced c, this one included if it did. A holder found may be
	// unreachable by now; the caller tries the next.
	FindHolders(ctx context.Context, c cid.Cid, max int) ([]peer.ID, error)
}

// PubSub joins gossip topics.
type PubSub interface {
	// Join joins topic, or returns the Topic already joined under that name.
	Join(topic string) (Topic, error)
}

// Stream is a reliable, ordered byte stream to one peer. Close closes both
// directions: the peer reads the bytes written so far, then EOF. Reset
// aborts both directions at once, on both ends: buffered bytes are dropped
// and reads and writes fail. Deadlines are as net.Conn's.
type Stream interface {
	io.ReadWriteCloser
	Reset() error
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// RemotePeer returns the peer at the other end.
	RemotePeer() peer.ID
}

// Topic is a gossip topic a peer has joined.
type Topic interface {
	// Name returns the topic name.
	Name() string
	// Publish sends data to the topic's subscribers on other peers, best
	// effort. A payload above the size limit fails with an error matching
	// ErrMessageTooLarge; a closed topic, with ErrClosed.
	Publish(ctx context.Context, data []byte) error
	// Peers returns the connected peers known to be subscribed, sorted.
	Peers() []peer.ID
	// Subscribe starts receiving the topic's messages from other peers.
	Subscribe() (Subscription, error)
	// Close cancels the topic's subscriptions and leaves it. Joining it
	// again afterwards gives a new Topic.
	Close() error
}

// Subscription receives one topic's messages. A reader that lags loses
// messages: gossip is lossy.
type Subscription interface {
	// C returns the channel of messages, closed when the subscription ends.
	C() <-chan Message
	// Next returns the next message, or an error when ctx ends or the
	// subscription is over (matching ErrClosed).
	Next(ctx context.Context) (Message, error)
	// Cancel ends the subscription. It is idempotent.
	Cancel()
}

var _ Network = (*Host)(nil)
