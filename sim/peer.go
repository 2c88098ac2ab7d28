package sim

import "github.com/dray-project/dray/sched"

// A virtual peer and its core loop: its state (vpeer), starting it,
// stepping its scheduler and performing the actions it asks for, its tick
// and its submissions. The I/O of those actions is modelled beside it:
// swarm.go (beacons, offers and claims, probes), run.go (runs and their
// inputs), owner.go (hand-offs, completions, failures), leave.go
// (sessions, peers gone, loans, leaving) and dht.go (announcements and
// lookups).

// vpeer is a virtual node: the real per-peer core (*sched.Scheduler, with
// the node's configuration and lifecycle) inside a shell that models the
// node's I/O in virtual time instead of doing it — sessions and gossip as
// delays on the network model, workers as durations, fetches as bytes on
// an uplink. What a peer decides is the core's; what the shell models is
// named after the node code that does it for real (node/swarm.go,
// node/session.go, node/node.go), so the two read side by side.
type vpeer struct {
	idx   int32
	name  sched.PeerID
	s     *sched.Scheduler
	slots int

	alive, submitter bool
	phase, bphase    int64 // offsets of the tick and beacon tickers

	// beacons (beaconLoop / hearLoop)
	last      sched.Load
	lastSent  int64
	sentAny   bool
	nextCheck int64
	inbox     []beaconMsg // scope N: beacons sent to this peer
	flushAt   int64
	neigh     []int32 // scope N: the peers that hear this one
	// shards: the one this peer beacons and offers on, the other it
	// listens to (the same with one shard), and the next entry of each
	// one's beacon log to read
	home, extra int32
	cursor      [2]int

	contacts map[int32]struct{} // peers with a session to this one
	goneAt   map[int32]int64    // detections scheduled
	idle     int                // slots - running - queued, after the last step

	here       map[int32]hereRec // tasks handed to this peer
	owned      []int32           // tasks this peer submitted
	unresolved int               // of owned, not done or failed
	annq       []annItem         // outputs to announce (node.anns)
	annHead    int

	busy int64 // ns of work started here
	ran  uint32
}

// hereRec is a task another peer handed to this one.
type hereRec struct {
	epoch    uint16
	running  bool
	accepted int64
}

type annItem struct {
	t  int32
	at int64
}

func (s *Sim) peerIndex(id sched.PeerID) int32 { return taskIndex(sched.TaskID(id[1:])) }

// startPeer starts p's tickers, as node.startSwarm starts tickLoop and
// beaconLoop.
func (s *Sim) startPeer(p *vpeer) {
	p.alive = true
	s.live++
	p.contacts = make(map[int32]struct{})
	p.here = make(map[int32]hereRec)
	if s.shards > 0 {
		p.cursor = [2]int{s.logs[p.home].end(), s.logs[p.extra].end()}
	}
	s.at(s.now+p.phase, event{kind: evTick, p: p.idx})
	p.nextCheck = s.now + p.bphase
	s.at(p.nextCheck, event{kind: evBeacon, p: p.idx})
}

// step models node.step: apply one event, perform the actions. Beacons
// that arrived since p's last event are applied first (see flush).
func (s *Sim) step(p *vpeer, ev sched.Event) {
	s.flush(p)
	if err := p.s.Step(ev); err != nil {
		s.m.schedErr(err)
	}
	s.act(p)
	s.after(p)
}

// act models node.actLocked: Run starts a worker, Forward hands the task
// over on a session, Offer gossips it, Fail fails its outputs (cascading
// through the scheduler).
func (s *Sim) act(p *vpeer) {
	for p.s.HasActions() {
		var buf [8]sched.Action // our own: handling an action steps again
		s.perform(p, p.s.TakeActions(buf[:0]))
	}
}

// perform carries out actions p's scheduler asked for.
func (s *Sim) perform(p *vpeer, as []sched.Action) {
	for _, a := range as {
		i := taskIndex(a.Task)
		switch a.Kind {
		case sched.Run:
			s.runAction(p, i)
		case sched.Forward:
			s.forward(p, i, s.peerIndex(a.Peer))
		case sched.Offer:
			s.offer(p, i)
		case sched.Probe:
			s.probe(p, a.Count)
		case sched.Fail:
			why := failDep
			if a.Reason == sched.FailLost {
				why = failLost
			}
			s.failTask(i, why)
		case sched.Refuse:
			h := p.here[i]
			delete(p.here, i)
			s.refuse(p, s.peerIndex(a.Peer), i, h.epoch)
		case sched.Cancel:
			s.cancelRun(p, i)
		case sched.ClaimOffer:
			s.claim(p, s.peerIndex(a.Peer), i)
		case sched.Fetch:
			s.fetchHere(p, taskIndex(sched.TaskID(a.Object)))
		case sched.Take:
			s.take(p, s.peerIndex(a.Peer), taskIndex(sched.TaskID(a.Object)))
		case sched.EndLoan:
			// The bytes go, or stay as a cache: the model keeps no store.
		case sched.Rebuild:
			// Its holder is lost: the scheduler runs it again.
			t := &s.tasks[i]
			t.lost, t.state = true, tSubmitted
			s.m.rebuilds++
		}
	}
}

// after records what the next beacon, offer claims and beacon delivery
// need from p's scheduler.
func (s *Sim) after(p *vpeer) {
	if !p.alive {
		return
	}
	st := p.s.Stats()
	p.idle = st.Slots - st.Running - st.Queued
	if st.Queued > 0 {
		if s.qpos[p.idx] < 0 {
			s.qpos[p.idx] = int32(len(s.queued))
			s.queued = append(s.queued, p.idx)
		}
	} else if s.qpos[p.idx] >= 0 {
		s.unqueue(p.idx)
	}
	// beaconLoop looks at the load every beaconEvery.
	b := p.bphase + ((s.now-p.bphase)/beaconEvery+1)*beaconEvery
	if p.nextCheck == 0 || p.nextCheck > b {
		p.nextCheck = b
		s.at(b, event{kind: evBeacon, p: p.idx})
	}
}

func (s *Sim) unqueue(i int32) {
	k := s.qpos[i]
	if k < 0 {
		return
	}
	last := s.queued[len(s.queued)-1]
	s.queued[k] = last
	s.qpos[last] = k
	s.queued = s.queued[:len(s.queued)-1]
	s.qpos[i] = -1
}

// tick models node.tickLoop: step Tick. The node's announcement queue
// is flushed on the same beat.
func (s *Sim) tick(p *vpeer) {
	s.step(p, sched.Event{Kind: sched.Tick})
	s.announce(p)
	s.trimLogs()
	s.at(s.now+tickEvery, event{kind: evTick, p: p.idx})
}

// submit models node.submitLocked: dependencies not ready are Deps, ready
// ones are Inputs with their size and holder (locality), and a put
// argument (the map input) is an Input held by the owner.
func (s *Sim) submit(o *vpeer, i int32) {
	t := &s.tasks[i]
	t.state = tSubmitted
	ev := sched.Event{Kind: sched.Submit, Task: t.id, Nested: t.parent >= 0}
	for _, d := range s.depsOf(t) {
		dt := &s.tasks[d]
		switch {
		case dt.state == tFailed || dt.state == tAbandoned:
			s.failTask(i, failDep) // node: DependencyError without running
			return
		case dt.state != tDone || dt.lost:
			ev.Deps = append(ev.Deps, sched.ObjectID(dt.id))
		default:
			ev.Inputs = append(ev.Inputs, sched.Input{Object: sched.ObjectID(dt.id), Size: dt.out,
				Holders: []sched.PeerID{s.peers[dt.holder].name}})
		}
	}
	if t.input > 0 {
		ev.Inputs = append(ev.Inputs, sched.Input{Object: sched.ObjectID("i" + t.id), Size: t.input,
			Holders: []sched.PeerID{o.name}})
	}
	s.step(o, ev)
}
