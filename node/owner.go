package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// forward is a task to hand to a peer once n.mu is released.
type forward struct {
	t    *task
	peer peer.ID
	args []wire.Arg
	sess *session // the session to send on; nil: open one
}

func (n *Node) takeForwards() []forward {
	f := n.fwds
	n.fwds = nil
	return f
}

// forwardLocked prepares a Forward action: it gathers the task's arguments
// now (its dependencies are ready, or it would not have been placed).
func (n *Node) forwardLocked(t *task, to sched.PeerID) {
	pid := peerOf(to)
	var err error
	{
		var args []wire.Arg
		args, err = n.handArgsLocked(t)
		if err == nil {
			n.smu.Lock()
			ss := n.sessions[pid]
			n.smu.Unlock()
			if ss != nil && ss.dead() {
				ss = nil // its tasks were taken back already: open a new one
			}
			t.sess, t.handed = ss, time.Now().UnixNano()
			n.fwds = append(n.fwds, forward{t: t, peer: pid, args: args, sess: ss})
			return
		}
	}
	// Cannot hand it over: the scheduler takes it back.
	n.log.Warn("cannot forward task", "task", t.id, "peer", to, "err", err)
	t.sess = nil
	n.stepLocked(sched.Event{Kind: sched.Refused, Task: sched.TaskID(t.id.KeyString()), Peer: to})
}

// handedLocked reports whether t, a task this node owns, is out on p (the
// scheduler's record).
func (n *Node) handedLocked(t *task, p peer.ID) bool {
	key := t.id.KeyString()
	return n.tasks[key] == t && n.sched.HandedTo(sched.TaskID(key)) == peerKey(p)
}

// takeBackLocked gives the scheduler back t, which was handed to p and is
// refused there, or lost with p (lost: it counts against its retries, and
// the scheduler fails it past them). Unless t was placed elsewhere or
// finished meanwhile, the scheduler forgets the hand-off, so a completion
// that still comes from p is stale.
func (n *Node) takeBackLocked(t *task, p peer.ID, lost bool) {
	if !n.handedLocked(t, p) {
		return
	}
	t.sess = nil
	kind := sched.Refused
	if lost {
		kind = sched.Lost
	}
	n.stepLocked(sched.Event{Kind: kind, Task: sched.TaskID(t.id.KeyString()), Peer: peerKey(p)})
}

// takeBack is takeBackLocked followed by the actions it leads to.
func (n *Node) takeBack(t *task, p peer.ID) {
	n.update(func() { n.takeBackLocked(t, p, false) })
}

// peerGone tells the scheduler p is gone, in one event: the tasks handed
// to p are placed again (or fail past their retries), and the tasks p
// handed this node stop (see cancelLocked). A stale event, for a peer that
// is connected again, is ignored: the tasks on its old session were taken
// back when that session ended, and those it handed since stand.
func (n *Node) peerGone(p peer.ID) {
	if n.net.Connected(p) {
		return
	}
	n.update(func() {
		delete(n.tables, p)
		delete(n.same, p)
		n.stepLocked(sched.Event{Kind: sched.PeerGone, Peer: peerKey(p)})
	})
}

// handArgsLocked returns t's arguments for a hand-off: values inline, ready
// dependencies inline when this node holds them and they are small, by
// reference (content CID, size, holder) otherwise.
func (n *Node) handArgsLocked(t *task) ([]wire.Arg, error) {
	args := make([]wire.Arg, len(t.args))
	for i, a := range t.args {
		if !a.ref.Defined() {
			args[i].Data = a.raw
			continue
		}
		o := n.objects[a.ref]
		if o == nil || o.state != ready {
			return nil, fmt.Errorf("argument %d (%s) is not ready", i+1, a.ref)
		}
		size := o.size
		if !o.away {
			size, _ = n.store.Size(o.content)
		}
		if o.away || size > inlineMax {
			holder := n.net.ID()
			if o.away {
				holder = o.holder
			}
			args[i] = wire.Arg{Content: o.content.Bytes(), Size: size, Holders: [][]byte{[]byte(holder)}}
			continue
		}
		data, err := n.store.Get(n.ctx, o.content)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		args[i].Data = data
	}
	return args, nil
}

// sendForwards hands tasks to their executors on the sessions to them. A
// task whose session is not open yet is sent by a goroutine that opens it,
// so neither a caller nor a session's reader waits for a dial. A task whose
// session cannot be opened goes back to the scheduler at once; one whose
// session dies goes back when it does (see lost).
func (n *Node) sendForwards(fs []forward) {
	for _, f := range fs {
		if f.sess == nil {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.dialForward(f)
			}()
			continue
		}
		n.sendForward(f.sess, f)
	}
}

// dialForward opens the session for f, then sends f on it.
func (n *Node) dialForward(f forward) {
	ss, err := n.sessionTo(f.peer)
	if err != nil {
		n.log.Debug("hand-off failed", "task", f.t.id, "peer", f.peer, "err", err)
		n.takeBack(f.t, f.peer)
		return
	}
	n.mu.Lock()
	if !n.handedLocked(f.t, f.peer) {
		n.mu.Unlock()
		return // re-placed or finished meanwhile
	}
	f.t.sess = ss
	dead := ss.dead()
	n.mu.Unlock()
	if dead {
		// It died before the task was on it, so its end did not give
		// the task back: do it here.
		n.update(func() { n.takeBackLocked(f.t, f.peer, true) })
		return
	}
	n.sendForward(ss, f)
}

func (n *Node) sendForward(ss *session, f forward) {
	msg, err := codec.Marshal(wire.Handoff{Spec: f.t.spec, Args: f.args, Needs: f.t.needs})
	if err != nil {
		n.log.Error("encode hand-off", "task", f.t.id, "err", err)
		ss.close(err) // gives the task back with the session's others
		return
	}
	if ss.send(wire.FrameSubmit, msg) == nil { // a failed send kills ss, which gives the task back
		n.netc.tasksOut.Add(1)
	}
}

// handleDone records the outcome of a task this node handed to from: inline
// results are stored (verified by their own CIDs), lent ones recorded with
// from as their holder, and the outputs resolved as for a task that ran
// here.
func (n *Node) handleDone(from peer.ID, payload []byte) {
	var c wire.Completion
	if err := codec.Unmarshal(payload, &c); err != nil {
		n.log.Warn("bad completion", "peer", from, "err", err)
		return
	}
	id, err := cid.Cast(c.Task)
	if err != nil {
		n.log.Warn("bad completion: task CID", "peer", from, "err", err)
		return
	}
	n.mu.Lock()
	t := n.tasks[id.KeyString()]
	if t == nil || !n.handedLocked(t, from) {
		n.mu.Unlock()
		n.releaseLent(from, c, nil) // stale: already re-placed or done
		return
	}
	n.mu.Unlock()
	var outs []output
	var terr error
	remote := func(msg string) error {
		return &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(), Message: msg}}
	}
	if c.Error != "" {
		terr = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(), Message: c.Error}, Stack: c.Stack, FromFunc: c.FromFunc}
	} else if len(c.Results) != len(t.outputs) {
		terr = remote(fmt.Sprintf("sent %d results, want %d", len(c.Results), len(t.outputs)))
	} else {
		outs, terr = n.storeResults(t, from, c.Results)
	}
	n.mu.Lock()
	if !n.handedLocked(t, from) { // re-placed meanwhile
		n.mu.Unlock()
		n.releaseOutputs(outs)
		n.releaseLent(from, c, nil) // the executor pins what it lent us
		return
	}
	key := sched.TaskID(id.KeyString())
	t.sess = nil
	ev := sched.Event{Kind: sched.Done, Task: key, Peer: peerKey(from), Retryable: c.FromFunc}
	if terr == nil {
		ev.Lent = n.lentOutputsLocked(t, outs) // the scheduler keeps their lineage
	}
	n.stepLocked(ev)
	if n.sched.Tracks(key) {
		n.actLocked() // the function failed and the task runs again
	} else {
		n.finishLocked(t, outs, terr)
	}
	n.unlockAndAct()
	if terr == nil {
		n.announceOutputs(t, outs)
	}
}

// storeResults stores inline results and records lent ones.
func (n *Node) storeResults(t *task, from peer.ID, rs []wire.Result) ([]output, error) {
	outs := make([]output, 0, len(rs))
	fail := func(i int, err error) ([]output, error) {
		n.releaseOutputs(outs)
		n.releaseLent(from, wire.Completion{Results: rs[i:]}, t.outputs[i:])
		return nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: fmt.Errorf("result %d: %w", i+1, err)}
	}
	for i, r := range rs {
		if len(r.Data) > 0 {
			content, err := n.store.PutPinned(n.ctx, r.Data)
			if err != nil {
				return fail(i, err)
			}
			outs = append(outs, output{content: content, links: linksOf(r.Data)})
			continue
		}
		content, err := cid.Cast(r.Content)
		if err != nil || content.Type() != codec.Prefix.Codec || r.Size <= 0 {
			return fail(i, &RemoteError{Peer: from.String(), Message: "result is neither a value nor a content CID"})
		}
		o := output{content: content, holder: from, size: r.Size}
		for _, l := range r.Links {
			if lc, err := cid.Cast(l); err == nil {
				o.links = append(o.links, lc)
			}
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// releaseOutputs gives back outputs not kept: local bytes leave the store,
// lent ones go back to their holder.
func (n *Node) releaseOutputs(outs []output) {
	for _, o := range outs {
		if o.holder == "" {
			_, _ = n.store.Release(o.content)
		}
	}
}

// releaseLent tells from to drop the results of c it lent us (refs are
// outputs' refs, when known; else computed from c's task).
func (n *Node) releaseLent(from peer.ID, c wire.Completion, refs []cid.Cid) {
	for i, r := range c.Results {
		if len(r.Data) > 0 {
			continue
		}
		var ref cid.Cid
		if i < len(refs) {
			ref = refs[i]
		} else if task, err := cid.Cast(c.Task); err == nil {
			ref, _ = outputID(task, i)
		}
		if ref.Defined() {
			n.wg.Add(1)
			go n.sendRelease(from, ref)
		}
	}
}

// sendRelease tells holder that this node no longer needs the lent output
// ref.
func (n *Node) sendRelease(holder peer.ID, ref cid.Cid) {
	defer n.wg.Done()
	ss, err := n.sessionTo(holder)
	if err == nil {
		err = ss.send(wire.FrameRelease, ref.Bytes())
	}
	if err != nil {
		n.log.Debug("cannot release lent result", "ref", ref, "peer", holder, "err", err)
	}
}

// handleRefuse gives a refused task back to the scheduler.
func (n *Node) handleRefuse(ss *session, payload []byte) {
	var r wire.Refusal
	if err := codec.Unmarshal(payload, &r); err != nil {
		n.log.Warn("bad refusal", "peer", ss.peer, "err", err)
		return
	}
	id, err := cid.Cast(r.Task)
	if err != nil {
		return
	}
	n.log.Debug("task refused", "task", id, "peer", ss.peer, "why", r.Why)
	n.mu.Lock()
	t := n.tasks[id.KeyString()]
	n.mu.Unlock()
	if t != nil && r.Arg > 0 && r.Arg <= len(t.args) && t.args[r.Arg-1].ref.Defined() {
		// The task waits for the argument, which this node gets (a Fetch
		// action: see recoverObject), and is placed again.
		ref := t.args[r.Arg-1].ref
		n.update(func() {
			if !n.handedLocked(t, ss.peer) {
				return // placed elsewhere or finished meanwhile
			}
			t.sess = nil
			n.stepLocked(sched.Event{Kind: sched.ArgLost, Task: sched.TaskID(id.KeyString()), Peer: peerKey(ss.peer),
				Object: sched.ObjectID(ref.KeyString())})
		})
		return
	}
	if t != nil {
		n.takeBack(t, ss.peer)
	}
}

// recoverObject gets ref, an argument an executor could fetch from nobody
// (a Fetch action), into this node's store, as a Get does: fetched from
// its holder, or made again from its lineage when the holder is gone. The
// scheduler then hears it is here (ObjectReady), and places the tasks
// waiting for it; if it cannot be had, they fail (ObjectFailed) with a
// DependencyError saying why.
func (n *Node) recoverObject(ref cid.Cid, executor string) {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, fetchTimeout)
	defer cancel()
	content, release, err := n.resolve(ctx, ref, nil, true)
	ev := sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(ref.KeyString()), Holder: peerKey(n.net.ID())}
	if err == nil {
		ev.Size, _ = n.store.Size(content)
		release()
	} else {
		n.log.Warn("an argument no executor could fetch cannot be had here either", "ref", ref, "executor", executor, "err", err)
		ev.Kind = sched.ObjectFailed
	}
	n.update(func() {
		if o := n.objects[ref]; o != nil && err != nil {
			o.lostErr = err
		}
		n.stepLocked(ev)
	})
}
