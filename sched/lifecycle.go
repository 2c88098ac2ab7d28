package sched

import "fmt"

// The task lifecycle beyond placement: what a peer does when a run ends,
// when a hand-off is lost or a peer is gone (as owner: retries and their
// one budget; as executor: a dead owner's tasks), when it leaves the
// swarm, and which offers it claims. The node and the simulator both
// drive it, so the two cannot disagree on it.

// done ends a run here or a hand-off (ev.Peer, when set, must be the
// executor): the task is forgotten, unless the function failed
// (Retryable) and the task may run again, in which case it is queued
// again as first submitted (Retry).
func (s *Scheduler) done(ev Event) error {
	t, err := s.lookup(ev)
	if err != nil {
		return err
	}
	if ev.Peer != "" && (t.state != forwarded || t.peer != ev.Peer) {
		return fmt.Errorf("%w: done by %s for %s task %x", ErrState, ev.Peer, t.state, ev.Task)
	}
	if len(ev.Lent) > 0 && (ev.Peer == "" && t.owner == "" || ev.Retryable) {
		return fmt.Errorf("%w: results lent by nobody, or by a run that failed", ErrEvent)
	}
	if ev.Peer != "" {
		s.heard(ev.Peer) // a completion is a sign of life
	}
	switch t.state {
	case running:
		s.running--
		s.give(t)
	case blocked:
		s.blocked--
		s.give(t)
	case forwarded:
		s.forwards--
		s.handIn(t.peer)
		// The peer finished it: a place there is free again, which
		// its next beacon would say too late for short tasks.
		if p := s.peers[t.peer]; p != nil {
			p.est = min(p.est+1, 2*p.load.Slots)
			s.fix(p)
		}
		t.peer = ""
	default:
		return fmt.Errorf("%w: done for %s task %x", ErrState, t.state, ev.Task)
	}
	if ev.Retryable && t.retryErrors && !t.orphaned && !t.cancelled && t.owner == "" && t.lost+t.errs < t.maxRetries {
		t.errs++
		t.offered = false
		s.actions = append(s.actions, Action{Kind: Retry, Task: t.id, Count: int(t.lost + t.errs + 1)})
		s.enqueue(t)
		return nil
	}
	delete(s.tasks, ev.Task)
	s.finished++
	switch {
	case t.owner != "":
		if !t.orphaned {
			s.hosted--
		}
		s.lendHere(t, ev.Lent)
	case len(ev.Lent) > 0 || len(s.lineages) > 0:
		s.lend(t, ev.Peer, ev.Lent)
	}
	return nil
}

// fail ends t, which holds no slot and is in no queue, with reason.
func (s *Scheduler) fail(t *task, a Action) {
	delete(s.tasks, t.id)
	s.finished++
	a.Kind, a.Task = Fail, t.id
	s.actions = append(s.actions, a)
	s.ended(t.id)
}

// takeBack returns t, forwarded to a peer that refused it or lost it
// (lost), to the queue: a loss counts against its retries, and past them
// t fails; a task pinned to that peer can only fail.
func (s *Scheduler) takeBack(t *task, lost bool) {
	p := t.peer
	s.forwards--
	s.handIn(p)
	t.peer, t.offered = "", false
	if lost {
		t.lost++
	}
	switch {
	case t.cancelled:
		s.fail(t, Action{Reason: FailCancelled, Peer: p})
	case lost && t.lost+t.errs > t.maxRetries:
		s.fail(t, Action{Reason: FailLost, Peer: p, Count: int(t.lost)})
	case t.on == p:
		s.fail(t, Action{Reason: FailPinned, Peer: p})
	default:
		t.retry = true // retried work goes first
		s.enqueue(t)
	}
}

// peerGone forgets p: no task goes to it any more; the tasks forwarded to
// it are lost (see takeBack); the tasks it handed us stop (Cancel). It
// all happens in this one step, so nothing can be placed on p between the
// failures and the requeues.
func (s *Scheduler) peerGone(p PeerID) {
	if pe := s.peers[p]; pe != nil {
		delete(s.peers, p)
		s.fix(pe)
	}
	// In submission order as far as the map allows: sorted by ID for
	// determinism.
	var back, orphans []*task
	for _, t := range s.tasks {
		switch {
		case t.state == forwarded && t.peer == p:
			back = append(back, t)
		case t.owner == p && !t.orphaned:
			orphans = append(orphans, t)
		}
	}
	sortTasks(back)
	for _, t := range back {
		s.takeBack(t, true)
	}
	// Results p lent us that we may still need are made again.
	s.rebuildHeldBy(p)
	sortTasks(orphans)
	for _, t := range orphans {
		s.actions = append(s.actions, Action{Kind: Cancel, Task: t.id, Peer: p})
		s.hosted--
		if t.state == queued {
			// Its queue entry is skipped as stale.
			s.queued--
			delete(s.tasks, t.id)
			s.finished++
			continue
		}
		t.orphaned = true // running: its Done comes when it stops
	}
	// What we lend p nobody will fetch from us now.
	s.endLoansTo(p)
}

// leave hands the tasks other peers handed us that have not started back
// to their owners, and asks the owners of the results we lend to take
// them (Take); from now on hand-offs are refused and Load shows no room.
// Left follows once nothing of theirs is left here.
func (s *Scheduler) leave() {
	s.leaving = true
	var back []*task
	for _, t := range s.tasks {
		if t.owner != "" && t.state == queued {
			back = append(back, t)
		}
	}
	sortTasks(back)
	for _, t := range back {
		s.queued--
		s.hosted--
		delete(s.tasks, t.id) // its queue entry is skipped as stale
		s.finished++
		s.actions = append(s.actions, Action{Kind: Refuse, Task: t.id, Peer: t.owner, Reason: RefuseLeaving})
	}
	// The owners of what we lend fetch it now.
	s.takeAll()
}

// offerHeard claims an offered task while this peer has idle slots
// beyond those it claimed this tick, so it cannot bite off more than it
// runs.
func (s *Scheduler) offerHeard(ev Event) {
	if s.leaving || !s.offersHere(ev.Func) || ev.Peer == "" || ev.Peer == s.cfg.Self {
		return
	}
	free := s.cfg.Slots - s.running - s.queued
	if free <= s.claimed {
		return
	}
	s.claimed++
	s.actions = append(s.actions, Action{Kind: ClaimOffer, Task: ev.Task, Peer: ev.Peer})
}

// Load is this peer's load as its beacons and probe answers say it: no
// room at all while it leaves.
func (s *Scheduler) Load() Load {
	l := Load{Slots: s.cfg.Slots, Free: max(s.cfg.Slots-s.running, 0), Queue: s.queued, Funcs: s.cfg.Funcs}
	if s.leaving {
		l.Slots, l.Free = 0, 0
	}
	return l
}

// HandedTo returns the peer task id was forwarded to and is still out
// on, or "": the one record of where a task runs, which a completion,
// refusal or loss from any other peer does not match.
func (s *Scheduler) HandedTo(id TaskID) PeerID {
	if t := s.tasks[id]; t != nil && t.state == forwarded {
		return t.peer
	}
	return ""
}

// Tracks reports whether the scheduler still tracks task id: after a
// Done with Retryable, whether the task runs again.
func (s *Scheduler) Tracks(id TaskID) bool { return s.tasks[id] != nil }

// Orphaned reports whether task id, handed to us, lost its owner while
// it ran: its outcome is to be dropped.
func (s *Scheduler) Orphaned(id TaskID) bool {
	t := s.tasks[id]
	return t != nil && t.orphaned
}

// Leaving reports whether Leave was stepped.
func (s *Scheduler) Leaving() bool { return s.leaving }

// check panics if the scheduler's counters and indexes disagree with its
// tasks and peers (Config.Check).
func (s *Scheduler) check() {
	var n [forwarded + 1]int
	perPeer := make(map[PeerID]int)
	for id, t := range s.tasks {
		if t.state == forwarded {
			perPeer[t.peer]++
		}
		if t.id != id {
			panic(fmt.Errorf("%w: task %x filed under %x", ErrInvariant, t.id, id))
		}
		n[t.state]++
		switch {
		case t.state == forwarded && t.peer == "":
			panic(fmt.Errorf("%w: task %x forwarded to nobody", ErrInvariant, id))
		case t.state != forwarded && t.peer != "":
			panic(fmt.Errorf("%w: %s task %x still names executor %s", ErrInvariant, t.state, id, t.peer))
		case t.state == forwarded && (t.here || t.owner != ""):
			panic(fmt.Errorf("%w: task %x that must run here was forwarded to %s", ErrInvariant, id, t.peer))
		case t.owner != "" && t.state == forwarded:
			panic(fmt.Errorf("%w: handed task %x forwarded again", ErrInvariant, id))
		case t.lost+t.errs > t.maxRetries+1:
			panic(fmt.Errorf("%w: task %x used %d runs of a budget of %d retries", ErrInvariant, id, t.lost+t.errs, t.maxRetries))
		}
	}
	if n[running] != s.running || n[blocked] != s.blocked || n[waiting] != s.waiting || n[forwarded] != s.forwards {
		panic(fmt.Errorf("%w: counters running=%d blocked=%d waiting=%d forwarded=%d, tasks say %d %d %d %d",
			ErrInvariant, s.running, s.blocked, s.waiting, s.forwards, n[running], n[blocked], n[waiting], n[forwarded]))
	}
	s.checkOuts(perPeer)
	s.checkLineages()
	s.checkLoans()
	s.checkResources()
	inQueues := 0
	queues := []*fifo{&s.local}
	for k, c := range s.classes {
		if c.key != k {
			panic(fmt.Errorf("%w: class %v filed under %v", ErrInvariant, c.key, k))
		}
		if c.queue.len() > 0 && !c.active {
			panic(fmt.Errorf("%w: class %v has queued tasks but is not active", ErrInvariant, k))
		}
		queues = append(queues, &c.queue)
	}
	for _, q := range queues {
		q.each(func(id TaskID) bool {
			if t := s.tasks[id]; t != nil && t.state == queued {
				inQueues++
			}
			return true
		})
	}
	if inQueues < n[queued] || s.queued != n[queued] {
		panic(fmt.Errorf("%w: %d tasks queued, counted %d, %d in the queues", ErrInvariant, n[queued], s.queued, inQueues))
	}
	for i, p := range s.roomy {
		if s.peers[p.id] != p || !p.roomy || p.est <= 0 || (i > 0 && s.roomy[i-1].id >= p.id) {
			panic(fmt.Errorf("%w: peer %s in the placement list without room, or out of order", ErrInvariant, p.id))
		}
	}
}

// argLost takes back a task its executor could not feed (ArgLost): the
// task waits for the input, which the caller fetches here or has made
// again (Fetch), and is placed again once it is ready.
func (s *Scheduler) argLost(ev Event) error {
	t, err := s.lookup(ev)
	if err != nil {
		return err
	}
	if t.state != forwarded || t.peer != ev.Peer || ev.Object == "" {
		return fmt.Errorf("%w: %s by %s for %s task %x", ErrState, ev.Kind, ev.Peer, t.state, ev.Task)
	}
	s.forwards--
	s.handIn(t.peer)
	t.peer, t.offered = "", false
	if t.cancelled {
		s.fail(t, Action{Reason: FailCancelled, Peer: ev.Peer})
		return nil
	}
	if t.argRuns++; t.argRuns > max(t.maxRetries, 1) {
		// An input that keeps failing to reach executors ends in an
		// error rather than a loop.
		s.fail(t, Action{Reason: FailArg, Object: ev.Object, Peer: ev.Peer, Count: int(t.argRuns)})
		return nil
	}
	t.state, t.pending, t.retry = waiting, 1, true
	s.waiting++
	s.waiters[ev.Object] = append(s.waiters[ev.Object], t)
	s.actions = append(s.actions, Action{Kind: Fetch, Object: ev.Object, Peer: ev.Peer, Task: t.id})
	return nil
}

// stop cancels a task (Stop): dropped if it has not started, stopped
// (Abort) if it runs here or elsewhere; either way it never runs again.
func (s *Scheduler) stop(ev Event) {
	t := s.tasks[ev.Task]
	if t == nil || t.cancelled {
		return
	}
	if t.owner != "" && ev.Peer != t.owner || t.owner == "" && ev.Peer != "" {
		return // only its owner cancels a task
	}
	t.cancelled = true
	switch t.state {
	case waiting:
		s.waiting--
		s.fail(t, Action{Reason: FailCancelled})
	case queued:
		s.queued-- // its queue entry is skipped as stale
		if t.owner != "" {
			s.hosted--
			delete(s.tasks, t.id)
			s.finished++
			s.actions = append(s.actions, Action{Kind: Refuse, Task: t.id, Peer: t.owner, Reason: RefuseCancelled})
			return
		}
		s.fail(t, Action{Reason: FailCancelled})
	case running, blocked:
		s.actions = append(s.actions, Action{Kind: Abort, Task: t.id})
	case forwarded:
		s.actions = append(s.actions, Action{Kind: Abort, Task: t.id, Peer: t.peer})
	}
}
