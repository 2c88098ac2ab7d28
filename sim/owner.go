package sim

import "github.com/dray-project/dray/sched"

// A task between its owner and its executor (node/owner.go,
// node/executor.go): hand-offs out and in, refusals and cancels,
// completions back at the owner, which then finishes the task or fails
// it.

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
