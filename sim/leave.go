package sim

import (
	"slices"

	"github.com/dray-project/dray/sched"
)

// Sessions and departures (node.peerLoop, node/leave.go): the peers a
// peer has a session with, noticing that one is gone (after the detection
// delay, or at once when it closes its connections), a graceful leave
// once nothing is left here, and loans ended: release by the owner, take
// by a leaving holder.

func (s *Sim) contact(a, b int32) {
	if pa := s.peers[a]; pa.contacts != nil {
		pa.contacts[b] = struct{}{}
	}
	if pb := s.peers[b]; pb.contacts != nil {
		pb.contacts[a] = struct{}{}
	}
}

// detect schedules o noticing that q is gone (once per pending detection).
func (s *Sim) detect(o *vpeer, q int32, at int64) {
	if o.goneAt == nil {
		o.goneAt = make(map[int32]int64)
	}
	if old, ok := o.goneAt[q]; ok && old <= at {
		return
	}
	o.goneAt[q] = at
	s.at(at, event{kind: evGone, p: o.idx, q: q})
}

// gone models node.peerLoop (PeerGone): one step, in which the scheduler
// re-places or fails the tasks handed to q, stops those q handed this
// peer, and runs again the lineages of results q held that are still
// needed (Rebuild actions).
func (s *Sim) gone(o *vpeer, q int32) {

	delete(o.goneAt, q)
	if s.reachable(o.idx, q) {
		return // healed before the session timed out
	}
	delete(o.contacts, q)
	// One PeerGone: the scheduler puts the tasks handed to q back in its
	// queue, fails those past their retries (Fail, FailLost), and stops
	// the tasks q handed o (Cancel). A completion from q that arrives
	// later is stale.
	s.flush(o)
	if err := o.s.Step(sched.Event{Kind: sched.PeerGone, Peer: s.peers[q].name}); err != nil {
		s.m.schedErr(err)
	}
	s.act(o)
	s.after(o)
}

// maybeDepart ends a graceful leave once nothing runs here, every task
// this peer owns is resolved and the owners of what it lent took it (the
// scheduler's Left): the connections close, so peers notice at once.
func (s *Sim) maybeDepart(p *vpeer) {
	if !p.alive || !p.s.Leaving() {
		return
	}
	st := p.s.Stats()

	if st.Running+st.Blocked > 0 || p.unresolved > 0 || p.s.Hosted()+p.s.Lending() > 0 {
		return
	}
	s.down(p)
	// The connections close after the frames sent on them (TCP order).
	for _, q := range sortedKeys(p.contacts) {
		if qp := s.peers[q]; qp.alive {
			s.detect(qp, p.idx, max(s.now, s.net.uplink[p.idx])+s.net.latency(p.idx, q)+closeMargin)
		}
	}
	s.m.left++
}

// closeMargin puts a graceful close after the last frame sent before it.
const closeMargin = int64(1e6)

// down takes p out of the swarm.
func (s *Sim) down(p *vpeer) {
	p.alive = false
	s.live--
	s.unqueue(p.idx)
	s.lastChange = s.now
}

func sortedKeys(m map[int32]struct{}) []int32 {
	ks := make([]int32, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// release models node.sendRelease: owner o no longer needs the output of
// task i that holder lends it; the holder's scheduler ends the loan.
func (s *Sim) release(o *vpeer, holder, i int32) {
	if d, ok := s.send(mRelease, o.idx, holder, smallBytes, false); ok {
		s.at(s.now+d, event{kind: evRelease, p: holder, q: o.idx, t: i})
	}
}

// take models the Take action (node.loanLocked): p, leaving, asks owner
// to take the output of task i now.
func (s *Sim) take(p *vpeer, owner, i int32) {
	if d, ok := s.send(mTake, p.idx, owner, smallBytes, false); ok {
		s.at(s.now+d, event{kind: evTake, p: owner, q: p.idx, t: i})
	}
}

// takeArrives models node.handleTake: owner o fetches the output of task
// i from holder, which is leaving, if that copy is the one it has, and
// releases the loan either way.
func (s *Sim) takeArrives(o *vpeer, holder, i int32) {
	t := &s.tasks[i]
	var fetch int64 // the release follows the fetch
	if t.owner == o.idx && t.state == tDone && t.holder == holder {
		s.send(mFetch, o.idx, holder, smallBytes, false)
		fetch, _ = s.send(mFetch, holder, o.idx, smallBytes+t.out, true)
		s.m.fetched += t.out
		t.holder = o.idx
		s.step(o, sched.Event{Kind: sched.Settled, Object: sched.ObjectID(t.id), Here: true})
		o.annq = append(o.annq, annItem{t: i, at: s.now})
	}
	if d, ok := s.send(mRelease, o.idx, holder, smallBytes, false); ok {
		s.at(s.now+fetch+d, event{kind: evRelease, p: holder, q: o.idx, t: i})
	}
}
