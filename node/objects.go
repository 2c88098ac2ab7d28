package node

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
)

type objState uint8

// object is the node's record of one ref: its state, where its bytes are,
// and how many holders (live handles, waiting tasks, containing objects)
// still need it. n.mu guards it.
type object struct {
	state   objState
	content cid.Cid // ready: CID of the bytes in the store
	err     error   // failed: why
	holds   int
	fn      string // producing function ("" for a put value), for messages
	task    cid.Cid
	index   int             // which result of task
	memo    bool            // output of a deterministic function: remember on release
	links   []cid.Cid       // refs inside the value, held while this object lives
	waiters []chan struct{} // each has room for one wake-up signal
	// holder is the peer that ran the task and keeps a large result for
	// us (it is released when the object is dropped); away says its bytes
	// are not in our store yet (a Get fetches them); size is known for
	// lent results.
	holder peer.ID
	away   bool
	size   int64
	fetch  chan struct{} // closed when a fetch in progress ends
	// lin is how to make a lent result again if its holder is lost: the
	// task that made it, whose arguments stay held while it may be needed.
	lin *lineage
	// lostErr says why it could not be had for a task an executor handed
	// back (see recoverObject).
	lostErr error
}

// finishLocked resolves t's outputs (ready with contents, or failed with
// err), tells the scheduler, and drops the task.
func (n *Node) finishLocked(t *task, outs []output, err error) {
	var lin *lineage
	if err == nil && len(n.lentOutputsLocked(t, outs)) > 0 {
		// The scheduler keeps the lineage (it was told with Done's Lent).
		lin = &lineage{t: t}
		n.lins[t.id.KeyString()] = lin
	}
	for i, id := range t.outputs {
		o := n.objects[id]
		if o.state != pending {
			// Kept from an earlier run of this deterministic task: the
			// record stands; give back this run's copy of equal bytes.
			if err == nil {
				n.dropOutputLocked(id, outs[i])
			}
			continue
		}
		ev := sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(id.KeyString())}
		if err == nil {
			out := outs[i]
			o.state, o.content = ready, out.content
			o.holder, o.away, o.size = out.holder, out.holder != "", out.size
			if out.holder != "" {
				o.lin = lin
			}
			n.holdLinksLocked(o, out.links)
			if n.net != nil {
				ev.Holder, ev.Size = peerKey(n.net.ID()), out.size
				if out.holder != "" {
					ev.Holder = peerKey(out.holder)
				} else {
					ev.Size, _ = n.store.Size(out.content)
				}
			}
		} else {
			o.state, o.err = failed, err
			ev.Kind = sched.ObjectFailed
		}
		n.wake(o)
		n.stepLocked(ev)
		n.maybeDropLocked(id, o)
	}
	if key := t.id.KeyString(); n.tasks[key] == t {
		n.forgetTaskLocked(key)
	}
	if lin == nil {
		// (A lineage keeps the arguments held until it is forgotten.)
		n.releaseAllLocked(t.held)
		t.held = nil
	}
	n.actLocked()
}

// lentOutputsLocked lists t's outputs that outs says another peer keeps
// for this node, still pending here (so this run's copy is the one kept):
// the results lent to it, as Done's Lent tells the scheduler.
func (n *Node) lentOutputsLocked(t *task, outs []output) []sched.ObjectID {
	var lent []sched.ObjectID
	for i, id := range t.outputs {
		if i < len(outs) && outs[i].holder != "" {
			if o := n.objects[id]; o != nil && o.state == pending {
				lent = append(lent, sched.ObjectID(id.KeyString()))
			}
		}
	}
	return lent
}

// dropOutputLocked gives back a result not kept (output id of a task that
// ran twice): local bytes leave the store, lent ones go back to their
// holder.
func (n *Node) dropOutputLocked(id cid.Cid, out output) {
	if out.holder == "" {
		_, _ = n.store.Release(out.content)
		return
	}
	n.wg.Add(1)
	go n.sendRelease(out.holder, id)
}

// holdLinksLocked holds the refs inside a ready object's value for as long
// as the object lives, so a ref returned inside a result stays valid.
func (n *Node) holdLinksLocked(o *object, links []cid.Cid) {
	for _, l := range links {
		if lo := n.objects[l]; lo != nil {
			lo.holds++
			o.links = append(o.links, l)
		}
	}
}

// linksOf returns the CID links in an encoded value. Most values hold none;
// the tag-42 byte pair is looked for first so they cost one scan.
func linksOf(data []byte) []cid.Cid {
	if !mayHaveLinks(data) {
		return nil
	}
	ls, err := codec.Links(data)
	if err != nil {
		return nil
	}
	return ls
}

func mayHaveLinks(data []byte) bool {
	for i := 0; i+1 < len(data); i++ {
		if data[i] == 0xd8 && data[i+1] == 0x2a {
			return true
		}
	}
	return false
}

// describe names what made o, for messages.
func (o *object) describe() string {
	if o.fn == "" {
		return "a put value"
	}
	return fmt.Sprintf("result %d of %s, task %s", o.index+1, o.fn, o.task)
}

// wake notifies everyone waiting on o. Waiter channels have room for one
// signal; a waiter watching several objects may be signalled already.
func (n *Node) wake(o *object) {
	for _, w := range o.waiters {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	o.waiters = nil
}

// release gives back one hold on id (a ref handle was collected).
func (n *Node) release(id cid.Cid) {
	n.mu.Lock()
	n.releaseLocked(id)
	n.mu.Unlock()
}

func (n *Node) releaseAllLocked(ids []cid.Cid) {
	for _, id := range ids {
		n.releaseLocked(id)
	}
}

func (n *Node) releaseLocked(id cid.Cid) {
	o := n.objects[id]
	if o == nil {
		return
	}
	o.holds--
	n.maybeDropLocked(id, o)
}

// maybeDropLocked forgets an object nobody holds once it is resolved; its
// bytes leave the store unless a deterministic function made them, in which
// case they stay, unpinned, as a memo the store may evict.
func (n *Node) maybeDropLocked(id cid.Cid, o *object) {
	if o.holds > 0 || o.state == pending || n.closed {
		return
	}
	delete(n.objects, id)
	if o.state != ready {
		return
	}
	if o.holder != "" {
		n.wg.Add(1)
		go n.sendRelease(o.holder, id)
	}
	n.dropLineageLocked(id, o, false)
	switch {
	case o.away: // never fetched: no bytes here
	case o.memo && n.memo != nil && len(o.links) == 0:
		// A memoized value must not name objects that are released
		// now, so only values without refs inside are remembered.
		n.memo.Add(id, o.content)
		_ = n.store.Unpin(o.content)
	default:
		_, _ = n.store.Release(o.content)
	}
	links := o.links
	o.links = nil
	n.releaseAllLocked(links)
}
