package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// Shards, probes and leases: what keeps a node's traffic bounded as the
// swarm grows, and what bounds the time a silent peer keeps tasks.
//
// A swarm of N peers beacons on sched.Shards(N) shard topics: a peer
// publishes its load and its offers on its home shard and hears its home
// and one other shard (sched.ShardOf), so it hears about 128 peers
// whatever N is. Work that finds no peer it hears with room probes peers
// it does not hear (Config.ProbeBatch): a probe is a session frame, the
// reply the peer's beacon. Up to 64 peers there is one shard, the plain
// topics, and every peer hears every other.
const (
	// shardEvery is how often the node re-estimates the swarm's size; a
	// new shard count is adopted when two estimates in a row agree.
	shardEvery = 10 * time.Second
	// shardGrace is how long a node keeps publishing on and hearing its
	// previous shard topics after it moved: peers that have not moved yet
	// still hear it and it them.
	shardGrace = time.Minute
)

// The two kinds of shard topic.
const (
	loadKind  = 0
	offerKind = 1
)

// shardSet is the shard topics a node uses for one shard count.
type shardSet struct {
	count  int
	home   [2]p2p.Topic // load, offers: where this node publishes
	subs   []p2p.Subscription
	joined []p2p.Topic
}

// joinShards joins this node's home and extra shard topics for count
// shards and starts hearing them.
func (n *Node) joinShards(count int) (*shardSet, error) {
	home, extra := sched.ShardOf(sched.PeerID(n.net.ID().String()), count)
	shards := []int{home}
	if extra != home {
		shards = append(shards, extra)
	}
	set := &shardSet{count: count}
	for kind, base := range []string{wire.LoadTopic, wire.OfferTopic} {
		for _, i := range shards {
			name := wire.ShardTopic(base, count, i)
			t, err := n.net.Join(name)
			if err != nil {
				set.close()
				return nil, fmt.Errorf("node: join topic %s: %w", name, err)
			}
			set.joined = append(set.joined, t)
			sub, err := t.Subscribe()
			if err != nil {
				set.close()
				return nil, fmt.Errorf("node: subscribe topic %s: %w", name, err)
			}
			set.subs = append(set.subs, sub)
			if i == home {
				set.home[kind] = t
			}
			n.loops.Add(1)
			if kind == loadKind {
				go n.hearLoop(sub)
			} else {
				go n.claimLoop(sub)
			}
		}
	}
	return set, nil
}

// close stops hearing the set's topics and leaves them.
func (s *shardSet) close() {
	for _, sub := range s.subs {
		sub.Cancel()
	}
	for _, t := range s.joined {
		_ = t.Close()
	}
}

// publish sends data on kind's home topic (and, within shardGrace of a
// move, the previous one) and reports whether it went out.
func (n *Node) publish(kind int, data []byte) bool {
	n.shmu.Lock()
	topics := []p2p.Topic{n.shards.home[kind]}
	if n.old != nil {
		topics = append(topics, n.old.home[kind])
	}
	n.shmu.Unlock()
	ok := false
	for _, t := range topics {
		if err := t.Publish(n.ctx, data); err != nil {
			if n.ctx.Err() == nil && !errors.Is(err, p2p.ErrClosed) {
				n.log.Debug("publish", "topic", t.Name(), "err", err)
			}
			continue
		}
		n.netc.sent(len(data))
		ok = true
	}
	return ok
}

// networkSize estimates the number of peers in the swarm: the DHT's
// estimate when it has one, never less than the peers this node is
// connected to or has in its routing table, plus itself.
func (n *Node) networkSize() int {
	return n.net.NetworkSize()
}

// shardLoop re-estimates the swarm's size every shardEvery and moves to
// the shard count it calls for once two estimates in a row agree; it ends
// the grace period of the previous shard topics.
func (n *Node) shardLoop() {
	defer n.loops.Done()
	t := time.NewTicker(shardEvery)
	defer t.Stop()
	want := 0
	for {
		select {
		case <-n.ctx.Done():
			n.shmu.Lock()
			n.shards.close()
			if n.old != nil {
				n.old.close()
			}
			n.shmu.Unlock()
			return
		case <-t.C:
		}
		n.shmu.Lock()
		if n.old != nil && time.Now().After(n.oldEnd) {
			n.old.close()
			n.old = nil
		}
		cur := n.shards.count
		n.shmu.Unlock()
		if n.cfg.Shards != 0 {
			continue
		}
		next := sched.Shards(n.networkSize())
		if next == cur || next != want {
			want = next
			continue
		}
		n.moveShards(next)
	}
}

// moveShards moves this node to next shards: back to the previous set if
// that is still in its grace period, else to newly joined topics, the
// current ones kept for shardGrace.
func (n *Node) moveShards(next int) {
	n.shmu.Lock()
	cur := n.shards.count
	if n.old != nil && n.old.count == next {
		// Back to the count it left within the grace period: its
		// topics are still joined (joining them again would hand
		// back the same topics, which closing the old set closes).
		n.old, n.shards, n.oldEnd = n.shards, n.old, time.Now().Add(shardGrace)
		n.shmu.Unlock()
		n.setProbeBatch(next)
		n.log.Info("moved back to shard topics", "shards", next, "was", cur)
		return
	}
	stale := n.old
	n.old = nil
	n.shmu.Unlock()
	if stale != nil {
		stale.close()
	}
	set, err := n.joinShards(next)
	if err != nil {
		n.log.Warn("cannot move to new shard topics", "shards", next, "err", err)
		return
	}
	n.log.Info("moved to new shard topics", "shards", next, "was", cur)
	n.shmu.Lock()
	n.old, n.oldEnd, n.shards = n.shards, time.Now().Add(shardGrace), set
	n.shmu.Unlock()
	n.setProbeBatch(next)
}

// setProbeBatch sizes the scheduler's probe batch for count shards
// (sched.ProbeBatchFor): the more shards, the more peers a lone submitter
// must find beyond those it hears.
func (n *Node) setProbeBatch(count int) {
	n.mu.Lock()
	n.sched.SetProbeBatch(sched.ProbeBatchFor(count, n.cfg.ProbeBatch))
	n.mu.Unlock()
}

// Shards reports how many shard topics the swarm's beacons are split
// into, as this node sees it (1 without a network).
func (n *Node) Shards() int {
	if n.net == nil {
		return 1
	}
	n.shmu.Lock()
	defer n.shmu.Unlock()
	return n.shards.count
}

// probeTargetsLocked picks the peers to probe for the probes the scheduler
// asked for: random peers this node is connected to or has in its DHT
// routing table and does not hear. Probes without a target are dropped;
// the scheduler's next tick frees them.
func (n *Node) probeTargetsLocked() []peer.ID {
	if n.probes == 0 || n.net == nil {
		return nil
	}
	want := min(n.probes, max(n.cfg.ProbeBatch, 1)) // asks made between updates add up
	n.probes = 0
	self := n.net.ID()
	seen := make(map[peer.ID]bool)
	var cands []peer.ID
	add := func(p peer.ID) {
		id := peerKey(p)
		if p != self && !seen[p] && !n.sched.Knows(id) && !n.sched.Silenced(id) {
			seen[p] = true
			cands = append(cands, p)
		}
	}
	for _, p := range n.net.Peers() {
		add(p)
	}
	for _, p := range n.net.RoutingPeers() {
		add(p)
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands[:min(want, len(cands))]
}

// sendProbes asks each peer for its load on a session; the reply (a load
// frame) is stepped as a sched.ProbeReply.
func (n *Node) sendProbes(ps []peer.ID) {
	for _, p := range ps {
		n.netc.probes.Add(1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ss, err := n.sessionTo(p)
			if err == nil {
				err = ss.send(wire.FrameProbe, nil)
			}
			if err != nil {
				n.log.Debug("cannot probe peer", "peer", p, "err", err)
			}
		}()
	}
}

// handleProbe answers a probe with this node's beacon.
func (n *Node) handleProbe(ss *session) {
	data, err := codec.Marshal(n.currentBeacon())
	if err != nil {
		return
	}
	if err := ss.send(wire.FrameLoad, data); err != nil {
		n.log.Debug("cannot answer probe", "peer", ss.peer, "err", err)
	}
}

// handleLoad steps a probe's answer.
func (n *Node) handleLoad(ss *session, payload []byte) {
	var b wire.Beacon
	if err := codec.Unmarshal(payload, &b); err != nil {
		n.log.Debug("bad probe reply", "peer", ss.peer, "err", err)
		return
	}
	n.step(sched.Event{Kind: sched.ProbeReply, Peer: peerKey(ss.peer),
		Load: sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}})
}

// sessionIdle is how long a session this node opened may carry nothing
// either way, with no task on it, before it is closed: sessions opened to
// probe or claim from peers outside the node's shards would otherwise
// pile up in a large swarm. (A variable for tests.)
var sessionIdle = 2 * time.Minute

// errSessionIdle ends an idle session (see sessionIdle).
var errSessionIdle = errors.New("session idle")

// reapIdle closes the sessions this node opened that have been idle for
// sessionIdle and carry none of its tasks (busy).
func (n *Node) reapIdle(now int64, busy map[*session]int64) {
	var idle []*session
	n.smu.Lock()
	for _, ss := range n.sessions {
		if _, ok := busy[ss]; ok {
			continue
		}
		if time.Duration(now-max(ss.heard.Load(), ss.said.Load())) > sessionIdle {
			idle = append(idle, ss)
		}
	}
	n.smu.Unlock()
	for _, ss := range idle {
		ss.close(errSessionIdle)
	}
}

// errLeaseExpired ends the sessions to a peer whose lease expired.
var errLeaseExpired = errors.New("lease expired: the peer answered nothing, not even a ping")

// tick steps one scheduler tick, telling it first which peers were heard
// on a session since the last one (its leases count silence in ticks:
// see sched.Config.LeaseTicks), and closes the sessions this node opened
// that sat idle. A peer whose frames wait for our own busy reader counts
// as heard: that time is ours, not its silence.
func (n *Node) tick() {
	now := time.Now().UnixNano()
	var heard []sched.PeerID
	seen := make(map[peer.ID]bool)
	n.smu.Lock()
	for ss := range n.live {
		if !seen[ss.peer] && (ss.heard.Load() > n.lastTick || ss.handling.Load()) {
			seen[ss.peer] = true
			heard = append(heard, peerKey(ss.peer))
		}
	}
	n.smu.Unlock()
	n.lastTick = now
	busy := make(map[*session]int64) // sessions carrying our tasks
	n.update(func() {
		for _, p := range heard {
			n.stepLocked(sched.Event{Kind: sched.Heard, Peer: p})
		}
		n.stepLocked(sched.Event{Kind: sched.Tick})
		for _, t := range n.tasks {
			if t.sess != nil && t.owner == "" {
				busy[t.sess] = 0
			}
		}
	})
	n.reapIdle(now, busy)
}

// leaseLocked acts on the scheduler's leases (Ping and Drop actions) once
// n.mu is released: a silent peer holding our tasks is pinged on every
// session to it; one past its lease has them closed (its tasks were
// placed again already).
func (n *Node) leaseLocked(a sched.Action) {
	p := peerOf(a.Peer)
	if a.Kind == sched.Drop {
		n.log.Warn("peer holding tasks went silent; placed its tasks again elsewhere", "peer", p,
			"lease", n.cfg.leaseTimeout(), "ignored for", sched.DefaultSilenceTicks*sched.TickEvery)
	}
	n.later = append(n.later, func() {
		var sss []*session
		n.smu.Lock()
		for ss := range n.live {
			if ss.peer == p {
				sss = append(sss, ss)
			}
		}
		n.smu.Unlock()
		for _, ss := range sss {
			if a.Kind == sched.Drop {
				ss.close(fmt.Errorf("peer %s: %w", p, errLeaseExpired))
			} else {
				_ = ss.send(wire.FramePing, nil)
			}
		}
	})
}
