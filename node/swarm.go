package node

import (
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// The swarm protocols are package wire's: load beacons and offers travel
// on GossipSub topics; tasks, completions, claims and releases on sessions
// (wire.SessionProtocol), objects on the fetch protocol.
const (
	// inlineMax is the largest value that travels inside a hand-off or a
	// completion. A larger argument is fetched by the executor from its
	// holder; a larger result stays on the executor, which lends it to
	// the owner until the owner releases it, and is fetched on Get.
	inlineMax = sched.InlineMax

	// The swarm's timings, from their one source (the simulator's too).
	beaconEvery = sched.BeaconEvery
	tickEvery   = sched.TickEvery
	ackDelay    = sched.AckDelay

	streamWait = 10 * time.Second // bound on opening a stream or one write
)

// startSwarm joins the gossip topics, serves the session and fetch
// protocols and starts the loops that feed the scheduler: beacons and
// offers heard, ticks, peers lost.
func (n *Node) startSwarm() error {
	shards := n.cfg.Shards
	if shards == 0 {
		shards = sched.Shards(n.networkSize())
	}
	set, err := n.joinShards(shards)
	if err != nil {
		return err
	}
	n.shards = set
	n.setProbeBatch(shards)
	n.sessions = make(map[peer.ID]*session)
	n.dialing = make(map[peer.ID]*dial)
	n.live = make(map[*session]struct{})
	n.loans = make(map[cid.Cid]cid.Cid)
	n.left = make(chan struct{})
	n.offerq = make(chan []byte, 256)
	n.net.Handle(wire.SessionProtocol, n.serveSession)
	n.net.Handle(wire.FetchProtocol, n.serveFetch)
	if err := n.net.StartReprovider(0, n.heldKeys); err != nil {
		n.log.Debug("reprovider", "err", err)
	}
	n.loops.Add(6)
	go n.announceLoop()
	go n.beaconLoop()
	go n.offerLoop()
	go n.tickLoop()
	go n.peerLoop()
	go n.shardLoop()
	return nil
}

func (n *Node) stopSwarm() {
	n.net.Unhandle(wire.SessionProtocol)
	n.net.Unhandle(wire.FetchProtocol)
	n.closeSessions()
}

// beaconLoop publishes this peer's load on its home shard when it changed
// (at most every beaconEvery) and at least every beaconIdle.
func (n *Node) beaconLoop() {
	defer n.loops.Done()
	t := time.NewTicker(beaconEvery)
	defer t.Stop()
	var last wire.Beacon
	var lastSent time.Time
	sent := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		b := n.currentBeacon()
		if !sched.BeaconDue(loadOf(last), loadOf(b), sent, time.Since(lastSent)) {
			continue
		}
		data, err := codec.Marshal(b)
		if err != nil {
			n.log.Error("encode beacon", "err", err)
			continue
		}
		if n.publish(loadKind, data) {
			last, lastSent, sent = b, time.Now(), true
		}
	}
}

// currentBeacon is this peer's load as it beacons it and answers probes
// (the scheduler's: no room while leaving).
func (n *Node) currentBeacon() wire.Beacon {
	n.mu.Lock()
	l := n.sched.Load()
	n.mu.Unlock()
	ss := n.store.Stats()
	return wire.Beacon{Slots: l.Slots, Free: l.Free, Queue: l.Queue, Funcs: l.Funcs, Held: ss.MemBytes + ss.DiskBytes}
}

// loadOf is what b says about the load (the bytes held change with every
// object and alone do not warrant a beacon).
func loadOf(b wire.Beacon) sched.Load {
	return sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}
}

// hearLoop turns beacons heard into scheduler events.
func (n *Node) hearLoop(sub p2p.Subscription) {
	defer n.loops.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.From == n.net.ID() {
			continue // our own beacon
		}
		n.netc.recv(len(msg.Data))
		var b wire.Beacon
		if err := codec.Unmarshal(msg.Data, &b); err != nil {
			n.log.Debug("bad beacon", "peer", msg.From, "err", err)
			continue
		}
		n.update(func() {
			// Peers that run this binary's table, for SwarmFunctions.
			if b.Funcs == n.funcs {
				n.same[msg.From] = true
			} else {
				delete(n.same, msg.From)
			}
			n.stepLocked(sched.Event{Kind: sched.PeerLoad, Peer: peerKey(msg.From),
				Load: sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}})
		})
	}
}

func (n *Node) tickLoop() {
	defer n.loops.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.tick()
		}
	}
}

// peerLoop reports lost peers to the scheduler, which re-places their work
// and ends the loans of results to owners that are gone.
func (n *Node) peerLoop() {
	defer n.loops.Done()
	events := n.net.PeerEvents()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == p2p.PeerDisconnected {
				n.peerGone(ev.Peer) // the scheduler ends the loans to it too
				n.forgetLimiter(ev.Peer)
			}
		}
	}
}

// step applies one event and performs the resulting actions.
func (n *Node) step(ev sched.Event) {
	n.update(func() {
		if err := n.sched.Step(ev); err != nil {
			n.log.Debug("scheduler refused event", "event", ev.Kind, "err", err)
		}
	})
}

// update runs f under n.mu unless the node is closed, performs the
// scheduler's actions, and starts the runs and hand-offs they call for
// once n.mu is released.
func (n *Node) update(f func()) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	f()
	n.actLocked()
	n.unlockAndAct()
}

// claimLocked claims an offered task (a ClaimOffer action) on a session to
// its owner.
func (n *Node) claimLocked(a sched.Action) {
	owner := peerOf(a.Peer)
	task := []byte(a.Task)
	n.later = append(n.later, func() {
		ss, err := n.sessionTo(owner)
		if err == nil {
			err = ss.send(wire.FrameClaim, task)
		}
		if err != nil {
			n.log.Debug("cannot claim offer", "peer", owner, "err", err)
		}
	})
}

// offerLocked queues a gossip offer of t, a task nobody took.
func (n *Node) offerLocked(t *task) {
	var bytes int64
	for _, a := range t.args {
		bytes += int64(len(a.raw))
		if o := n.objects[a.ref]; a.ref.Defined() && o != nil {
			bytes += o.size
		}
	}
	data, err := codec.Marshal(wire.Offer{Task: t.id.Bytes(), Func: uint64(t.fn.ID()), Bytes: bytes})
	if err != nil {
		return
	}
	select {
	case n.offerq <- data:
	default: // offers are a hint; a full queue drops them
	}
}

// offerLoop publishes queued offers on the home shard.
func (n *Node) offerLoop() {
	defer n.loops.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case data := <-n.offerq:
			n.publish(offerKind, data)
		}
	}
}

// claimLoop claims offered tasks while this peer has idle slots: at most
// its free slots' worth a tick, so it cannot bite off more than it runs.
func (n *Node) claimLoop(sub p2p.Subscription) {
	defer n.loops.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.From == n.net.ID() {
			continue
		}
		n.netc.recv(len(msg.Data))
		var o wire.Offer
		if err := codec.Unmarshal(msg.Data, &o); err != nil {
			continue
		}
		// The scheduler claims it while this peer's idle slots exceed its
		// claims this tick (a ClaimOffer action: see claimLocked).
		n.step(sched.Event{Kind: sched.OfferHeard, Task: sched.TaskID(o.Task), Peer: peerKey(msg.From),
			Func: sched.FuncID(o.Func)})
	}
}

// handleClaim lets the scheduler hand a queued task to the peer that
// claimed it (the first claim of a task wins; the rest are ignored).
func (n *Node) handleClaim(from peer.ID, payload []byte) {
	id, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.step(sched.Event{Kind: sched.Claim, Task: sched.TaskID(id.KeyString()), Peer: peerKey(from)})
}
