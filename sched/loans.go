package sched

import (
	"fmt"
	"slices"
)

// Loans, the executor side of lineage: a result larger than InlineMax of
// a task another peer handed us stays here, lent to that owner (Done of
// the handed task, with Lent), until the owner releases it (Released),
// or is gone (PeerGone). Either ends the loan (EndLoan): released, the
// bytes may go; orphaned, they stay as a cache the store may evict. A
// peer that leaves the swarm asks each owner to take what it lends
// (Take), and says it is done (Left) once no task handed to it runs and
// nothing is lent any more: then nothing only this peer holds is lost
// when it goes.

// lendHere records the loans of t, a task handed to us that finished
// (Done with Lent): to its owner, or, if the owner is gone, ended at once.
func (s *Scheduler) lendHere(t *task, lent []ObjectID) {
	for _, o := range lent {
		if t.orphaned {
			s.actions = append(s.actions, Action{Kind: EndLoan, Object: o, Peer: t.owner, Reason: LoanOrphaned})
			continue
		}
		if prev, ok := s.loans[o]; ok && prev != t.owner {
			// The same output lent to another owner (two owners of the
			// same spec): the newer loan wins; the older ends as if its
			// owner were gone.
			s.actions = append(s.actions, Action{Kind: EndLoan, Object: o, Peer: prev, Reason: LoanOrphaned})
		}
		s.loans[o] = t.owner
		if s.leaving {
			s.actions = append(s.actions, Action{Kind: Take, Object: o, Peer: t.owner})
		}
	}
}

// released ends the loan of o to p (Released); a release of a loan that
// is over already, or of one to another peer, changes nothing.
func (s *Scheduler) released(o ObjectID, p PeerID) {
	if owner, ok := s.loans[o]; !ok || owner != p {
		return
	}
	delete(s.loans, o)
	s.actions = append(s.actions, Action{Kind: EndLoan, Object: o, Peer: p, Reason: LoanReleased})
}

// endLoansTo ends the loans to owner p, which is gone.
func (s *Scheduler) endLoansTo(p PeerID) {
	var objs []ObjectID
	for o, owner := range s.loans {
		if owner == p {
			objs = append(objs, o)
		}
	}
	slices.Sort(objs)
	for _, o := range objs {
		delete(s.loans, o)
		s.actions = append(s.actions, Action{Kind: EndLoan, Object: o, Peer: p, Reason: LoanOrphaned})
	}
}

// takeAll asks the owner of every loan to take it now (Leave).
func (s *Scheduler) takeAll() {
	objs := make([]ObjectID, 0, len(s.loans))
	for o := range s.loans {
		objs = append(objs, o)
	}
	slices.Sort(objs)
	for _, o := range objs {
		s.actions = append(s.actions, Action{Kind: Take, Object: o, Peer: s.loans[o]})
	}
}

// maybeLeft says Left once a leaving peer runs nothing handed to it and
// lends nothing.
func (s *Scheduler) maybeLeft() {
	if s.leaving && !s.left && s.hosted == 0 && len(s.loans) == 0 {
		s.left = true
		s.actions = append(s.actions, Action{Kind: Left})
	}
}

// Lending reports how many results this peer lends to their owners.
func (s *Scheduler) Lending() int { return len(s.loans) }

// Hosted reports how many tasks other peers handed to this peer are
// queued or running here (those whose owner is gone not counted).
func (s *Scheduler) Hosted() int { return s.hosted }

// checkLoans panics if the count of hosted tasks disagrees with the tasks
// (Config.Check).
func (s *Scheduler) checkLoans() {
	n := 0
	for _, t := range s.tasks {
		if t.owner != "" && !t.orphaned {
			n++
		}
	}
	if n != s.hosted {
		panic(fmt.Errorf("%w: %d tasks handed to us counted, %d there", ErrInvariant, s.hosted, n))
	}
	for o, p := range s.loans {
		if p == "" || p == s.cfg.Self {
			panic(fmt.Errorf("%w: object %x lent to %q", ErrInvariant, o, p))
		}
	}
}
