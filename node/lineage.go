package node

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/sched"
)

// lineage keeps a finished task that lent results to this node, so they
// can be rebuilt by running it again when the only peer holding them is
// gone (as Ray reconstructs lost objects from lineage). The scheduler
// decides when (Rebuild) and when the lineage may go (Forget, which
// releases the arguments it keeps held); the node keeps what it takes.
type lineage struct {
	t *task
}

// dropLineageLocked detaches o from its lineage: this node no longer
// needs the holder's copy — it has the bytes (here: fetched, or handed
// them) or dropped the object — and the scheduler hears so (Settled).
func (n *Node) dropLineageLocked(id cid.Cid, o *object, here bool) {
	if o.lin == nil {
		return
	}
	o.lin = nil
	n.stepLocked(sched.Event{Kind: sched.Settled, Object: sched.ObjectID(id.KeyString()), Here: here})
}

// forgetLineageLocked lets go of a lineage the scheduler no longer needs
// (a Forget action): the arguments it kept held are released.
func (n *Node) forgetLineageLocked(key string) {
	lin := n.lins[key]
	if lin == nil {
		return
	}
	delete(n.lins, key)
	for _, id := range lin.t.outputs {
		if o := n.objects[id]; o != nil && o.lin == lin {
			o.lin = nil
		}
	}
	held := lin.t.held
	lin.t.held = nil
	n.releaseAllLocked(held)
}

// errRebuilding tells a Get that the object it wanted is being made again
// (its holder is lost): it waits for it as for any pending object.
var errRebuilding = errors.New("node: rebuilding from lineage")

// rebuildLocked makes the task of lineage key run again (a Rebuild
// action: the scheduler has submitted it): the outputs it lent go back to
// pending, and the task is tracked again (same spec, so the same task and
// output IDs).
func (n *Node) rebuildLocked(key string) {
	lin := n.lins[key]
	if lin == nil || n.tasks[key] != nil {
		n.log.Error("scheduler rebuilds a task the node cannot", "task", fmt.Sprintf("%x", key))
		return
	}
	old := lin.t
	t := &task{id: old.id, fn: old.fn, args: old.args, outputs: old.outputs, spec: old.spec, held: old.held,
		nested: old.nested, maxRetries: old.maxRetries, retryErrors: old.retryErrors} // not pinned: see sched
	old.held = nil
	lin.t = t // a later rebuild starts from this run
	for i, id := range t.outputs {
		p := n.objects[id]
		if p == nil {
			// Dropped since: a record to finish, dropped again then.
			n.objects[id] = &object{memo: t.fn.Deterministic, fn: t.fn.Name, task: t.id, index: i}
			continue
		}
		if p.lin != lin {
			continue // kept from another run, or here: it stands
		}
		p.lin = nil
		p.state, p.content, p.away, p.holder, p.size = pending, cid.Undef, false, "", 0
		links := p.links
		p.links = nil
		n.releaseAllLocked(links)
	}
	n.tasks[key] = t
	n.netc.rebuilt.Add(1)
	n.log.Warn("rebuilding a result whose holder is gone", "func", t.fn.Name, "task", t.id)
}
