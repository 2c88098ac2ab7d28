package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// loan is a result this node keeps for the owner of the task that made it.
type loan struct {
	owner   peer.ID
	content cid.Cid
}

// handleRelease drops a result lent to from.
func (n *Node) handleRelease(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.mu.Lock()
	l, ok := n.loans[ref]
	if !ok || l.owner != from {
		n.mu.Unlock()
		return
	}
	delete(n.loans, ref)
	n.mu.Unlock()
	_, _ = n.store.Release(l.content)
}

// endLoan stops keeping one lent result for sure: its bytes stay in the
// store as a cache it may evict.
func (n *Node) endLoan(ref cid.Cid) {
	n.mu.Lock()
	l, ok := n.loans[ref]
	delete(n.loans, ref)
	n.mu.Unlock()
	if ok {
		_ = n.store.Unpin(l.content)
	}
}

// endLoans ends the loans to an owner that is gone.
func (n *Node) endLoans(owner peer.ID) {
	n.mu.Lock()
	var refs []cid.Cid
	for ref, l := range n.loans {
		if l.owner == owner {
			refs = append(refs, ref)
		}
	}
	n.mu.Unlock()
	for _, ref := range refs {
		n.endLoan(ref)
	}
}

// Leave prepares the node to leave the swarm, as `dray node` does on
// SIGTERM before Close: it refuses new hand-offs and beacons no room, lets
// the tasks other peers handed it finish and report, and has the owners
// of the results it lends fetch them now, so that nothing only this node
// holds is lost. It returns when nothing is left, or with an error saying
// what is left when ctx ends. Without a network it does nothing.
func (n *Node) Leave(ctx context.Context) error {
	if n.net == nil {
		return nil
	}
	n.update(func() { n.stepLocked(sched.Event{Kind: sched.Leave}) }) // hands back what has not started
	pushed := make(map[cid.Cid]bool)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n.mu.Lock()
		running := 0
		for _, tk := range n.tasks {
			if tk.owner != "" && !tk.orphaned {
				running++
			}
		}
		type take struct {
			ref   cid.Cid
			owner peer.ID
		}
		var takes []take
		for ref, l := range n.loans {
			if !pushed[ref] {
				pushed[ref] = true
				takes = append(takes, take{ref, l.owner})
			}
		}
		lent := len(n.loans)
		n.mu.Unlock()
		for _, tk := range takes {
			ss, err := n.sessionTo(tk.owner)
			if err == nil {
				err = ss.send(wire.FrameTake, tk.ref.Bytes())
			}
			if err != nil {
				n.log.Warn("leaving: cannot hand a lent result to its owner", "ref", tk.ref, "owner", tk.owner, "err", err)
			}
		}
		if running == 0 && lent == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: leave: %d task(s) from other peers still running, %d lent result(s) not taken: %w", running, lent, ctx.Err())
		case <-t.C:
		}
	}
}

// handleTake fetches a result from the peer that lends it, which is
// leaving, and then releases the loan.
func (n *Node) handleTake(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.wg.Add(1)
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
		n.mu.Unlock()
		if mine {
			n.wg.Add(1)
			n.sendRelease(from, ref)
		}
	}()
}
