package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/sched"
)

// actLocked performs the scheduler's actions: runs, hand-offs and frames
// are queued for once n.mu is released (unlockAndAct); failures are
// applied now (and may cascade).
func (n *Node) actLocked() {
	var buf [8]sched.Action
	for n.sched.HasActions() {
		// Our own buffer: handling an action steps the scheduler again.
		for _, a := range n.sched.TakeActions(buf[:0]) {
			// Actions about peers and objects first; then those about a
			// task this node tracks.
			switch a.Kind {
			case sched.Probe:
				n.probes += a.Count
				continue
			case sched.ClaimOffer: // another peer's task
				n.claimLocked(a)
				continue
			case sched.Ping, sched.Drop:
				n.leaseLocked(a)
				continue
			case sched.EndLoan, sched.Take, sched.Left:
				n.loanLocked(a)
				continue
			case sched.FetchFuncs:
				n.fetchTableLocked(a.Peer)
				continue
			case sched.Rebuild:
				n.rebuildLocked(string(a.Task))
				continue
			case sched.Forget:
				n.forgetLineageLocked(string(a.Task))
				continue
			case sched.Fetch:
				if ref, err := cid.Cast([]byte(a.Object)); err == nil {
					n.wg.Add(1)
					go n.recoverObject(ref, peerOf(a.Peer).String())
				}
				continue
			}
			t := n.tasks[string(a.Task)]
			if t == nil {
				n.log.Error("scheduler named an unknown task", "action", a.Kind, "task", fmt.Sprintf("%x", a.Task))
				continue
			}
			switch a.Kind {
			case sched.Run:
				n.wg.Add(1)
				n.runs = append(n.runs, t)
			case sched.Forward:
				n.forwardLocked(t, a.Peer)
			case sched.Offer:
				n.offerLocked(t)
			case sched.Fail:
				n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: n.failCauseLocked(t, a)})
			case sched.Retry:
				t.sess = nil
				n.log.Info("the function failed; running it again", "func", t.fn.Name, "task", t.id, "attempt", a.Count, "of", t.maxRetries+1)
			case sched.Refuse:
				n.refuseLocked(t, a.Reason)
			case sched.Cancel:
				n.cancelLocked(t)
			}
		}
	}
}

// failCauseLocked says why the scheduler failed t (a Fail action).
func (n *Node) failCauseLocked(t *task, a sched.Action) error {
	switch a.Reason {
	case sched.FailLost:
		return &ExecutorLostError{Peer: peerOf(a.Peer).String(), Runs: a.Count, MaxRetries: t.maxRetries}
	case sched.FailPinned:
		return fmt.Errorf("cannot run on peer %s: it refused the task or cannot be reached", t.on)
	case sched.FailNoPeer:
		return &NoPeerOffersError{Name: t.fn.Name, Signature: t.fn.Signature(), Needs: t.needs, Waited: time.Duration(a.Count) * sched.TickEvery,
			Suggestions: n.nearNamesLocked(t.fn.Name)}
	}
	dep, _ := cid.Cast([]byte(a.Object))
	if a.Reason == sched.FailArg {
		return &DependencyError{Arg: argIndex(t, dep), Ref: dep,
			Err: fmt.Errorf("executors could not fetch it %d times although this node could", a.Count)}
	}
	arg := argIndex(t, dep)
	if o := n.objects[dep]; o != nil {
		err := o.err
		if err == nil {
			err = o.lostErr
		}
		return &DependencyError{Arg: arg, Ref: dep, Err: err}
	}
	return &DependencyError{Arg: arg, Ref: dep}
}

// argIndex is the index of t's argument that is the ref dep (0 if none).
func argIndex(t *task, dep cid.Cid) int {
	for i, x := range t.args {
		if x.ref == dep {
			return i
		}
	}
	return 0
}

// retriesEvent is a task's retry budget as sched.Event.MaxRetries says it.
func retriesEvent(r int) int {
	if r <= 0 {
		return -1
	}
	return r
}

// unlockAndAct releases n.mu, then starts the runs, sends the hand-offs,
// probes and frames the scheduler's actions called for.
func (n *Node) unlockAndAct() {
	runs, fwds, later := n.takeRuns(), n.takeForwards(), n.later
	n.later = nil
	probes := n.probeTargetsLocked()
	n.mu.Unlock()
	n.start(runs)
	n.sendForwards(fwds)
	n.sendProbes(probes)
	for _, f := range later {
		f()
	}
}

func (n *Node) takeRuns() []*task {
	r := n.runs
	n.runs = nil
	return r
}

// peerKey is p as the scheduler names peers: the peer ID's bytes, which
// need no base58 encoding on every frame (a peer ID's String costs a
// microsecond).
func peerKey(p peer.ID) sched.PeerID { return sched.PeerID(p) }

// peerOf is the peer the scheduler names id.
func peerOf(id sched.PeerID) peer.ID { return peer.ID(id) }

// fromFunc reports whether err is the function's own failure (an error
// it returned, a panic), which a task that retries errors runs again for.
func fromFunc(err error) bool {
	var te *TaskError
	return errors.As(err, &te) && te.FromFunc
}

// stepLocked applies one event the node's state says fits the
// scheduler's. An error is a bug: logged, and a panic in tests.
func (n *Node) stepLocked(ev sched.Event) {
	if err := n.sched.Step(ev); err != nil {
		if checkSched {
			panic(fmt.Errorf("node: %w", err))
		}
		n.log.Error("scheduler refused an event (a bug)", "event", ev.Kind, "err", err)
	}
}

// schedHook, when set (by tests), may change each new node's scheduler
// configuration: to record its steps (sched.Config.Trace), say.
var schedHook func(*sched.Config)

// checkSched makes every node check the scheduler's invariants after each
// event and panic on an event it refuses: the package's tests set it.
var checkSched = false
