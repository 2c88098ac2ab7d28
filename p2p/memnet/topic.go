package memnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/p2p"
)

// SubscriptionBuffer is how many messages a subscription holds for a slow
// reader; messages beyond are dropped, as gossip drops them.
const SubscriptionBuffer = 128

// topic is a topic a peer joined. Its fields are guarded by the network's mu.
type topic struct {
	p      *Peer
	name   string
	subs   map[*subscription]struct{}
	closed bool
}

var _ p2p.Topic = (*topic)(nil)

// Join joins topic, or returns the topic already joined under that name.
func (p *Peer) Join(name string) (p2p.Topic, error) {
	if name == "" {
		return nil, errors.New("memnet: join: empty topic name")
	}
	p.nw.mu.Lock()
	defer p.nw.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("memnet: join %q: %w", name, p2p.ErrClosed)
	}
	if t := p.topics[name]; t != nil {
		return t, nil
	}
	t := &topic{p: p, name: name, subs: make(map[*subscription]struct{})}
	p.topics[name] = t
	return t, nil
}

// Name returns the topic name.
func (t *topic) Name() string { return t.name }

// Publish delivers a copy of data to every subscription to the topic on the
// peers connected to t's peer (flood publishing; nothing is relayed). A
// subscription whose buffer is full misses it. A payload above
// p2p.DefaultMaxMessageSize fails with an error matching
// p2p.ErrMessageTooLarge.
func (t *topic) Publish(ctx context.Context, data []byte) error {
	if limit := p2p.DefaultMaxMessageSize; len(data) > limit {
		return fmt.Errorf("%w: topic %q: %d bytes, limit %d", p2p.ErrMessageTooLarge, t.name, len(data), limit)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memnet: publish on topic %q: %w", t.name, err)
	}
	nw := t.p.nw
	nw.mu.Lock()
	if t.closed {
		nw.mu.Unlock()
		return fmt.Errorf("memnet: publish on topic %q: %w", t.name, p2p.ErrClosed)
	}
	var to []*subscription
	for _, q := range t.p.peersLocked() {
		if qt := nw.peers[q].topics[t.name]; qt != nil {
			for s := range qt.subs {
				to = append(to, s)
			}
		}
	}
	nw.mu.Unlock()
	for _, s := range to {
		s.deliver(p2p.Message{From: t.p.id, ReceivedFrom: t.p.id, Data: slices.Clone(data)})
	}
	return nil
}

// Peers returns the connected peers with a subscription to the topic, sorted.
func (t *topic) Peers() []peer.ID {
	nw := t.p.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []peer.ID
	for _, q := range t.p.peersLocked() {
		if qt := nw.peers[q].topics[t.name]; qt != nil && len(qt.subs) > 0 {
			out = append(out, q)
		}
	}
	return out
}

// Subscribe starts receiving the topic's messages from other peers.
func (t *topic) Subscribe() (p2p.Subscription, error) {
	nw := t.p.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("memnet: subscribe to topic %q: %w", t.name, p2p.ErrClosed)
	}
	s := &subscription{t: t, ch: make(chan p2p.Message, SubscriptionBuffer)}
	t.subs[s] = struct{}{}
	return s, nil
}

// Close cancels the topic's subscriptions and leaves it.
func (t *topic) Close() error {
	nw := t.p.nw
	nw.mu.Lock()
	if t.closed {
		nw.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.p.topics[t.name] == t {
		delete(t.p.topics, t.name)
	}
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	nw.mu.Unlock()
	for _, s := range subs {
		s.Cancel()
	}
	return nil
}

// subscription is a topic's subscription: a buffered channel.
type subscription struct {
	t      *topic
	mu     sync.Mutex // guards closed and sends on ch
	ch     chan p2p.Message
	closed bool
}

var _ p2p.Subscription = (*subscription)(nil)

func (s *subscription) deliver(m p2p.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- m:
	default: // the reader lags: dropped
	}
}

// C returns the channel of messages, closed by Cancel.
func (s *subscription) C() <-chan p2p.Message { return s.ch }

// Next returns the next message, or an error when ctx ends or the
// subscription is over (matching p2p.ErrClosed).
func (s *subscription) Next(ctx context.Context) (p2p.Message, error) {
	select {
	case m, ok := <-s.ch:
		if !ok {
			return p2p.Message{}, fmt.Errorf("memnet: subscription to %q: %w", s.t.name, p2p.ErrClosed)
		}
		return m, nil
	case <-ctx.Done():
		return p2p.Message{}, ctx.Err()
	}
}

// Cancel ends the subscription and closes C. It is idempotent.
func (s *subscription) Cancel() {
	nw := s.t.p.nw
	nw.mu.Lock()
	delete(s.t.subs, s)
	nw.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}
