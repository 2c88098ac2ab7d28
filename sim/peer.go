package sim

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/dray-project/dray/sched"
)

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

// beaconMsg is a load beacon in flight.
type beaconMsg struct {
	at   int64
	from int32
	side uint8
	load sched.Load
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

// runAction models the Run case of node.actLocked and node.execute's
// start: a worker takes the task, resolves its arguments (fetching what
// is elsewhere), then runs it.
func (s *Sim) runAction(p *vpeer, i int32) {
	t := &s.tasks[i]
	var epoch uint16
	if t.owner == p.idx {
		t.exec = p.idx // node: t.peer = ""
		t.epoch++
		epoch = t.epoch
	} else {
		h, ok := p.here[i]
		if !ok {
			s.m.schedErr(fmt.Errorf("sim: peer %s runs task %d nobody handed it", p.name, i))
			return
		}
		h.running = true
		p.here[i] = h
		epoch = h.epoch
	}
	t.runs++
	if t.runs > 1 {
		s.m.reruns++
	}
	p.ran++
	s.fetchInputs(p, i, epoch)
}

// running reports whether the run of task i with epoch is live on p.
func (s *Sim) running(p *vpeer, i int32, epoch uint16) bool {
	t := &s.tasks[i]
	if t.owner == p.idx {
		return t.exec == p.idx && t.epoch == epoch && t.state == tSubmitted
	}
	h, ok := p.here[i]
	return ok && h.running && h.epoch == epoch
}

// runEpoch returns the epoch of i's live run on p.
func (s *Sim) runEpoch(p *vpeer, i int32) (uint16, bool) {
	t := &s.tasks[i]
	if t.owner == p.idx {
		return t.epoch, t.exec == p.idx && t.state == tSubmitted
	}
	h, ok := p.here[i]
	return h.epoch, ok && h.running
}

// fetchInputs models node.run resolving arguments: inline values are
// here already; a value by reference is fetched from its holder (want,
// then have + bytes). A holder that is gone makes the fetch wait for the
// owner to rebuild the value (lineage), retried every detection delay;
// an executor whose owner is gone gives up.
func (s *Sim) fetchInputs(p *vpeer, i int32, epoch uint16) {
	if !s.running(p, i, epoch) {
		return
	}
	t := &s.tasks[i]
	// remote reports whether an input must be fetched (false: it is here,
	// or came inline with the hand-off).
	remote := func(holder int32, size int64) bool {
		return holder != p.idx && !(holder == t.owner && size <= inlineMax && p.idx != t.owner)
	}
	blocked, lostDep := false, int32(-1)
	for _, d := range s.depsOf(t) {
		dt := &s.tasks[d]
		if dt.lost || dt.state != tDone || remote(dt.holder, dt.out) && !s.reachable(p.idx, dt.holder) {
			blocked, lostDep = true, d
			break
		}
	}
	if t.input > 0 && remote(t.owner, t.input) && !s.reachable(p.idx, t.owner) {
		blocked = true
	}
	if blocked {
		if t.owner != p.idx && !s.reachable(p.idx, t.owner) {
			s.abandonRun(p, i) // nobody to report to, nobody to rebuild
			return
		}
		// The holders named failed: look the object up in the DHT.
		s.dhtLookup(p.idx, objectKey(s.sc.Seed, i, 1))
		if t.owner != p.idx && lostDep >= 0 {
			// As the node's executor: hand the task back naming the
			// input; the owner gets it or has it made again (ArgLost).
			s.handBackArg(p, i, lostDep)
			return
		}
		// The owner's own run waits in Get for the rebuild.
		s.at(s.now+int64(s.sc.DetectionDelay), event{kind: evFetchRetry, p: p.idx, t: i, epoch: epoch})
		return
	}
	var wait int64
	fetch := func(holder int32, size int64) {
		if !remote(holder, size) {
			return
		}
		d1, _ := s.send(mFetch, p.idx, holder, smallBytes, false)
		d2, _ := s.send(mFetch, holder, p.idx, smallBytes+size, true)
		wait += d1 + d2
		s.m.fetched += size
	}
	for _, d := range s.depsOf(t) {
		fetch(s.tasks[d].holder, s.tasks[d].out)
	}
	if t.input > 0 {
		fetch(t.owner, t.input)
	}
	s.at(s.now+wait, event{kind: evStart, p: p.idx, t: i, epoch: epoch})
}

// handBackArg: executor p could fetch input d of task i from nobody: its
// run ends (the slot goes back) and the owner hears which input (a
// refusal naming it).
func (s *Sim) handBackArg(p *vpeer, i, d int32) {
	h := p.here[i]
	delete(p.here, i)
	s.step(p, sched.Event{Kind: sched.Done, Task: s.tasks[i].id})
	owner := s.tasks[i].owner
	if dl, ok := s.send(mRefuse, p.idx, owner, refusalBytes, false); ok {
		if s.argLost == nil {
			s.argLost = make(map[int32]int32)
		}
		s.argLost[i] = d
		s.at(s.now+dl, event{kind: evArgLost, p: owner, q: p.idx, t: i, epoch: h.epoch})
	}
	s.maybeDepart(p)
}

// argLostArrives: the owner takes task i back from the executor that
// could not fetch its input (ArgLost); the task waits for it, and the
// scheduler asks for it here (Fetch: see fetchHere).
func (s *Sim) argLostArrives(o *vpeer, from, i int32, epoch uint16) {
	t := &s.tasks[i]
	d, ok := s.argLost[i]
	if !ok || o.s.HandedTo(t.id) != s.peers[from].name || t.epoch != epoch || t.state != tSubmitted {
		return
	}
	delete(s.argLost, i)
	s.step(o, sched.Event{Kind: sched.ArgLost, Task: t.id, Peer: s.peers[from].name, Object: sched.ObjectID(s.tasks[d].id)})
}

// fetchHere: the owner o gets input d (a Fetch action), as the node's
// recoverObject does: from its holder if it can reach it (then it holds
// it), made again from its lineage if not (ObjectLost), or, if neither,
// it is lost for the tasks waiting for it (ObjectFailed).
func (s *Sim) fetchHere(o *vpeer, d int32) {
	dt := &s.tasks[d]
	switch {
	case dt.lost || dt.state != tDone:
		return // being made again: its ObjectReady comes then
	case dt.holder == o.idx:
		s.step(o, sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(dt.id), Holder: o.name, Size: dt.out})
	case s.reachable(o.idx, dt.holder):
		d1, _ := s.send(mFetch, o.idx, dt.holder, smallBytes, false)
		d2, _ := s.send(mFetch, dt.holder, o.idx, smallBytes+dt.out, true)
		s.m.fetched += dt.out
		s.at(s.now+d1+d2, event{kind: evFetched, p: o.idx, t: d})
	default:
		s.step(o, sched.Event{Kind: sched.ObjectLost, Object: sched.ObjectID(dt.id)})
		if !dt.lost {
			s.step(o, sched.Event{Kind: sched.ObjectFailed, Object: sched.ObjectID(dt.id)})
		}
	}
}

// fetched: o has input d's bytes now (see fetchHere).
func (s *Sim) fetched(o *vpeer, d int32) {
	dt := &s.tasks[d]
	if dt.lost || dt.state != tDone {
		return
	}
	dt.holder = o.idx
	s.step(o, sched.Event{Kind: sched.Settled, Object: sched.ObjectID(dt.id), Here: true})
	s.step(o, sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(dt.id), Holder: o.name, Size: dt.out})
}

// abandonRun ends a run that cannot finish usefully: the slot goes back.
func (s *Sim) abandonRun(p *vpeer, i int32) {
	delete(p.here, i)
	s.step(p, sched.Event{Kind: sched.Done, Task: s.tasks[i].id})
	s.maybeDepart(p)
}

// startWork runs the function: fib(n>=2) reaches its nested calls half
// way through its own work.
func (s *Sim) startWork(p *vpeer, i int32, epoch uint16) {
	if !s.running(p, i, epoch) {
		return
	}
	t := &s.tasks[i]
	if t.startAt == 0 {
		t.startAt = s.now
		ready := t.submitAt
		for _, d := range s.depsOf(t) {
			ready = max(ready, s.tasks[d].doneAt)
		}
		s.m.schedDelay = append(s.m.schedDelay, s.now-ready)
	}
	p.busy += t.dur
	if t.fibN >= 2 {
		s.at(s.now+t.dur/2, event{kind: evSpawn, p: p.idx, t: i, epoch: epoch})
		return
	}
	s.at(s.now+t.dur, event{kind: evRunEnd, p: p.idx, t: i, epoch: epoch})
}

// spawn: fib calls fib(n-1) and fib(n-2) (nested submissions, owned by
// this peer, as node.callOn from inside a task) and blocks in Get (node
// blockLocked: the slot goes back).
func (s *Sim) spawn(p *vpeer, i int32, epoch uint16) {
	if !s.running(p, i, epoch) {
		return
	}
	n := s.tasks[i].fibN
	c1 := s.newTask(p.idx, s.now, n-1, i, nil)
	c2 := s.newTask(p.idx, s.now, n-2, i, nil)
	s.tasks[c1].pEpoch, s.tasks[c2].pEpoch = epoch, epoch
	s.tasks[i].kids = 2
	p.unresolved += 2
	s.submit(p, c1)
	s.submit(p, c2)
	s.step(p, sched.Event{Kind: sched.Blocked, Task: s.tasks[i].id})
}

// resume: the children are done; node unblockLocked, then the rest of
// the work.
func (s *Sim) resume(p *vpeer, i int32, epoch uint16) {
	if !s.running(p, i, epoch) {
		return
	}
	t := &s.tasks[i]
	s.step(p, sched.Event{Kind: sched.Unblocked, Task: t.id})
	s.at(s.now+t.dur-t.dur/2, event{kind: evRunEnd, p: p.idx, t: i, epoch: epoch})
}

// runEnd models node.execute after the function returns: Done gives the
// slot back; the owner finishes the outputs (finishLocked), an executor
// reports to the owner (node.report): results up to 64 KiB inline, larger
// ones lent (kept here, announced) — and the acknowledgement went out
// only if the task took longer than ackDelay. A function that failed
// (failed: a nested call of a fib task failed) reports its error instead,
// which fails the task at its owner (errors are never retried).
func (s *Sim) runEnd(p *vpeer, i int32, epoch uint16, failed bool) {
	if !s.running(p, i, epoch) {
		return
	}
	t := &s.tasks[i]
	s.m.runsDone++
	if t.owner == p.idx {
		s.step(p, sched.Event{Kind: sched.Done, Task: t.id})
		if failed {
			s.failTask(i, failDep)
		} else {
			s.finishOwned(p, i, p.idx)
		}
		s.maybeDepart(p)
		return
	}
	h := p.here[i]
	delete(p.here, i)
	// A large result stays here, lent to the owner: the scheduler keeps
	// the loan until the owner releases it.
	lent := t.out > inlineMax && !failed
	ev := sched.Event{Kind: sched.Done, Task: t.id}
	if lent {
		ev.Lent = []sched.ObjectID{sched.ObjectID(t.id)}
	}
	s.step(p, ev)
	if s.now-h.accepted >= ackDelay {
		s.send(mAck, p.idx, t.owner, smallBytes, false)
	}
	size := int64(completionBytes)
	if t.out <= inlineMax && !failed {
		size += t.out
	}
	if d, ok := s.send(mCompletion, p.idx, t.owner, size, false); ok {
		kind := evCompletion
		if failed {
			kind = evFailure
		}
		s.at(s.now+d, event{kind: kind, p: t.owner, q: p.idx, t: i, epoch: epoch})
		if lent {
			p.annq = append(p.annq, annItem{t: i, at: s.now})
		}
	} else if lent {
		// The owner never hears of the loan: it ends.
		s.step(p, sched.Event{Kind: sched.Released, Object: sched.ObjectID(t.id), Peer: s.peers[t.owner].name})
	}
	s.maybeDepart(p)
}

// childFailed: a nested call of fib task i, which runs on p blocked on
// its children, failed; the task's Get returns the error, and so does the
// function (node unblockLocked, then the run ends with the error).
func (s *Sim) childFailed(p *vpeer, i int32, epoch uint16) {
	if !s.running(p, i, epoch) {
		return
	}
	s.step(p, sched.Event{Kind: sched.Unblocked, Task: s.tasks[i].id})
	s.runEnd(p, i, epoch, true)
}

// completionArrives models node.handleDone: a completion for a task that
// was re-placed meanwhile is stale and ignored; one that reports an error
// (failed) fails the task.
func (s *Sim) completionArrives(o *vpeer, from int32, i int32, epoch uint16, failed bool) {
	t := &s.tasks[i]
	if o.s.HandedTo(t.id) != s.peers[from].name || t.epoch != epoch || t.state != tSubmitted {
		s.m.stale++
		if !failed && t.out > inlineMax {
			s.release(o, from, i) // node.releaseLent
		}
		return
	}
	ev := sched.Event{Kind: sched.Done, Task: t.id, Peer: s.peers[from].name}
	if !failed && t.out > inlineMax {
		ev.Lent = []sched.ObjectID{sched.ObjectID(t.id)} // kept by the executor: the scheduler keeps the lineage
	}
	s.step(o, ev)
	if failed {
		s.failTask(i, failDep)
	} else {
		holder := o.idx
		if t.out > inlineMax {
			holder = from
		}
		s.finishOwned(o, i, holder)
	}
	s.maybeDepart(o)
}

// finishOwned models node.finishLocked for a task that succeeded: the
// output is ready (ObjectReady with its holder and size, for locality),
// announced, and a fib parent waiting on it may resume. A final result
// lent by its executor is fetched by the user's Get.
func (s *Sim) finishOwned(o *vpeer, i int32, holder int32) {
	t := &s.tasks[i]
	first := t.doneAt == 0
	t.state, t.holder, t.lost = tDone, holder, false
	s.lastChange = s.now
	if first {
		t.doneAt = s.now
		s.m.latency = append(s.m.latency, s.now-t.submitAt)
		s.m.completed++
		o.unresolved--
		if t.top {
			s.resolved++
		}
		for _, d := range s.depsOf(t) {
			dt := &s.tasks[d]
			dt.refs--
			if dt.refs == 0 && dt.holder != o.idx {
				// Its dependents are done: the owner drops it and
				// releases the loan (the scheduler keeps its lineage
				// while another reads it).
				s.step(o, sched.Event{Kind: sched.Settled, Object: sched.ObjectID(dt.id)})
				s.release(o, dt.holder, d)
			}
		}
	}
	s.step(o, sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(t.id), Holder: s.peers[holder].name, Size: t.out})
	if holder != o.idx {
		switch {
		case t.final:
			// The user's Get fetches it; the owner then releases the loan.
			if s.reachable(o.idx, holder) {
				s.send(mFetch, o.idx, holder, smallBytes, false)
				s.send(mFetch, holder, o.idx, smallBytes+t.out, true)
				s.release(o, holder, i)
				s.m.fetched += t.out
			}
			t.holder = o.idx
			s.step(o, sched.Event{Kind: sched.Settled, Object: sched.ObjectID(t.id), Here: true})
		case t.refs == 0:
			s.step(o, sched.Event{Kind: sched.Settled, Object: sched.ObjectID(t.id)})
			s.release(o, holder, i)
		}
	}
	if t.holder == o.idx {
		o.annq = append(o.annq, annItem{t: i, at: s.now})
	}
	if t.parent >= 0 {
		if e, ok := s.runEpoch(o, t.parent); ok && e == t.pEpoch {
			pt := &s.tasks[t.parent]
			pt.kids--
			if pt.kids == 0 {
				s.at(s.now, event{kind: evResume, p: o.idx, t: t.parent, epoch: e})
			}
		}
	}
}

// Why a task failed (failTask).
const (
	failDep   = iota + 1 // a dependency or a nested call failed (sched's Fail, or an error report)
	failOwner            // its owner died (fate-sharing)
	failLost             // its executor was lost more than MaxRetries times
)

// failTask fails task i: a dependency or nested call failed, its
// executor was lost once more than the scenario's max_retries
// (ExecutorLostError), or its owner died (fate-sharing; a nested task is
// then abandoned — its parent is re-run by its own owner). A live owner's
// scheduler hears ObjectFailed, which fails the dependents in turn, and a
// fib parent blocked on a nested task that failed fails with it.
func (s *Sim) failTask(i int32, why int) {
	t := &s.tasks[i]
	if t.state == tDone || t.state == tFailed || t.state == tAbandoned {
		return
	}
	wasNew := t.state == tNew
	t.state = tFailed
	s.lastChange = s.now
	switch {
	case why == failOwner && !t.top:
		t.state = tAbandoned
		s.m.abandoned++
	case why == failOwner:
		s.m.failedOwner++
	case why == failLost:
		s.m.failedLost++
	default:
		s.m.failedDep++
	}
	// A rebuild (doneAt set) was resolved when it first finished.
	first := t.doneAt == 0
	if t.top && first {
		s.resolved++
	}
	o := s.peers[t.owner]
	if !wasNew && first {
		o.unresolved--
	}
	if !o.alive || why == failOwner {
		return
	}
	s.step(o, sched.Event{Kind: sched.ObjectFailed, Object: sched.ObjectID(t.id)})
	if t.parent >= 0 {
		if e, ok := s.runEpoch(o, t.parent); ok && e == t.pEpoch {
			s.at(s.now, event{kind: evChildFailed, p: o.idx, t: t.parent, epoch: e})
		}
	}
}

// forward models node.forwardLocked + sendForwards: the hand-off (spec
// and arguments, small ones inline) goes on the session to the peer. A
// peer that is down or cut off swallows it; the owner learns when the
// session dies, after the detection delay.
func (s *Sim) forward(o *vpeer, i int32, to int32) {
	t := &s.tasks[i]
	t.exec = to
	t.epoch++
	size := int64(handoffBytes)
	for _, d := range s.depsOf(t) {
		if dt := &s.tasks[d]; dt.holder == o.idx && dt.out <= inlineMax {
			size += dt.out
		}
	}
	if t.input > 0 && t.input <= inlineMax {
		size += t.input
	}
	s.contact(o.idx, to)
	d, ok := s.send(mHandoff, o.idx, to, size, false)
	if !ok {
		s.detect(o, to, s.now+int64(s.sc.DetectionDelay))
		return
	}
	s.m.handoffs++
	s.at(s.now+d, event{kind: evHandoff, p: to, q: o.idx, t: i, epoch: t.epoch})
}

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

// handoffArrives: the task is submitted here (Here, Owner), as the node's
// acceptTask does; the scheduler refuses it when this peer leaves or its
// queue is full (a Refuse action), and a duplicate is refused.
func (s *Sim) handoffArrives(p *vpeer, from int32, i int32, epoch uint16) {
	t := &s.tasks[i]
	if t.exec != p.idx || t.epoch != epoch {
		s.m.stale++ // re-placed while in flight (the node would run it twice)
		return
	}
	s.contact(p.idx, from)
	if _, dup := p.here[i]; dup {
		s.refuse(p, from, i, epoch)
		return
	}
	p.here[i] = hereRec{epoch: epoch, accepted: s.now}
	s.flush(p)
	if err := p.s.Step(sched.Event{Kind: sched.Submit, Task: t.id, Here: true, Owner: s.peers[from].name}); err != nil {
		delete(p.here, i)
		s.refuse(p, from, i, epoch)
		return
	}
	if _, ok := p.here[i]; ok { // not refused
		s.m.tasksIn++
	}
	s.act(p)
	s.after(p)
}

// cancelRun stops task i, which p ran for an owner that is gone: a queued
// one is forgotten (the scheduler dropped it), a running one ends now and
// gives its slot back, its outcome dropped (the node cancels its context).
func (s *Sim) cancelRun(p *vpeer, i int32) {
	h, ok := p.here[i]
	if !ok {
		return
	}
	delete(p.here, i)
	if h.running {
		if err := p.s.Step(sched.Event{Kind: sched.Done, Task: s.tasks[i].id}); err != nil {
			s.m.schedErr(err)
		}
	}
}

// refuse sends a refusal frame to the owner.
func (s *Sim) refuse(p *vpeer, owner int32, i int32, epoch uint16) {
	if d, ok := s.send(mRefuse, p.idx, owner, refusalBytes, false); ok {
		s.at(s.now+d, event{kind: evRefused, p: owner, q: p.idx, t: i, epoch: epoch})
	}
}

// refusedArrives: the owner takes a refused task back (a refusal of a
// hand-off it re-placed meanwhile is stale).
func (s *Sim) refusedArrives(o *vpeer, from int32, i int32, epoch uint16) {
	t := &s.tasks[i]
	if o.s.HandedTo(t.id) != s.peers[from].name || t.epoch != epoch || t.state != tSubmitted {
		return
	}
	s.step(o, sched.Event{Kind: sched.Refused, Task: t.id, Peer: s.peers[from].name})
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

// announce models node.announceLoop + p2p.Host.Announce: outputs queued a
// second ago that still exist here are announced (output ref and content
// CID); the provider batches them by keyspace region, one DHT lookup per
// region, and sends each CID's record to its k closest peers.
func (s *Sim) announce(p *vpeer) {
	cut := s.now - announceAge
	var regions []uint64
	n := 0
	for p.annHead < len(p.annq) && p.annq[p.annHead].at <= cut {
		i := p.annq[p.annHead].t
		p.annHead++
		t := &s.tasks[i]
		if t.state != tDone || t.holder != p.idx || (!t.final && t.refs == 0) {
			continue // consumed or moved: nobody could fetch it
		}
		for c := uint64(0); c < 2; c++ {
			regions = append(regions, s.kad.regionOf(objectKey(s.sc.Seed, i, c)))
		}
		n++
	}
	if p.annHead == len(p.annq) {
		p.annq, p.annHead = p.annq[:0], 0
	} else if p.annHead > 1024 && p.annHead > len(p.annq)/2 {
		p.annq = append(p.annq[:0], p.annq[p.annHead:]...)
		p.annHead = 0
	}
	if n == 0 {
		return
	}
	slices.Sort(regions)
	regions = slices.Compact(regions)
	for _, r := range regions {
		key := kadID{r << (64 - min(s.kad.region, 63)), mix(r)}
		if s.kad.region == 0 {
			key[0] = mix(r ^ 0xabc)
		}
		s.dhtLookup(p.idx, key)
	}
	// Each CID's record goes to its k closest peers: every other peer in
	// a swarm of k or fewer.
	recs := uint64(2*n) * uint64(min(kadK, max(s.live-1, 0)))
	s.m.msgs[mDHTRecord] += recs
	s.m.bytes[mDHTRecord] += int64(recs) * 120
	s.m.announced += uint64(2 * n)
}

// objectKey is the DHT key of task i's output ref (c=0) or content (c=1).
func objectKey(seed uint64, i int32, c uint64) kadID {
	h := mix(seed ^ uint64(i)<<2 ^ c)
	return kadID{h, mix(h), mix(h + 1), mix(h + 2)}
}

// dhtLookup runs (or, past the first lookups, samples) an iterative DHT
// lookup from p and counts its hops and messages.
func (s *Sim) dhtLookup(p int32, key kadID) {
	s.m.lookups++
	var hops, queries, answered int
	if s.m.lookups <= 20000 || s.m.lookups%8 == 0 || len(s.m.lookupRing) == 0 {
		hops, queries, answered = s.kad.lookup(p, key, func(q int32) bool { return s.peers[q].alive && s.side[q] == s.side[p] })
		r := lookupRec{hops: uint8(min(hops, 255)), queries: uint16(queries), answered: uint16(answered)}
		if len(s.m.lookupRing) < 4096 {
			s.m.lookupRing = append(s.m.lookupRing, r)
		} else {
			s.m.lookupRing[s.m.lookups%4096] = r
		}
	} else {
		r := s.m.lookupRing[mix(s.m.lookups)%uint64(len(s.m.lookupRing))]
		hops, queries, answered = int(r.hops), int(r.queries), int(r.answered)
	}
	s.m.hops = append(s.m.hops, uint8(min(hops, 255)))
	s.m.msgs[mDHTLookup] += uint64(queries + answered)
	s.m.bytes[mDHTLookup] += int64(queries)*smallBytes + int64(answered)*kadK*40
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
