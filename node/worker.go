package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
)

type ctxKey struct{}

// taskCtx is the context a task runs with: the node's context plus the
// task, so Get inside the task can give the slot back and FromContext
// finds the node. It lives inside the task, so making it costs nothing.
type taskCtx struct {
	context.Context
	n *Node
	t *task
}

// Value answers ctxKey{} with the taskCtx itself.
func (c *taskCtx) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// FromContext returns the node running the task whose context ctx is, or
// nil. Remote functions use it to call other remote functions.
func FromContext(ctx context.Context) *Node {
	if tc, ok := ctx.Value(ctxKey{}).(*taskCtx); ok {
		return tc.n
	}
	return nil
}

// start hands tasks to idle workers, and starts a worker for each task no
// idle worker takes. Workers outlive their task and wait a while for the
// next, so a busy node reuses goroutines (and their grown stacks) instead
// of starting one per task; the pool grows past Slots only while tasks are
// blocked in Get, and shrinks back when idle.
func (n *Node) start(runs []*task) {
	for _, t := range runs {
		select {
		case n.work <- t:
		default:
			go n.worker(t)
		}
	}
}

// workerIdle is how long a worker without a task waits before it exits.
const workerIdle = 5 * time.Second

func (n *Node) worker(t *task) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		n.execute(t)
		idle.Reset(workerIdle)
		select {
		case t = <-n.work:
		case <-idle.C:
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// execute runs t on this goroutine and records its outcome.
func (n *Node) execute(t *task) {
	defer n.wg.Done()
	outs, results, err := n.run(t)
	key := t.id.KeyString()
	var rep *outcome
	if t.owner != "" {
		rep = n.prepareReport(t, outs, err) // reads the store: before the lock
	}
	n.mu.Lock()
	// The function's own failure may run the task again (the scheduler
	// keeps it, with a Retry action); a task handed to us is the owner's
	// to retry, and the results it lends the owner are loans the
	// scheduler keeps (before the owner can hear of them).
	ev := sched.Event{Kind: sched.Done, Task: sched.TaskID(key), Retryable: t.owner == "" && fromFunc(err)}
	if rep != nil {
		rep.orphaned = t.orphaned
		if !rep.orphaned {
			for _, i := range rep.lent {
				n.loans[t.outputs[i]] = outs[i].content
				ev.Lent = append(ev.Lent, sched.ObjectID(t.outputs[i].KeyString()))
			}
		}
	}
	n.stepLocked(ev)
	switch {
	case t.owner != "":
		// Handed to us by its owner, which keeps the outputs' records.
		if n.tasks[key] == t {
			n.forgetTaskLocked(key)
		}
		n.actLocked()
	case n.sched.Tracks(sched.TaskID(key)):
		n.actLocked() // runs again: its outputs stay pending
	default:
		n.finishLocked(t, outs, err)
	}
	n.unlockAndAct()
	if rep != nil {
		n.report(t, outs, rep)
	} else if err == nil {
		n.announceOutputs(t, outs)
	}
	// Refs inside the results stay reachable until finishLocked has held
	// them for the output objects.
	runtime.KeepAlive(results)
}

// announceOutputs provides a finished task's refs and contents in the DHT.
func (n *Node) announceOutputs(t *task, outs []output) {
	if n.net == nil {
		return
	}
	for i, o := range outs {
		n.announce(t.outputs[i], o.content)
	}
}

// output is a result: its content CID and the refs inside it, and, for a
// result another peer keeps for us, that peer and the size.
type output struct {
	content cid.Cid
	links   []cid.Cid
	holder  peer.ID
	size    int64
}

// run resolves t's arguments, calls the function and stores its results.
// It returns the results too, which the caller keeps alive until the refs
// inside them are held.
func (n *Node) run(t *task) (outs []output, results []any, err error) {
	fail := func(cause error) error { return &TaskError{Func: t.fn.Name, Task: t.id, Cause: cause} }
	if n.ctx.Err() != nil { // closing: queued tasks do not start
		return nil, nil, fail(ErrClosed)
	}
	fctx := n.ctx
	if t.owner != "" {
		var cancel context.CancelCauseFunc
		fctx, cancel = context.WithCancelCause(n.ctx)
		defer cancel(nil)
		n.mu.Lock()
		orphaned := t.orphaned
		t.cancel = cancel
		n.mu.Unlock()
		if orphaned {
			return nil, nil, fail(&OwnerDiedError{Owner: t.owner.String()})
		}
	}
	args := make([][]byte, len(t.args))
	for i, a := range t.args {
		if a.content.Defined() {
			data, err := n.fetchArg(fctx, a)
			if err != nil {
				if t.owner != "" && n.ctx.Err() == nil && !errors.Is(err, store.ErrFull) {
					return nil, nil, &argLostError{arg: i, err: err}
				}
				return nil, nil, fail(fmt.Errorf("argument %d: %w", i+1, err))
			}
			args[i] = data
			continue
		}
		if !a.ref.Defined() {
			args[i] = a.raw
			continue
		}
		data, err := n.getBytes(n.ctx, a.ref, nil)
		if err != nil {
			return nil, nil, fail(&DependencyError{Arg: i, Ref: a.ref, Err: err})
		}
		args[i] = data
	}
	// A context per run: goroutines a failed run left behind keep theirs
	// when the task is run again (RetryErrors).
	ctx := &taskCtx{Context: fctx, n: n, t: t}
	results, err = n.invoke(ctx, t, args)
	if err != nil {
		return nil, nil, err
	}
	if len(results) != len(t.outputs) {
		return nil, nil, fail(fmt.Errorf("function returned %d results, want %d", len(results), len(t.outputs)))
	}
	outs = make([]output, len(results))
	for i, r := range results {
		data, err := codec.Marshal(r)
		if err == nil {
			outs[i].links = linksOf(data)
			outs[i].content, err = n.store.PutPinned(n.ctx, data)
		}
		if err != nil {
			for _, o := range outs[:i] {
				_, _ = n.store.Release(o.content)
			}
			return nil, nil, fail(fmt.Errorf("result %d: %w", i+1, err))
		}
	}
	return outs, results, nil
}

// invoke calls the function, turning a panic into a TaskError with the stack.
func (n *Node) invoke(ctx context.Context, t *task, args [][]byte) (res []any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &PanicError{Value: p}, Panic: p, Stack: string(debug.Stack()), FromFunc: true}
		}
	}()
	res, err = t.fn.invoke(ctx, args)
	if err != nil {
		var te *TaskError
		var ae *ArgumentError
		if !errors.As(err, &te) || te.Task != t.id {
			err = &TaskError{Func: t.fn.Name, Task: t.id, Cause: err, FromFunc: !errors.As(err, &ae)}
		}
	}
	return res, err
}

// blockLocked tells the scheduler that the task running on ctx, if any,
// waits in Get and gives its slot back (so nested tasks cannot deadlock the
// pool). unblockLocked takes the slot again.
func (n *Node) blockLocked(ctx context.Context) *task {
	tc, ok := ctx.Value(ctxKey{}).(*taskCtx)
	if !ok || tc.n != n || n.tasks[tc.t.id.KeyString()] != tc.t {
		return nil
	}
	t := tc.t
	t.blocked++
	if t.blocked == 1 {
		n.stepLocked(sched.Event{Kind: sched.Blocked, Task: sched.TaskID(t.id.KeyString())})
		n.actLocked()
	}
	return t
}

func (n *Node) unblockLocked(t *task) {
	if t == nil {
		return
	}
	t.blocked--
	if t.blocked == 0 && n.tasks[t.id.KeyString()] == t {
		n.stepLocked(sched.Event{Kind: sched.Unblocked, Task: sched.TaskID(t.id.KeyString())})
	}
}
