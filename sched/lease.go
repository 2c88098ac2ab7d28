package sched

import "fmt"

// Leases: a peer holding tasks this peer handed it must be heard from (any
// frame on a session: an acknowledgement, a completion, an answer to a
// ping) within Config.LeaseTicks, counted from the last time it was heard
// but never from before it held the tasks. A third of the way the
// scheduler asks for a ping (Ping); past it the peer is dropped (Drop):
// its tasks are lost, placed again or failed past their retries, and it is
// ignored for Config.SilenceTicks. Connection loss is noticed at once
// (PeerGone); the lease catches a peer that hangs with its connection
// open.

// out is what a peer holds of ours: how many tasks, and since when it
// has held any.
type out struct {
	n     int
	since int64
}

// handOut counts a task forwarded to p.
func (s *Scheduler) handOut(p PeerID) {
	o := s.outs[p]
	if o == nil {
		o = &out{since: s.now}
		s.outs[p] = o
	}
	o.n++
}

// handIn counts a task back from p (done, refused, lost).
func (s *Scheduler) handIn(p PeerID) {
	if o := s.outs[p]; o != nil {
		if o.n--; o.n <= 0 {
			delete(s.outs, p)
			delete(s.heardAt, p)
		}
	}
}

// heard records that p said something on a session (Heard).
func (s *Scheduler) heard(p PeerID) {
	if s.outs[p] != nil { // before it holds tasks, hearing it says nothing
		s.heardAt[p] = s.now
	}
}

// checkLeases runs every tick: a peer silent for a third of the lease is
// pinged, and one silent past it is dropped.
func (s *Scheduler) checkLeases() {
	for p, until := range s.silenced {
		if s.now >= until {
			delete(s.silenced, p)
		}
	}
	if s.cfg.LeaseTicks <= 0 || len(s.outs) == 0 {
		return
	}
	var pings, drops []PeerID
	for p, o := range s.outs {
		silent := s.now - max(s.heardAt[p], o.since)
		switch {
		case silent > int64(s.cfg.LeaseTicks):
			drops = append(drops, p)
		case 3*silent > int64(s.cfg.LeaseTicks):
			pings = append(pings, p)
		}
	}
	sortPeers(pings)
	for _, p := range pings {
		s.actions = append(s.actions, Action{Kind: Ping, Peer: p})
	}
	sortPeers(drops)
	for _, p := range drops {
		s.silenced[p] = s.now + int64(s.cfg.SilenceTicks)
		s.actions = append(s.actions, Action{Kind: Drop, Peer: p})
		s.peerGone(p)
	}
}

// Silenced reports whether p's lease expired less than SilenceTicks ago:
// its beacons, probe answers, claims and offers are ignored meanwhile, and
// it is worth no probe.
func (s *Scheduler) Silenced(p PeerID) bool {
	_, ok := s.silenced[p]
	return ok
}

// checkOuts verifies the lease records against the tasks (Config.Check).
func (s *Scheduler) checkOuts(perPeer map[PeerID]int) {
	for p, n := range perPeer {
		if o := s.outs[p]; o == nil || o.n != n {
			panic(fmt.Errorf("%w: %d tasks out on %s, lease records %v", ErrInvariant, n, p, o))
		}
	}
	if len(s.outs) != len(perPeer) {
		panic(fmt.Errorf("%w: lease records for %d peers, tasks out on %d", ErrInvariant, len(s.outs), len(perPeer)))
	}
}
