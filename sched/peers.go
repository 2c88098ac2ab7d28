package sched

import (
	"cmp"
	"fmt"
	"slices"
)

// peer is what the scheduler knows of another peer from its beacons.
type peer struct {
	id    PeerID
	load  Load
	heard int64 // tick of the last beacon
	est   int   // room (see room), less the tasks forwarded since the beacon
	roomy bool  // in s.roomy
	// Its function table (see funcs.go): the functions, nil while
	// unknown; the digest they were stepped with; the digest asked for.
	funcs         map[FuncID]struct{}
	resources     map[string]int
	digest, asked uint64
}

// fix keeps s.roomy — the peers with room, sorted by ID — in step with p
// after its load, room or presence changed, so a placement draws from it
// without scanning every peer.
func (s *Scheduler) fix(p *peer) {
	want := p.est > 0 && s.peers[p.id] == p
	if want == p.roomy {
		return
	}
	s.gen++
	i, _ := slices.BinarySearchFunc(s.roomy, p.id, func(q *peer, id PeerID) int { return cmp.Compare(q.id, id) })
	if want {
		s.roomy = slices.Insert(s.roomy, i, p)
	} else {
		s.roomy = slices.Delete(s.roomy, i, i+1)
	}
	p.roomy = want
}

// peerEvent applies the events about other peers and time.
func (s *Scheduler) peerEvent(ev Event) error {
	switch ev.Kind {
	case PeerLoad, ProbeReply, Claim, OfferHeard:
		if s.Silenced(ev.Peer) {
			return nil // its lease expired: not trusted with work for a while
		}
	}
	switch ev.Kind {
	case PeerLoad, ProbeReply:
		// A reply frees its probe for another, except that replies that
		// found no room free at most probeWaste probe batches a tick: a
		// saturated swarm is not probed a round trip after another.
		if ev.Kind == ProbeReply && s.probing > 0 {
			if room(ev.Load) > 0 {
				s.probing--
			} else if s.wasted < probeWaste*s.cfg.ProbeBatch {
				s.wasted++
				s.probing--
			}
		}
		if ev.Peer == "" || ev.Peer == s.cfg.Self {
			return fmt.Errorf("%w: peer-load without a peer, or from this peer", ErrEvent)
		}
		p := s.peers[ev.Peer]
		if p == nil {
			p = &peer{id: ev.Peer}
			s.peers[ev.Peer] = p
		}
		p.load, p.heard, p.est = ev.Load, s.now, room(ev.Load)
		s.fix(p)
		s.wantTable(p)
	case PeerGone:
		s.peerGone(ev.Peer)
	case Tick:
		s.now++
		s.probing, s.wasted = 0, 0 // unanswered probes end with the tick
		s.claimed = 0
		s.checkLeases()
		for id, p := range s.peers {
			if s.cfg.BeaconTTL > 0 && s.now-p.heard > int64(s.cfg.BeaconTTL) {
				delete(s.peers, id)
				s.fix(p)
			}
		}
		s.offer()
		s.expireUnoffered()
	case Claim:
		t := s.tasks[ev.Task]
		if t == nil || t.state != queued || t.here {
			// Taken already (placed while the claim was on its way): the
			// claimer, idle, gets the next task that waits instead — late
			// binding, as a Sparrow worker asks for whatever is next. A
			// task nobody has offered yet is fine to give: it waits too.
			if t = s.nextFor(ev.Peer); t == nil || t.nested && s.now-t.queuedAt < int64(s.cfg.NestedWait) {
				return nil
			}
		}
		s.forward(t, ev.Peer) // its queue entry is skipped as stale
	case Refused, Lost:
		t, err := s.lookup(ev)
		if err != nil {
			return err
		}
		if t.state != forwarded || t.peer != ev.Peer {
			return fmt.Errorf("%w: %s by %s for %s task %x", ErrState, ev.Kind, ev.Peer, t.state, ev.Task)
		}
		if p := s.peers[ev.Peer]; p != nil {
			p.est = 0 // not chosen again until its next beacon
			s.fix(p)
		}
		s.takeBack(t, ev.Kind == Lost)
	case Leave:
		s.leave()
	case OfferHeard:
		s.offerHeard(ev)
	case Heard:
		s.heard(ev.Peer)
	}
	return nil
}

// probeWaste is how many batches of probes that find no room a tick may
// free for more probes (see ProbeReply).
const probeWaste = 64

// room is how many more tasks a peer takes, by its beacon: its free slots
// plus a queue as deep as its slots, less what it has queued already. The
// queue hides the time until its next beacon: a slot that frees up finds
// work waiting instead of idling until the owners hear of it.
func room(l Load) int {
	return max(l.Free+l.Slots-l.Queue, 0)
}

// offerBatch bounds the tasks offered per tick, so a long queue costs a
// tick O(batch), not O(queue).
const offerBatch = 64

// offer announces queued tasks that waited OfferAfter ticks, from the head
// of each class's queue.
func (s *Scheduler) offer() {
	n := 0
	for _, c := range s.sortedActive() {
		c.queue.each(func(id TaskID) bool {
			t := s.tasks[id]
			if t == nil || t.state != queued {
				return true
			}
			if s.now-t.queuedAt < int64(s.cfg.OfferAfter) {
				return false // the rest joined later
			}
			if !t.offered {
				t.offered = true
				s.actions = append(s.actions, Action{Kind: Offer, Task: id})
			}
			n++
			return n < offerBatch
		})
		if n >= offerBatch {
			return
		}
	}
}

// nextFor returns the first queued task, among the classes p offers, that
// became ready first, or nil.
func (s *Scheduler) nextFor(id PeerID) *task {
	p := s.peers[id]
	var bt *task
	for _, c := range s.active {
		if (c.fn != 0 || len(c.needs) > 0) && (p == nil || !s.peerRuns(p, c)) {
			continue
		}
		if t := s.head(c); t != nil && (bt == nil || t.seq < bt.seq) {
			bt = t
		}
	}
	return bt
}

// choose picks a peer for t by power-of-two choices among cands, the
// peers with room that offer its function: of two drawn at random, the
// one holding more of t's input bytes, then the less loaded. It returns ""
// when no peer has room. The candidates are kept sorted by ID as they
// change (see fix and candidates), so a placement costs O(1) whatever the
// number of peers, and the draws are reproducible.
func (s *Scheduler) choose(t *task, cands []*peer) PeerID {
	switch len(cands) {
	case 0:
		return ""
	case 1:
		return cands[0].id
	}
	i := s.rand.IntN(len(cands))
	j := s.rand.IntN(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if s.better(t, b, a) {
		return b.id
	}
	return a.id
}

// better reports whether p is a better home for t than q.
func (s *Scheduler) better(t *task, p, q *peer) bool {
	lp, lq := localBytes(t, p.id), localBytes(t, q.id)
	if lp != lq {
		return lp > lq
	}
	// Less loaded: fewer queued tasks per slot, then more free slots.
	ap := float64(p.load.Queue) / float64(max(p.load.Slots, 1))
	aq := float64(q.load.Queue) / float64(max(q.load.Slots, 1))
	if ap != aq {
		return ap < aq
	}
	return p.est > q.est
}

// localBytes is how many bytes of t's inputs p holds already.
func localBytes(t *task, p PeerID) int64 {
	var n int64
	for _, in := range t.inputs {
		for _, h := range in.Holders {
			if h == p {
				n += in.Size
				break
			}
		}
	}
	return n
}

func sortPeers(ps []PeerID) { slices.Sort(ps) }

func sortTasks(ts []*task) {
	slices.SortFunc(ts, func(a, b *task) int { return cmp.Compare(a.id, b.id) })
}
