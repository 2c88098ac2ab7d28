package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerEventKind says whether a peer came or went.
type PeerEventKind uint8

const (
	// PeerConnected: the host now has at least one connection to the peer.
	PeerConnected PeerEventKind = iota + 1
	// PeerDisconnected: the host's last connection to the peer closed.
	PeerDisconnected
)

// String returns "connected" or "disconnected".
func (k PeerEventKind) String() string {
	switch k {
	case PeerConnected:
		return "connected"
	case PeerDisconnected:
		return "disconnected"
	default:
		return fmt.Sprintf("PeerEventKind(%d)", uint8(k))
	}
}

// PeerEvent is a change in the host's connectedness to one peer.
type PeerEvent struct {
	Peer peer.ID
	Kind PeerEventKind
}

// eventQueue forwards connectedness events from the libp2p event bus to out without
// ever blocking the bus: while the consumer lags, events are coalesced per peer (the
// latest kind wins, peers keep the order of their first pending event), so memory is
// bounded by the number of peers and the consumer always learns each peer's final
// state. A connect/disconnect pair that happens while the consumer lags can thus be
// seen as a single event, or none if the peer ends in the state last delivered.
type eventQueue struct {
	out chan PeerEvent

	order []peer.ID
	state map[peer.ID]PeerEventKind // pending, not yet delivered
	last  map[peer.ID]PeerEventKind // last delivered
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		out:   make(chan PeerEvent, 64),
		state: make(map[peer.ID]PeerEventKind),
		last:  make(map[peer.ID]PeerEventKind),
	}
}

func kindOf(c network.Connectedness) (PeerEventKind, bool) {
	switch c {
	case network.Connected:
		return PeerConnected, true
	case network.NotConnected:
		return PeerDisconnected, true
	default: // Limited (relayed) connections are not usable peers for dray.
		return 0, false
	}
}

func (q *eventQueue) push(ev PeerEvent) {
	if _, pending := q.state[ev.Peer]; !pending {
		q.order = append(q.order, ev.Peer)
	}
	q.state[ev.Peer] = ev.Kind
}

// run moves events from in to out until done is closed or in is closed, then closes out.
// onChange is called (in this goroutine) for every event received.
func (q *eventQueue) run(in <-chan any, done <-chan struct{}, onChange func(PeerEvent)) {
	defer close(q.out)
	for {
		var (
			send chan PeerEvent
			next PeerEvent
		)
		for len(q.order) > 0 && send == nil {
			p := q.order[0]
			k := q.state[p]
			if q.last[p] == k || (q.last[p] == 0 && k == PeerDisconnected) {
				// Nothing new to say about p (e.g. connected then disconnected
				// before delivery, or a repeat).
				q.order = q.order[1:]
				delete(q.state, p)
				continue
			}
			send, next = q.out, PeerEvent{Peer: p, Kind: k}
		}
		select {
		case <-done:
			return
		case e, ok := <-in:
			if !ok {
				return
			}
			ce, isConn := e.(event.EvtPeerConnectednessChanged)
			if !isConn {
				continue
			}
			k, ok := kindOf(ce.Connectedness)
			if !ok {
				continue
			}
			ev := PeerEvent{Peer: ce.Peer, Kind: k}
			q.push(ev)
			if onChange != nil {
				onChange(ev)
			}
		case send <- next:
			q.order = q.order[1:]
			delete(q.state, next.Peer)
			if next.Kind == PeerDisconnected {
				delete(q.last, next.Peer)
			} else {
				q.last[next.Peer] = next.Kind
			}
		}
	}
}
