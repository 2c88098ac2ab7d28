package sched

import (
	"cmp"
	"fmt"
	"slices"
)

// Placement by function: a peer runs only the functions it offers. Each
// peer's beacon names its function table by a digest (Load.Funcs); a
// digest this scheduler has not seen asks the caller to fetch that table
// (FetchFuncs), which it steps as Offers. A task of function f (Submit's
// Func) runs here only if this peer offers f, and goes only to peers
// whose table has f; built-ins that every peer offers spread over all of
// them, and a peer with an extra or a missing function still takes the
// work it can run. Ready tasks wait in one queue per function (a
// scheduling class, as Ray's), so a function no peer with room offers
// does not hold up the others; across classes, tasks run here in the
// order they became ready. A task whose function no known peer offers
// waits Config.FuncWait ticks for one to appear, then fails (FailNoPeer).

// FuncID names a function by its identity — name, signature and version —
// as a hash the caller computes. 0 is any function: a task of Func 0 runs
// on any peer, and so does every task on a peer whose table is unknown
// to this one while it stepped no Offers for itself.
type FuncID uint64

// classKey names a class: a function and the resources its tasks need
// (canonical text, see needsOf).
type classKey struct {
	fn    FuncID
	needs string
}

// class is the ready tasks of one function with one set of needs: its
// queue, and the peers with room that offer it (kept for s.gen).
type class struct {
	key    classKey
	fn     FuncID
	needs  []Need
	queue  fifo
	active bool // in s.active
	roomy  []*peer
	gen    uint64
}

// classOf returns t's class, making it if needed.
func (s *Scheduler) classOf(t *task) *class {
	c := s.classes[t.ckey]
	if c == nil {
		c = &class{key: t.ckey, fn: t.fn, needs: t.needs}
		s.classes[t.ckey] = c
	}
	return c
}

// activate lists c among the classes with queued tasks.
func (s *Scheduler) activate(c *class) {
	if !c.active {
		c.active = true
		s.active = append(s.active, c)
	}
}

// head returns c's first task still queued, or nil; a class found empty
// leaves the active list (lazily, at the next prune).
func (s *Scheduler) head(c *class) *task { return s.peek(&c.queue) }

// prune drops the classes without queued tasks from the active list.
func (s *Scheduler) prune() {
	keep := s.active[:0]
	for _, c := range s.active {
		if s.head(c) != nil {
			keep = append(keep, c)
			continue
		}
		c.active = false
		if c.key != (classKey{}) && c.queue.len() == 0 {
			delete(s.classes, c.key) // made again when needed
		}
	}
	clear(s.active[len(keep):])
	s.active = keep
}

// offersHere reports whether this peer runs fn.
func (s *Scheduler) offersHere(fn FuncID) bool {
	if fn == 0 || s.self == nil {
		return true
	}
	_, ok := s.self[fn]
	return ok
}

// peerOffers reports whether p runs fn, by its table: a peer whose table
// is unknown runs only Func 0; one whose digest is this peer's runs what
// this peer runs.
func (s *Scheduler) peerOffers(p *peer, fn FuncID) bool {
	if fn == 0 {
		return true
	}
	if s.sameTable(p) {
		return s.offersHere(fn)
	}
	_, ok := p.funcs[fn]
	return ok
}

// sameTable reports whether p beacons this peer's table digest (the same
// functions and resources).
func (s *Scheduler) sameTable(p *peer) bool {
	return p.digest != 0 && p.digest == s.cfg.Funcs && p.load.Funcs == p.digest
}

// peerRuns reports whether p runs c's tasks at all: it offers the
// function and has the resources they need.
func (s *Scheduler) peerRuns(p *peer, c *class) bool {
	if !s.peerOffers(p, c.fn) {
		return false
	}
	if len(c.needs) == 0 {
		return true
	}
	if s.sameTable(p) {
		return fitsTotal(s.cfg.Resources, c.needs)
	}
	return fitsTotal(p.resources, c.needs)
}

// runsHere reports whether this peer runs c's tasks at all.
func (s *Scheduler) runsHere(c *class) bool {
	return s.offersHere(c.fn) && fitsTotal(s.cfg.Resources, c.needs)
}

// localScan bounds how far past the head of the queue of tasks that must
// run here nextHere looks for one whose needs are free.
const localScan = 64

// nextHere takes the ready task that runs here and became ready first,
// with what it needs free: of the tasks that must run here, then of the
// classes this peer runs.
func (s *Scheduler) nextHere() *task {
	if t := s.nextLocal(); t != nil {
		return t
	}
	var best *class
	var bt *task
	for _, c := range s.active {
		if !s.offersHere(c.fn) || !s.fitsFree(c.needs) {
			continue
		}
		if t := s.head(c); t != nil && (bt == nil || t.seq < bt.seq) {
			best, bt = c, t
		}
	}
	if best == nil {
		return nil
	}
	best.queue.pop()
	return bt
}

// nextLocal takes the first task that must run here whose needs are free,
// among the first localScan: one taken from behind the head leaves its
// entry, skipped later as it is no longer queued.
func (s *Scheduler) nextLocal() *task {
	t := s.peek(&s.local)
	if t == nil {
		return nil
	}
	if s.fitsFree(t.needs) {
		s.local.pop()
		return t
	}
	var found *task
	n := 0
	s.local.each(func(id TaskID) bool {
		n++
		if u := s.tasks[id]; u != nil && u.state == queued && u.here && s.fitsFree(u.needs) {
			found = u
			return false
		}
		return n < localScan
	})
	return found
}

// candidates returns the peers with room that offer c's function, sorted
// by ID.
func (s *Scheduler) candidates(c *class) []*peer {
	if c.fn == 0 && len(c.needs) == 0 {
		return s.roomy
	}
	if c.gen != s.gen || c.roomy == nil {
		c.roomy = c.roomy[:0]
		for _, p := range s.roomy {
			if s.peerRuns(p, c) {
				c.roomy = append(c.roomy, p)
			}
		}
		c.gen = s.gen
	}
	return c.roomy
}

// offered reports whether any peer (this one included) is known to run
// c's tasks.
func (s *Scheduler) offered(c *class) bool {
	if s.runsHere(c) {
		return true
	}
	for _, p := range s.peers {
		if s.peerRuns(p, c) {
			return true
		}
	}
	return false
}

// setOffers applies an Offers event: the table of this peer (Peer empty
// or Self) or of another, whose beacons name it by digest (Load.Funcs).
func (s *Scheduler) setOffers(ev Event) error {
	set := make(map[FuncID]struct{}, len(ev.Funcs))
	for _, f := range ev.Funcs {
		if f == 0 {
			return fmt.Errorf("%w: offers function 0", ErrEvent)
		}
		set[f] = struct{}{}
	}
	s.gen++
	if ev.Peer == "" || ev.Peer == s.cfg.Self {
		s.self = set
		return nil
	}
	if s.Silenced(ev.Peer) {
		return nil
	}
	p := s.peers[ev.Peer]
	if p == nil {
		p = &peer{id: ev.Peer, heard: s.now}
		s.peers[ev.Peer] = p
	}
	p.funcs, p.digest, p.resources = set, ev.Load.Funcs, ev.Resources
	if p.asked == p.digest {
		p.asked = 0
	}
	return nil
}

// wantTable asks for p's function table when its beacon names one this
// scheduler has not seen (once per digest). A peer whose digest is this
// peer's has this peer's table: nothing to fetch in a swarm of one binary.
func (s *Scheduler) wantTable(p *peer) {
	d := p.load.Funcs
	if d == 0 || d == p.digest && (p.funcs != nil || d == s.cfg.Funcs) || d == p.asked {
		return
	}
	if d == s.cfg.Funcs {
		if p.digest != d {
			p.funcs, p.digest = nil, d
			s.gen++
		}
		return
	}
	p.asked = d
	s.actions = append(s.actions, Action{Kind: FetchFuncs, Peer: p.id})
}

// expireUnoffered fails the queued tasks whose function no known peer
// offers once they waited Config.FuncWait ticks (FailNoPeer).
func (s *Scheduler) expireUnoffered() {
	if s.cfg.FuncWait <= 0 {
		return
	}
	for _, c := range s.active {
		if c.fn == 0 && len(c.needs) == 0 || s.offered(c) {
			continue
		}
		for {
			t := s.head(c)
			if t == nil || s.now-t.queuedAt < int64(s.cfg.FuncWait) {
				break
			}
			c.queue.pop()
			s.queued--
			s.fail(t, Action{Reason: FailNoPeer, Count: int(s.now - t.queuedAt)})
		}
	}
}

// sortedActive orders the active classes by their first task's readiness,
// so placement serves the oldest work first.
func (s *Scheduler) sortedActive() []*class {
	if len(s.active) < 2 {
		return s.active
	}
	s.prune()
	slices.SortStableFunc(s.active, func(a, b *class) int {
		ta, tb := s.head(a), s.head(b)
		return cmp.Compare(ta.seq, tb.seq)
	})
	return s.active
}
