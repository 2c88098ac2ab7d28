package sim

import (
	"fmt"

	"github.com/dray-project/dray/sched"
)

// A task's run on the peer that executes it (node.execute, node/worker.go):
// a worker takes it, fetches the inputs held elsewhere (or hands it back
// naming an input nobody can serve, which the owner then fetches or has
// made again), works, calls and waits for a fib task's nested tasks, and
// ends, reporting to the owner.

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
