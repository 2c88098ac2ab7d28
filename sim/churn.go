package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/dray-project/dray/sched"
)

// Churn actions (event.t of evChurn).
const (
	actCrash int32 = iota + 1
	actLeave
	actJoin
)

// plannedChurn is one churn step: at a time, an action on count peers
// (or a fraction of the live ones).
type plannedChurn struct {
	at       int64
	act      int32
	count    int
	fraction float64
}

// maxChurnSteps bounds the churn steps a run plans.
const maxChurnSteps = 10_000_000

// planChurn draws the churn steps of the scenario (rates as Poisson
// arrivals) and returns how many peers join, so that every peer of the run
// exists, with its ID and routing table, from the start.
func (s *Sim) planChurn() (int, error) {
	c := s.sc.Churn
	var plan []plannedChurn
	joins := 0
	for _, e := range c.Events {
		act := map[string]int32{"crash": actCrash, "leave": actLeave, "join": actJoin}[e.Action]
		count := e.Count
		if act == actJoin && count == 0 {
			count = int(math.Round(e.Fraction * float64(s.sc.Peers)))
		}
		if act == actJoin {
			joins += count
		}
		plan = append(plan, plannedChurn{at: int64(e.At), act: act, count: count, fraction: e.Fraction})
	}
	start, end := int64(c.Start), int64(c.End)
	if end == 0 && (c.JoinRate > 0 || c.LeaveRate > 0 || c.CrashRate > 0) {
		end = s.expectedSpan()
	}
	for _, r := range []struct {
		act  int32
		rate float64
	}{{actCrash, c.CrashRate}, {actLeave, c.LeaveRate}, {actJoin, c.JoinRate}} {
		if r.rate <= 0 {
			continue
		}
		t := float64(start)
		for {
			t += -math.Log(1-s.crng.Float64()) / r.rate * 1e9
			if t >= float64(end) {
				break
			}
			plan = append(plan, plannedChurn{at: int64(t), act: r.act, count: 1})
			if r.act == actJoin {
				joins++
			}
			if len(plan) > maxChurnSteps || s.sc.Peers+joins > maxRunPeers {
				return 0, fmt.Errorf("%w: churn: the rates make over %d steps or %d peers: lower them, or bound churn.end",
					ErrScenario, maxChurnSteps, maxRunPeers)
			}
		}
	}
	slices.SortStableFunc(plan, func(a, b plannedChurn) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	s.plan = plan
	return joins, nil
}

// expectedSpan estimates how long the workload runs: its submission span
// or its work over the slots, whichever is longer.
func (s *Sim) expectedSpan() int64 {
	w := s.sc.Workload
	slots := 0
	for i := range s.sc.Peers {
		slots += s.sc.slotsOf(i, s.sc.Peers)
	}
	n := w.Tasks
	if w.Kind == "fib" {
		n = int(2*math.Pow(1.618, float64(w.FibN))) * max(w.Jobs, 1)
	}
	work := meanOf(w.Duration) * float64(n) / float64(max(slots, 1))
	span := 0.0
	if rate := s.sc.Submit.Rate; rate > 0 {
		span = float64(n) / rate * 1e9
	} else if w.Load > 0 {
		span = work / w.Load
	}
	return ns(max(work, span))
}

// scheduleChurn queues the planned churn; joining peers get their indices
// in order.
func (s *Sim) scheduleChurn() {
	next := int32(s.sc.Peers)
	for _, c := range s.plan {
		if c.act == actJoin {
			for range c.count {
				s.at(s.t0+c.at, event{kind: evJoin, p: next})
				next++
			}
			continue
		}
		s.at(s.t0+c.at, event{kind: evChurn, t: c.act, q: int32(c.count), epoch: uint16(math.Round(c.fraction * 1000))})
	}
}

// churn crashes or starts the leave of random live peers (not submitters,
// unless the scenario allows it).
func (s *Sim) churn(e event) {
	var cands []int32
	for _, p := range s.peers {
		if p.alive && !p.s.Leaving() && (!p.submitter || s.sc.Churn.CrashSubmitters) {
			cands = append(cands, p.idx)
		}
	}
	n := int(e.q)
	if n == 0 {
		n = int(math.Round(float64(e.epoch) / 1000 * float64(s.live)))
	}
	for k := 0; k < n && len(cands) > 0; k++ {
		j := s.crng.IntN(len(cands))
		p := s.peers[cands[j]]
		cands[j] = cands[len(cands)-1]
		cands = cands[:len(cands)-1]
		if e.t == actCrash {
			s.crash(p)
		} else {
			s.leave(p)
		}
	}
}

// crash takes p down at once. Its own unfinished tasks fail with it
// (fate-sharing: "owner died"); peers with a session to it notice after
// the detection delay and re-place or rebuild what it had.
func (s *Sim) crash(p *vpeer) {
	if !p.alive {
		return
	}
	s.down(p)
	s.m.crashed++
	for _, i := range p.owned {
		if st := s.tasks[i].state; st == tSubmitted {
			s.failTask(i, failOwner)
		}
	}
	at := s.now + int64(s.sc.DetectionDelay)
	for _, q := range sortedKeys(p.contacts) {
		if qp := s.peers[q]; qp.alive {
			s.detect(qp, p.idx, at)
		}
	}
}

// leave starts a graceful leave: tasks handed to p and still queued go
// back to their owners (refusals); what runs finishes and is reported; p
// departs once nothing runs and everything it owns is resolved (see
// maybeDepart).
func (s *Sim) leave(p *vpeer) {
	if !p.alive || p.s.Leaving() {
		return
	}
	s.step(p, sched.Event{Kind: sched.Leave}) // refusals of what waits here
	s.maybeDepart(p)
}

// join brings a new peer up (its ID was in the DHT model from the start,
// as a peer that was offline).
func (s *Sim) join(p *vpeer) {
	if p.alive {
		return
	}
	if k := s.sc.BeaconScope; k > 0 {
		var cands []int32
		for _, q := range s.peers {
			if q.alive {
				cands = append(cands, q.idx)
			}
		}
		for range min((k+1)/2, len(cands)) {
			j := s.crng.IntN(len(cands))
			s.link(p.idx, cands[j])
			cands[j] = cands[len(cands)-1]
			cands = cands[:len(cands)-1]
		}
	}
	s.startPeer(p)
	s.m.joined++
	s.after(p)
}

// buildNeighbours gives each initial peer about BeaconScope neighbours: it
// picks half of them at random and is picked by about as many.
func (s *Sim) buildNeighbours() {
	k := s.sc.BeaconScope
	n := s.sc.Peers
	if k <= 0 || n < 2 {
		return
	}
	half := (k + 1) / 2
	rng := rand.New(rand.NewPCG(mix(s.sc.Seed^0x7e16), s.sc.Seed))
	for i := range n {
		for range min(half, n-1) {
			j := int32(rng.IntN(n - 1))
			if j >= int32(i) {
				j++
			}
			s.link(int32(i), j)
		}
	}
}

// link makes a and b neighbours (hear each other's beacons and offers).
func (s *Sim) link(a, b int32) {
	pa, pb := s.peers[a], s.peers[b]
	if slices.Contains(pa.neigh, b) {
		return
	}
	pa.neigh = append(pa.neigh, b)
	pb.neigh = append(pb.neigh, a)
}

// partitionEvent splits the swarm (a share of the live non-submitting
// peers goes to side 1) or heals it. Sessions across the cut die after
// the detection delay; messages across it are dropped meanwhile.
func (s *Sim) partitionEvent(e event) {
	if e.kind == evHeal {
		clear(s.side)
		s.partition = 0
		s.m.heals++
		return
	}
	pt := s.sc.Partitions[e.t]
	var cands []int32
	for _, p := range s.peers {
		if p.alive && !p.submitter {
			cands = append(cands, p.idx)
		}
	}
	n := int(math.Round(pt.Fraction * float64(s.live)))
	for k := 0; k < n && len(cands) > 0; k++ {
		j := s.crng.IntN(len(cands))
		s.side[cands[j]] = 1
		cands[j] = cands[len(cands)-1]
		cands = cands[:len(cands)-1]
	}
	s.partition = int(e.t) + 1
	s.m.partitions++
	at := s.now + int64(s.sc.DetectionDelay)
	for _, p := range s.peers {
		if !p.alive {
			continue
		}
		for _, q := range sortedKeys(p.contacts) {
			if s.side[q] != s.side[p.idx] {
				s.detect(p, q, at)
			}
		}
	}
	// Beacons in flight across the cut are dropped.
	for _, p := range s.peers {
		if len(p.inbox) == 0 {
			continue
		}
		keep := p.inbox[:0]
		for _, b := range p.inbox {
			if s.side[b.from] == s.side[p.idx] {
				keep = append(keep, b)
			}
		}
		p.inbox = keep
	}
}
