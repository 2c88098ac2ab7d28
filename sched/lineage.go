package sched

import (
	"fmt"
	"slices"
)

// Lineage: a result larger than InlineMax stays with the peer that made
// it, lent to its owner (Done with Lent). The owner keeps the task's
// lineage — how it was submitted and which objects it read — for as long
// as it may need the result from that holder: until the owner has it
// (fetched, taken) or dropped it (Settled), and no other lineage still
// reads it. When the holder is gone (PeerGone), the lineages whose
// results the owner still needs, or a task running again reads, run again
// (Rebuild), after the lost lineages of their own inputs, which they wait
// for; the others are marked lost and run again only if a reader does. A
// result its holder cannot serve any more (ObjectLost) is made again the
// same way: as Ray reconstructs lost objects from lineage. When a lineage
// is no longer needed, the caller may let go of what it kept (Forget).

// lineage is a finished task whose outputs are lent to us.
type lineage struct {
	id     TaskID
	inputs []Input    // the objects it read (locality hints for a rebuild)
	outs   []ObjectID // its outputs still in s.lent
	sub    Event      // how it is submitted again (Nested, retries; not pinned)
	holder PeerID     // who holds its outputs; "" while it runs again
	lost   bool       // its holder is gone: made again when needed
	reads  []*lentObj // the lent objects among its inputs (needed by it)
	waits  []ObjectID // scratch: inputs being rebuilt
}

// lentObj is an object lent to us: which lineage makes it, whether the
// owner itself still needs it, and how many lineages read it.
type lentObj struct {
	id     ObjectID
	lin    *lineage
	owned  bool // not Settled yet
	needed int  // live lineages that read it
}

// lend records the lineage of t, which completed on holder lending us
// lent (Done with Lent), or, for a task that ran again, updates it.
func (s *Scheduler) lend(t *task, holder PeerID, lent []ObjectID) {
	l := s.lineages[t.id]
	if l != nil {
		// It ran again: outputs lent anew keep their records; the others
		// (now here, or failed) need the lineage no more.
		l.holder, l.lost = holder, false
		for _, o := range slices.Clone(l.outs) {
			if !slices.Contains(lent, o) {
				s.unlend(o)
			}
		}
		s.maybeForget(l)
		return
	}
	if len(lent) == 0 {
		return
	}
	// A rebuild may run anywhere: the peer the task was pinned to is the
	// holder, which is what was lost.
	l = &lineage{id: t.id, inputs: t.inputs, holder: holder,
		sub: Event{Func: t.fn, Needs: needsMap(t.needs), Nested: t.nested, MaxRetries: retriesEvent(int(t.maxRetries)), RetryErrors: t.retryErrors}}
	s.lineages[t.id] = l
	for _, in := range t.inputs {
		if lo := s.lent[in.Object]; lo != nil {
			lo.needed++
			l.reads = append(l.reads, lo)
		}
	}
	for _, o := range lent {
		s.addLent(l, o)
	}
}

func (s *Scheduler) addLent(l *lineage, o ObjectID) {
	s.lent[o] = &lentObj{id: o, lin: l, owned: true}
	l.outs = append(l.outs, o)
}

// retriesEvent is a budget as Event.MaxRetries says it.
func retriesEvent(r int) int {
	if r <= 0 {
		return -1
	}
	return r
}

// settled: the owner no longer needs the holder's copy of o (Settled):
// it has the bytes here (here), so nobody needs the lineage, or it
// dropped its refs, and the lineage stays while another reads o.
func (s *Scheduler) settled(o ObjectID, here bool) {
	lo := s.lent[o]
	if lo == nil || !lo.owned && !here {
		return
	}
	lo.owned = false
	if lo.needed == 0 || here {
		s.unlend(o)
		s.maybeForget(lo.lin)
	}
}

// unlend forgets the lent object o.
func (s *Scheduler) unlend(o ObjectID) {
	lo := s.lent[o]
	if lo == nil {
		return
	}
	delete(s.lent, o)
	l := lo.lin
	if i := slices.Index(l.outs, o); i >= 0 {
		l.outs = slices.Delete(l.outs, i, i+1)
	}
}

// maybeForget drops l once none of its outputs is lent any more and it
// is not running again: the lent objects it read are needed one lineage
// less (Forget).
func (s *Scheduler) maybeForget(l *lineage) {
	if len(l.outs) > 0 || s.tasks[l.id] != nil || s.lineages[l.id] != l {
		return
	}
	delete(s.lineages, l.id)
	s.actions = append(s.actions, Action{Kind: Forget, Task: l.id})
	for _, lo := range l.reads {
		if lo.needed--; lo.needed == 0 && !lo.owned && s.lent[lo.id] == lo {
			s.unlend(lo.id)
			s.maybeForget(lo.lin)
		}
	}
	l.reads = nil
}

// ended tells the lineages that task id left the scheduler: a rebuild
// that failed makes nothing, so its lineage is over.
func (s *Scheduler) ended(id TaskID) {
	l := s.lineages[id]
	if l == nil || l.holder != "" {
		return
	}
	for _, o := range slices.Clone(l.outs) {
		s.unlend(o)
	}
	s.maybeForget(l)
}

// objectLost: the holder of lent o cannot serve it (ObjectLost).
func (s *Scheduler) objectLost(o ObjectID) {
	if lo := s.lent[o]; lo != nil && lo.lin.holder != "" {
		lo.lin.lost = true
		s.rebuild(lo.lin)
	}
}

// rebuildHeldBy marks lost every lineage whose outputs p held, and runs
// again, in task order, those whose outputs this peer itself still needs
// or a task running again reads; the others run again only if a lineage
// that reads them does.
func (s *Scheduler) rebuildHeldBy(p PeerID) {
	var ls []*lineage
	readNow := make(map[*lineage]bool) // read by a lineage running again
	for _, r := range s.lineages {
		if r.holder == "" {
			for _, lo := range r.reads {
				if s.lent[lo.id] == lo {
					readNow[lo.lin] = true
				}
			}
		}
	}
	for _, l := range s.lineages {
		if l.holder == p {
			l.lost = true
			if readNow[l] || slices.ContainsFunc(l.outs, func(o ObjectID) bool { return s.lent[o].owned }) {
				ls = append(ls, l)
			}
		}
	}
	slices.SortFunc(ls, func(a, b *lineage) int {
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	for _, l := range ls {
		s.rebuild(l)
	}
}

// rebuild submits l's task again (Rebuild, then its placement), after the
// lost lineages of its inputs: it waits for those.
func (s *Scheduler) rebuild(l *lineage) {
	if l.holder == "" || s.tasks[l.id] != nil {
		return // running again already
	}
	l.holder, l.lost = "", false
	l.waits = l.waits[:0]
	for _, lo := range l.reads {
		if s.lent[lo.id] != lo {
			continue // here now, or dropped: not needed from a holder
		}
		if lo.lin.lost {
			s.rebuild(lo.lin)
		}
		if lo.lin.holder == "" {
			l.waits = append(l.waits, lo.id)
		}
	}
	s.actions = append(s.actions, Action{Kind: Rebuild, Task: l.id})
	ev := l.sub
	ev.Kind, ev.Task, ev.Deps = Submit, l.id, slices.Clone(l.waits)
	for _, in := range l.inputs {
		if !slices.Contains(l.waits, in.Object) {
			ev.Inputs = append(ev.Inputs, in)
		}
	}
	_ = s.submit(ev) // not tracked (checked above): cannot fail
}

// Lent reports whether the scheduler keeps the lineage of lent object o,
// to make it again if its holder is lost.
func (s *Scheduler) Lent(o ObjectID) bool { return s.lent[o] != nil }

// checkLineages verifies the lineage records (Config.Check).
func (s *Scheduler) checkLineages() {
	needed := make(map[*lentObj]int)
	for id, l := range s.lineages {
		if l.id != id {
			panic(fmt.Errorf("%w: lineage %x filed under %x", ErrInvariant, l.id, id))
		}
		if len(l.outs) == 0 && s.tasks[id] == nil {
			panic(fmt.Errorf("%w: lineage %x kept with no result lent", ErrInvariant, id))
		}
		for _, o := range l.outs {
			if lo := s.lent[o]; lo == nil || lo.lin != l {
				panic(fmt.Errorf("%w: lineage %x names result %x, lent by another or not at all", ErrInvariant, id, o))
			}
		}
		for _, lo := range l.reads {
			needed[lo]++
		}
	}
	for o, lo := range s.lent {
		if s.lineages[lo.lin.id] != lo.lin || !slices.Contains(lo.lin.outs, o) {
			panic(fmt.Errorf("%w: lent result %x without its lineage", ErrInvariant, o))
		}
		if lo.needed != needed[lo] {
			panic(fmt.Errorf("%w: lent result %x needed by %d lineages, counted %d", ErrInvariant, o, needed[lo], lo.needed))
		}
		if !lo.owned && lo.needed == 0 {
			panic(fmt.Errorf("%w: lent result %x kept though nobody needs it", ErrInvariant, o))
		}
	}
}
