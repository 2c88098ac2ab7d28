package p2p

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pubsubOverhead is added to Config.MaxMessageSize for GossipSub's RPC size limit: a
// signed message carries its topic, sender, sequence number, key and signature besides
// the payload.
const pubsubOverhead = 4 << 10

// subscriptionBuffer is how many received messages a Subscription holds for a slow
// reader before GossipSub drops new ones (gossip is lossy by design).
const subscriptionBuffer = 128

var (
	// ErrMessageTooLarge is matched (errors.Is) by the error Publish returns for a
	// payload above the host's MaxMessageSize. Receivers refuse such messages too.
	ErrMessageTooLarge = errors.New("p2p: pubsub message too large")
	// ErrClosed is returned by operations on a closed Host, Topic or Subscription.
	ErrClosed = errors.New("p2p: closed")
)

// gossipTopic is a GossipSub topic the host has joined: Host's Topic. It is
// safe for concurrent use.
type gossipTopic struct {
	h     *Host
	name  string
	t     *pubsub.Topic
	limit int

	mu     sync.Mutex
	subs   map[*gossipSub]struct{}
	closed bool
}

// Message is one GossipSub message received on a subscription.
type Message struct {
	// From is the peer that published the message (its signature is verified).
	From peer.ID
	// ReceivedFrom is the peer that forwarded it to us (From, or a relaying peer).
	ReceivedFrom peer.ID
	// Data is the payload; the receiver owns it.
	Data []byte
}

// Name returns the topic name.
func (t *gossipTopic) Name() string { return t.name }

// Publish sends data to the topic's subscribers across the swarm. A payload above the
// host's MaxMessageSize is refused with an error matching ErrMessageTooLarge.
// Delivery is best effort (gossip), as GossipSub's.
func (t *gossipTopic) Publish(ctx context.Context, data []byte) error {
	if len(data) > t.limit {
		return fmt.Errorf("%w: topic %q: %d bytes, limit %d", ErrMessageTooLarge, t.name, len(data), t.limit)
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return fmt.Errorf("p2p: publish on topic %q: %w", t.name, ErrClosed)
	}
	if err := t.t.Publish(ctx, data); err != nil {
		return fmt.Errorf("p2p: publish on topic %q: %w", t.name, err)
	}
	return nil
}

// Peers returns the connected peers known to be subscribed to the topic, sorted.
func (t *gossipTopic) Peers() []peer.ID {
	ps := t.t.ListPeers()
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// Subscribe starts receiving the topic's messages. Messages published by this host are
// not delivered to its own subscriptions. A subscription whose reader lags loses
// messages (beyond a 128-message buffer), as gossip is lossy.
func (t *gossipTopic) Subscribe() (Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("p2p: subscribe to topic %q: %w", t.name, ErrClosed)
	}
	ps, err := t.t.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("p2p: subscribe to topic %q: %w", t.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &gossipSub{
		topic:  t,
		sub:    ps,
		ch:     make(chan Message),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	t.subs[s] = struct{}{}
	go s.pump(ctx, t.h.ID())
	return s, nil
}

// Close cancels the topic's subscriptions and leaves the topic. Joining it again
// afterwards gives a new Topic.
func (t *gossipTopic) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*gossipSub, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.Cancel()
	}
	t.h.forgetTopic(t)
	if err := t.t.Close(); err != nil {
		return fmt.Errorf("p2p: leave topic %q: %w", t.name, err)
	}
	return nil
}

// gossipSub receives one GossipSub topic's messages: Host's Subscription.
type gossipSub struct {
	topic  *gossipTopic
	sub    *pubsub.Subscription
	ch     chan Message
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// C returns the channel of received messages. It is closed when the subscription is
// cancelled, its topic closed or the host closed.
func (s *gossipSub) C() <-chan Message { return s.ch }

// Next returns the next message, or an error when ctx ends or the subscription is over
// (ErrClosed).
func (s *gossipSub) Next(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-s.ch:
		if !ok {
			return Message{}, fmt.Errorf("p2p: subscription to %q: %w", s.topic.name, ErrClosed)
		}
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Cancel ends the subscription and waits until C is closed. It is idempotent.
func (s *gossipSub) Cancel() {
	s.once.Do(func() {
		s.cancel()
		s.sub.Cancel()
		t := s.topic
		t.mu.Lock()
		delete(t.subs, s)
		t.mu.Unlock()
	})
	<-s.done
}

func (s *gossipSub) pump(ctx context.Context, self peer.ID) {
	defer close(s.done)
	defer close(s.ch)
	for {
		m, err := s.sub.Next(ctx)
		if err != nil {
			return
		}
		from := m.GetFrom()
		if from == self {
			continue
		}
		msg := Message{From: from, ReceivedFrom: m.ReceivedFrom, Data: m.GetData()}
		select {
		case s.ch <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// sizeValidator refuses received messages above limit bytes.
func sizeValidator(limit int) func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult {
	return func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if len(m.GetData()) > limit {
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
}

var (
	_ Topic        = (*gossipTopic)(nil)
	_ Subscription = (*gossipSub)(nil)
)
