package sim

import (
	"cmp"
	"slices"
	"time"

	"github.com/dray-project/dray/sched"
)

// How a peer learns who has room, as node/swarm.go and the probes of
// node/shard.go do it: load beacons (beaconLoop; published to a
// neighbourhood here, or on load shards in shard.go; applied by flush,
// as hearLoop), offers of queued tasks and the claims of idle peers
// (offerLoop, claimLoop), and probes of peers the scheduler does not know.

// beaconMsg is a load beacon in flight.
type beaconMsg struct {
	at   int64
	from int32
	side uint8
	load sched.Load
}

// beaconCheck models node.beaconLoop: publish the load when it changed
// (at most every 250 ms) and at least every 2 s.
func (s *Sim) beaconCheck(p *vpeer, at int64) {
	if at != p.nextCheck {
		return // superseded
	}
	p.nextCheck = 0
	l := p.s.Load()
	if !sched.BeaconDue(p.last, l, p.sentAny, time.Duration(s.now-p.lastSent)) {
		p.nextCheck = p.lastSent + beaconIdle
		s.at(p.nextCheck, event{kind: evBeacon, p: p.idx})
		return
	}
	s.publish(p, l)
	p.last, p.lastSent, p.sentAny = l, s.now, true
	p.nextCheck = s.now + beaconIdle
	s.at(p.nextCheck, event{kind: evBeacon, p: p.idx})
}

// publish sends a beacon: GossipSub delivers it to every subscriber of p's
// home shard (publishShard) or, with a beacon scope, to p's neighbourhood;
// every delivery is counted. Receivers apply it lazily before their next
// event (flush), or at its arrival when they have queued tasks, for which
// it may matter at once.
func (s *Sim) publish(p *vpeer, l sched.Load) {
	if s.shards == 0 {
		for _, r := range p.neigh {
			if !s.reachable(p.idx, r) {
				continue
			}
			d, _ := s.send(mBeacon, p.idx, r, beaconBytes, false)
			arr := s.now + d
			rp := s.peers[r]
			rp.inbox = append(rp.inbox, beaconMsg{at: arr, from: p.idx, load: l})
			if s.qpos[r] >= 0 {
				s.scheduleFlush(rp, arr)
			}
		}
		return
	}
	s.publishShard(p, l)
}

// sideCount counts the live peers on one side of the partition.
func (s *Sim) sideCount(side uint8) int {
	if s.partition == 0 {
		return s.live
	}
	n := 0
	for _, p := range s.peers {
		if p.alive && s.side[p.idx] == side {
			n++
		}
	}
	return n
}

// scheduleFlush makes p take its beacons at arr (rounded up to the next
// millisecond, so a burst of beacons costs one event).
func (s *Sim) scheduleFlush(p *vpeer, arr int64) {
	const ms = 1_000_000
	arr = (arr + ms - 1) / ms * ms
	if p.flushAt == arr {
		return
	}
	p.flushAt = arr
	s.at(arr, event{kind: evFlush, p: p.idx})
}

// flush models node.hearLoop: beacons heard become PeerLoad events, in
// arrival order.
func (s *Sim) flush(p *vpeer) {
	n := 0
	if s.shards == 0 {
		if len(p.inbox) == 0 {
			return
		}
		got := s.bscratch[:0]
		keep := p.inbox[:0]
		for _, b := range p.inbox {
			if b.at <= s.now {
				got = append(got, b)
			} else {
				keep = append(keep, b)
			}
		}
		p.inbox = keep
		if len(got) > 1 {
			slices.SortFunc(got, func(a, b beaconMsg) int {
				if c := cmp.Compare(a.at, b.at); c != 0 {
					return c
				}
				return cmp.Compare(a.from, b.from)
			})
		}
		for _, b := range got {
			if err := p.s.Step(sched.Event{Kind: sched.PeerLoad, Peer: s.peers[b.from].name, Load: b.load}); err != nil {
				s.m.schedErr(err)
			}
			n++
		}
		s.bscratch = got[:0]
	} else {
		n = s.flushShards(p)
	}
	s.m.beaconsApplied += uint64(n)
	if n > 0 {
		s.act(p)
	}
}

// offer models node.offerLocked + offerLoop: the offer goes to every
// listener of the owner's home shard (or its neighbourhood). Peers
// without idle slots would ignore it, so only idle ones get an arrival
// event.
func (s *Sim) offer(o *vpeer, i int32) {
	consider := func(r int32) {
		if r == o.idx || !s.reachable(o.idx, r) {
			return
		}
		rp := s.peers[r]
		d, _ := s.send(mOffer, o.idx, r, offerBytes, false)
		if rp.idle > 0 && !rp.s.Leaving() {
			s.at(s.now+d, event{kind: evOffer, p: r, q: o.idx, t: i})
		}
	}
	rs := o.neigh
	if s.shards > 0 {
		rs = s.listeners[o.home]
	}
	for _, r := range rs {
		consider(r)
	}
}

// probe sends count probes to random live peers other than p that p's
// scheduler does not know (the node draws them from its DHT routing
// table; sched.Scheduler.Knows): each answers with its load, which p
// steps as a ProbeReply. A peer that finds none in a few draws (in a
// swarm where it hears everyone) sends fewer; the scheduler's next tick
// ends the probes not sent, as it ends those lost across a partition.
func (s *Sim) probe(p *vpeer, count int) {
	n := len(s.peers)
	useless := func(r int32) bool {
		q := s.peers[r]
		return r == p.idx || !q.alive || p.s.Knows(q.name)
	}
	for range count {
		if s.live < 2 {
			return
		}
		r := int32(s.prng.IntN(n))
		for tries := 0; useless(r) && tries < 8; tries++ {
			r = int32(s.prng.IntN(n))
		}
		if useless(r) {
			continue
		}
		if d, ok := s.send(mProbe, p.idx, r, smallBytes, false); ok {
			s.at(s.now+d, event{kind: evProbe, p: r, q: p.idx})
		}
	}
}

// probeArrives answers a probe from q with r's load, as a beacon says it.
func (s *Sim) probeArrives(r *vpeer, q int32) {
	st := r.s.Stats()
	l := sched.Load{Slots: st.Slots, Free: max(st.Slots-st.Running, 0), Queue: st.Queued, Funcs: 1}
	d, ok := s.send(mProbeReply, r.idx, q, loadBytes, false)
	if !ok {
		return
	}
	var k int32
	if n := len(s.probeFree); n > 0 {
		k = s.probeFree[n-1]
		s.probeFree = s.probeFree[:n-1]
		s.probeLoads[k] = l
	} else {
		k = int32(len(s.probeLoads))
		s.probeLoads = append(s.probeLoads, l)
	}
	s.at(s.now+d, event{kind: evProbeReply, p: q, q: r.idx, t: k})
}

// offerArrives models node.claimLoop: the offer is stepped as OfferHeard,
// and the scheduler decides whether to claim it.
func (s *Sim) offerArrives(r *vpeer, owner int32, i int32) {
	// The scheduler claims while its idle slots exceed its claims this
	// tick (a ClaimOffer action: see claim).
	if err := r.s.Step(sched.Event{Kind: sched.OfferHeard, Task: s.tasks[i].id, Peer: s.peers[owner].name, Load: sched.Load{Funcs: 1}}); err != nil {
		s.m.schedErr(err)
	}
	s.act(r)
}

// claim sends r's claim of task i to its owner.
func (s *Sim) claim(r *vpeer, owner int32, i int32) {
	s.contact(r.idx, owner)
	if d, ok := s.send(mClaim, r.idx, owner, smallBytes, false); ok {
		s.at(s.now+d, event{kind: evClaim, p: owner, q: r.idx, t: i})
	}
}
