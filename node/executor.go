package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// giveBack hands t, a task its owner handed this node, back with a
// refusal saying why (arg: the 1-based argument it could not fetch, or
// 0), on the session it came on or, if that one died, a new one.
func (n *Node) giveBack(t *task, why string, arg int) error {
	data, err := codec.Marshal(wire.Refusal{Task: t.id.Bytes(), Why: why, Arg: arg})
	if err != nil {
		return err
	}
	t.acked.Store(true)
	if ss := t.sess; ss != nil && ss.send(wire.FrameRefuse, data) == nil {
		return nil
	}
	ss, err := n.sessionTo(t.owner)
	if err == nil {
		err = ss.send(wire.FrameRefuse, data)
	}
	return err
}

// cancelLocked stops t, a task whose owner is gone (a Cancel action): a
// task not started is forgotten (the scheduler dropped it); a running one
// sees its context cancelled with an OwnerDiedError, and its outcome is
// dropped (see report).
func (n *Node) cancelLocked(t *task) {
	key := t.id.KeyString()
	if !n.sched.Tracks(sched.TaskID(key)) {
		n.forgetTaskLocked(key)
		return
	}
	t.orphaned = true
	if t.cancel != nil {
		t.cancel(&OwnerDiedError{Owner: t.owner.String()})
	}
	n.log.Info("owner gone; stopping its task", "owner", t.owner, "task", t.id)
}

// refuseLocked gives t, a task its owner handed this node, back to the
// owner (a Refuse action: this node leaves, or its queue is full) and
// forgets it.
func (n *Node) refuseLocked(t *task, why sched.Reason) {
	msg := "peer is leaving the swarm"
	switch why {
	case sched.RefuseFull:
		msg = fmt.Sprintf("queue full (%d tasks wait for a slot)", n.cfg.maxQueue())
	case sched.RefuseNoFunc:
		msg = "peer does not offer function " + t.fn.Signature()
	case sched.RefuseNeeds:
		msg = fmt.Sprintf("peer has not the resources %s needs (%s; it has %s)", t.fn.Name, needsText(t.needs), needsText(n.cfg.Resources))
	}
	n.forgetTaskLocked(t.id.KeyString())
	n.netc.refused.Add(1)
	n.later = append(n.later, func() {
		if err := n.giveBack(t, msg, 0); err != nil {
			n.log.Warn("cannot hand a task back to its owner", "task", t.id, "owner", t.owner, "err", err)
		}
	})
}

// acceptTask takes a task another peer handed over on ss: it checks the
// spec, refuses what it cannot run, queues the rest to run here, and
// acknowledges.
func (n *Node) acceptTask(ss *session, payload []byte) {
	var h wire.Handoff
	if err := codec.Unmarshal(payload, &h); err != nil {
		// Without a spec there is no task to refuse by name: the session
		// is unusable, and closing it gives the owner its tasks back.
		n.log.Warn("bad hand-off; closing the session", "peer", ss.peer, "err", err)
		ss.close(fmt.Errorf("bad hand-off: %w", err))
		return
	}
	id := codec.Sum(h.Spec)
	refuse := func(why string) {
		n.log.Debug("refusing task", "peer", ss.peer, "task", id, "why", why)
		n.netc.refused.Add(1)
		data, err := codec.Marshal(wire.Refusal{Task: id.Bytes(), Why: why})
		if err == nil {
			_ = ss.send(wire.FrameRefuse, data)
		}
	}
	if !n.limiter(ss.peer).Allow() {
		refuse(fmt.Sprintf("peer %s hands over more than %g tasks a second", ss.peer, n.cfg.peerTaskRate()))
		return
	}
	t, err := n.taskFromSpec(h.Spec, h.Args)
	if err != nil {
		refuse(err.Error())
		return
	}
	t.owner, t.sess, t.needs = ss.peer, ss, h.Needs
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		refuse("peer is closing")
		return
	}
	key := t.id.KeyString()
	if _, dup := n.tasks[key]; dup {
		n.mu.Unlock()
		refuse("task already here")
		return
	}
	// The scheduler refuses it when this node leaves or its queue is full
	// (a Refuse action, which forgets it and tells the owner).
	n.tasks[key] = t
	err = n.sched.Step(sched.Event{Kind: sched.Submit, Task: sched.TaskID(key), Func: t.fn.ID(), Needs: t.needs, Here: true, Owner: peerKey(ss.peer)})
	if err != nil {
		n.forgetTaskLocked(key)
	}
	n.actLocked()
	accepted := n.tasks[key] == t
	n.unlockAndAct()
	if err != nil {
		refuse(err.Error())
		return
	}
	if !accepted {
		return
	}
	n.netc.tasksIn.Add(1)
	// The acknowledgement is delayed, as TCP delays its ACKs: a task that
	// finishes within ackDelay is acknowledged by its completion, which
	// saves a frame and a write on each side for short tasks.
	time.AfterFunc(ackDelay, func() {
		if t.acked.CompareAndSwap(false, true) {
			_ = ss.send(wire.FrameAck, t.id.Bytes())
		}
	})
}

// forgetLimiter drops p's token bucket once it is gone, so the table
// holds only peers this node is connected to (a peer that comes back
// starts with a full bucket, as a new one does).
func (n *Node) forgetLimiter(p peer.ID) {
	n.lmu.Lock()
	delete(n.limits, p)
	n.lmu.Unlock()
}

// limiter returns the token bucket that bounds p's hand-offs.
func (n *Node) limiter(p peer.ID) *rate.Limiter {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	l := n.limits[p]
	if l == nil {
		if n.limits == nil {
			n.limits = make(map[peer.ID]*rate.Limiter)
		}
		r := n.cfg.peerTaskRate()
		l = rate.NewLimiter(rate.Limit(r), max(int(r), 1))
		n.limits[p] = l
	}
	return l
}

// taskFromSpec rebuilds a task sent by its owner: the task ID is the
// spec's CID, the function must be registered here, and every argument
// must be a value or a well-formed reference.
func (n *Node) taskFromSpec(spec []byte, args []wire.Arg) (*task, error) {
	var parts codec.Tuple
	if err := codec.Unmarshal(spec, &parts); err != nil || len(parts) < 2 {
		return nil, fmt.Errorf("bad task spec")
	}
	version, _ := parts[0].(string)
	name, _ := parts[1].(string)
	if version != wire.SpecVersion || len(parts) != 6 {
		return nil, fmt.Errorf("task spec version %q, want %q (peers of another dray version)", version, wire.SpecVersion)
	}
	var id uint64
	switch v := parts[2].(type) { // CBOR ints decode as int64 below 2^63
	case uint64:
		id = v
	case int64:
		id = uint64(v)
	}
	fn, err := n.reg.Lookup(name)
	if err != nil {
		return nil, err
	}
	if fn.remote {
		return nil, fmt.Errorf("peer does not offer function %s (it only calls it on other peers)", name)
	}
	if uint64(fn.ID()) != id {
		return nil, fmt.Errorf("peer has function %s under another signature or version: %s", name, fn.Signature())
	}
	if len(args) != len(fn.Params) {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", name, len(fn.Params), len(args))
	}
	t := &task{id: codec.Sum(spec), fn: fn, args: make([]argument, len(args)), outputs: make([]cid.Cid, len(fn.Results)), spec: spec}
	for i, a := range args {
		if len(a.Data) > 0 {
			t.args[i].raw = a.Data
			continue
		}
		c, err := cid.Cast(a.Content)
		if err != nil || c.Type() != codec.Prefix.Codec {
			return nil, fmt.Errorf("argument %d: neither a value nor a content CID", i+1)
		}
		if a.Size < 0 {
			return nil, fmt.Errorf("argument %d: size %d is negative", i+1, a.Size)
		}
		t.args[i].content = c
		for _, h := range a.Holders {
			if p, err := peer.IDFromBytes(h); err == nil {
				t.args[i].holders = append(t.args[i].holders, p)
			}
		}
	}
	for i := range t.outputs {
		if t.outputs[i], err = outputID(t.id, i); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// outcome is a handed task's outcome as its owner hears it: the
// completion, which results travel inline, which stay here lent, and
// whether the owner was gone when the run ended.
type outcome struct {
	c            wire.Completion
	inline, lent []int // indexes into the outputs
	argLost      *argLostError
	orphaned     bool
}

// prepareReport builds the completion of t, a task handed to us, from its
// run: small results travel inline; larger ones stay here, lent to the
// owner.
func (n *Node) prepareReport(t *task, outs []output, err error) *outcome {
	r := &outcome{c: wire.Completion{Task: t.id.Bytes()}}
	if errors.As(err, &r.argLost) {
		return r
	}
	if err != nil {
		r.c.Error = err.Error()
		var te *TaskError
		if errors.As(err, &te) {
			r.c.Error = te.Cause.Error()
			r.c.Stack = te.Stack
			r.c.FromFunc = te.FromFunc
		}
		return r
	}
	for i, o := range outs {
		size, _ := n.store.Size(o.content)
		if size > inlineMax {
			res := wire.Result{Content: o.content.Bytes(), Size: size}
			for _, l := range o.links {
				res.Links = append(res.Links, l.Bytes())
			}
			r.c.Results = append(r.c.Results, res)
			r.lent = append(r.lent, i)
			continue
		}
		data, gerr := n.store.Get(n.ctx, o.content)
		if gerr != nil {
			r.c.Results, r.c.Error, r.inline, r.lent = nil, "result lost on the executor: "+gerr.Error(), nil, nil
			break
		}
		r.c.Results = append(r.c.Results, wire.Result{Data: data})
		r.inline = append(r.inline, i)
	}
	return r
}

// report sends a remote task's outcome back to its owner on the session
// the task came on (or a new one, if that one died). Small results travel
// inline and leave this store; larger ones stay, lent to the owner and
// announced, until the owner releases them (the scheduler's loans).
func (n *Node) report(t *task, outs []output, r *outcome) {
	if r.orphaned {
		// Nobody to report to: the owner placed its tasks again, or is gone.
		n.log.Info("dropping the outcome of a task whose owner is gone", "task", t.id, "owner", t.owner)
		for _, o := range outs {
			_, _ = n.store.Release(o.content)
		}
		if n.net.Connected(t.owner) {
			// Back after all: a refusal makes sure it places the task
			// again (a no-op if it already did).
			_ = n.giveBack(t, "stopped when its owner seemed gone", 0)
		}
		return
	}
	if lost := r.argLost; lost != nil {
		// Not the function's failure: the owner recovers the argument.
		n.log.Info("an argument of a handed task is unavailable; handing the task back", "task", t.id, "owner", t.owner, "arg", lost.arg+1, "err", lost.err)
		_ = n.giveBack(t, lost.Error(), lost.arg+1)
		return
	}
	serr := n.sendCompletion(t, r.c)
	if serr != nil {
		n.log.Warn("cannot report task", "task", t.id, "owner", t.owner, "err", serr)
	}
	for _, i := range r.inline {
		_, _ = n.store.Release(outs[i].content)
	}
	if r.c.Error != "" && len(r.c.Results) == 0 { // results not sent: release them all
		for _, o := range outs {
			_, _ = n.store.Release(o.content)
		}
	}
	if serr != nil && len(r.lent) > 0 {
		// The owner never heard of the loans: they end.
		n.update(func() {
			for _, i := range r.lent {
				n.stepLocked(sched.Event{Kind: sched.Released, Object: sched.ObjectID(t.outputs[i].KeyString()), Peer: peerKey(t.owner)})
			}
		})
		return
	}
	for _, i := range r.lent {
		n.announce(t.outputs[i], outs[i].content)
	}
}

func (n *Node) sendCompletion(t *task, c wire.Completion) error {
	msg, err := codec.Marshal(c)
	if err != nil {
		return err
	}
	t.acked.Store(true) // the completion acknowledges the task too
	if ss := t.sess; ss != nil {
		if ss.send(wire.FrameDone, msg) == nil {
			return nil
		}
	}
	ss, err := n.sessionTo(t.owner)
	if err != nil {
		return err
	}
	return ss.send(wire.FrameDone, msg)
}

// argLostError is an argument a handed task cannot get: nobody serves its
// bytes. The executor hands the task back (a refusal naming the argument)
// rather than failing it.
type argLostError struct {
	arg int // 0-based
	err error
}

func (e *argLostError) Error() string {
	return fmt.Sprintf("argument %d cannot be fetched from any holder: %v", e.arg+1, e.err)
}

func (e *argLostError) Unwrap() error { return e.err }
