package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// handleRelease: from, the owner of a result this node lends it, no
// longer needs it; the scheduler ends the loan (EndLoan).
func (n *Node) handleRelease(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.step(sched.Event{Kind: sched.Released, Object: sched.ObjectID(ref.KeyString()), Peer: peerKey(from)})
}

// loanLocked performs the scheduler's actions about results this node
// lends: an ended loan's bytes leave the store (released) or stay as a
// cache it may evict (orphaned); a leaving node asks the owner to take a
// result now; Left wakes Leave.
func (n *Node) loanLocked(a sched.Action) {
	if a.Kind == sched.Left {
		n.leftOnce.Do(func() { close(n.left) })
		return
	}
	ref, err := cid.Cast([]byte(a.Object))
	if err != nil {
		return
	}
	owner := peerOf(a.Peer)
	switch a.Kind {
	case sched.EndLoan:
		content, ok := n.loans[ref]
		delete(n.loans, ref)
		if !ok {
			return
		}
		released := a.Reason == sched.LoanReleased
		n.later = append(n.later, func() {
			if released {
				_, _ = n.store.Release(content)
			} else {
				_ = n.store.Unpin(content)
			}
		})
	case sched.Take:
		n.later = append(n.later, func() {
			ss, err := n.sessionTo(owner)
			if err == nil {
				err = ss.send(wire.FrameTake, ref.Bytes())
			}
			if err != nil {
				n.log.Warn("leaving: cannot hand a lent result to its owner", "ref", ref, "owner", owner, "err", err)
			}
		})
	}
}

// Leave prepares the node to leave the swarm, as `dray node` does on
// SIGTERM before Close: it refuses new hand-offs and beacons no room, lets
// the tasks other peers handed it finish and report, and has the owners
// of the results it lends fetch them now, so that nothing only this node
// holds is lost. It returns when nothing is left (the scheduler says
// Left), or with an error saying what is left when ctx ends. Without a
// network it does nothing.
func (n *Node) Leave(ctx context.Context) error {
	if n.net == nil {
		return nil
	}
	n.update(func() { n.stepLocked(sched.Event{Kind: sched.Leave}) })
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	select {
	case <-n.left:
		return nil
	case <-ctx.Done():
		n.mu.Lock()
		running, lent := n.sched.Hosted(), n.sched.Lending()
		n.mu.Unlock()
		return fmt.Errorf("node: leave: %d task(s) from other peers still running, %d lent result(s) not taken: %w", running, lent, ctx.Err())
	}
}

// handleTake fetches a result from the peer that lends it, which is
// leaving, and then releases the loan. A loan this node does not need
// (the object dropped, or had from another holder) is released at once,
// so the leaving peer does not wait for it.
func (n *Node) handleTake(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.mu.Lock()
	o := n.objects[ref]
	needed := o != nil && o.holder == from
	n.mu.Unlock()
	n.wg.Add(1)
	if !needed {
		go n.sendRelease(from, ref)
		return
	}
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, fetchTimeout)
		defer cancel()
		if err := n.localize(ctx, ref); err != nil {
			n.log.Warn("cannot take a result from a leaving peer", "ref", ref, "peer", from, "err", err)
			return
		}
		n.mu.Lock()
		o := n.objects[ref]
		mine := o != nil && o.holder == from && !o.away
		if mine {
			o.holder = "" // ours alone now: no lineage needed, no release later
			n.dropLineageLocked(ref, o, true)
		}
		stillThere := o != nil && o.holder == from // its copy is still the one we read
		n.mu.Unlock()
		if !stillThere {
			n.wg.Add(1)
			n.sendRelease(from, ref)
		}
	}()
}
