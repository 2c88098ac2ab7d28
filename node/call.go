package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// argument is one argument of a task: inline encoded bytes, a ref, or (on
// an executor) a value by content CID to fetch from its holders.
type argument struct {
	raw     []byte
	ref     cid.Cid   // defined when the argument is a ref (a dependency)
	content cid.Cid   // defined when the value must be fetched
	holders []peer.ID // who holds content
}

// Call submits a call of the function registered as name and returns at
// once one ref per result. An argument that is a ref (ObjectRef or Ref[T])
// is a dependency: the task runs once its value exists and receives the
// value. Any other argument is encoded as a value; refs nested inside it
// arrive as refs.
func (n *Node) Call(ctx context.Context, name string, args ...any) ([]ObjectRef, error) {
	return n.call(ctx, name, args, false)
}

// CallOptions change where and how a call runs.
type CallOptions struct {
	// On pins the task to the peer with this ID (this node's own ID runs
	// it here). The task fails if that peer refuses it or cannot be
	// reached. Empty: the scheduler places it.
	On string
	// MaxRetries replaces the function's or the node's MaxRetries for this
	// call when positive; negative means no retries; 0 keeps the default.
	MaxRetries int
	// RetryErrors runs the call again, up to its MaxRetries times, when
	// the function itself fails (returns an error or panics); without it
	// (or the function's RetryErrors option) such failures are final.
	RetryErrors bool
	// Needs adds to (or replaces quantities of) the function's Needs for
	// this call: the resources it needs where it runs.
	Needs map[string]int
}

// CallWith is Call with options.
func (n *Node) CallWith(ctx context.Context, opts CallOptions, name string, args ...any) ([]ObjectRef, error) {
	if opts.On != "" && opts.On != n.id && n.net == nil {
		return nil, fmt.Errorf("%w: cannot call %s on peer %s (start the node with a network, or drop the peer)", ErrNoSwarm, name, opts.On)
	}
	return n.callOn(ctx, name, args, false, opts)
}

func (n *Node) call(ctx context.Context, name string, args []any, typedArgs bool) ([]ObjectRef, error) {
	return n.callOn(ctx, name, args, typedArgs, CallOptions{})
}

func (n *Node) callOn(ctx context.Context, name string, args []any, typedArgs bool, opts CallOptions) ([]ObjectRef, error) {
	on := opts.On
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("node: call %s: %w", name, err)
	}
	if err := n.admitCall(ctx, name); err != nil {
		return nil, err
	}
	fn, err := n.lookupFunction(ctx, name, args)
	if err != nil {
		return nil, err
	}
	if len(args) != len(fn.Params) {
		return nil, fmt.Errorf("%w: %s takes %d, got %d (signature: %s)", ErrArgCount, fn.Name, len(fn.Params), len(args), fn.Signature())
	}
	targs := make([]argument, len(args))
	for i, a := range args {
		if r, ok := a.(refArg); ok {
			id := r.objectRef().CID()
			if !id.Defined() {
				return nil, fmt.Errorf("node: call %s: argument %d is a zero ref", fn.Name, i+1)
			}
			if r.objectRef().Released() {
				return nil, &ReleasedError{Op: fmt.Sprintf("call %s: argument %d", fn.Name, i+1), Ref: id}
			}
			targs[i].ref = id
			continue
		}
		raw, err := codec.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("node: call %s: argument %d: %w", fn.Name, i+1, err)
		}
		if !typedArgs && reflect.TypeOf(a) != fn.Params[i] {
			// Check now that the value fits the parameter, so a wrong
			// type is the caller's error and not a task failure later.
			if err := codec.Unmarshal(raw, reflect.New(fn.Params[i]).Interface()); err != nil {
				return nil, fmt.Errorf("node: call %s: %w", fn.Name, &ArgumentError{Index: i, Want: fn.Params[i], Err: err})
			}
		}
		targs[i].raw = raw
	}
	spec, err := n.encodeSpec(fn, targs)
	if err != nil {
		return nil, fmt.Errorf("node: call %s: %w", fn.Name, err)
	}
	t := &task{id: codec.Sum(spec), fn: fn, args: targs, outputs: make([]cid.Cid, len(fn.Results)), spec: spec}
	if tc, ok := ctx.Value(ctxKey{}).(*taskCtx); ok && tc.n == n {
		t.nested = true
	}
	if on != "" && on != n.id {
		if t.on, err = peer.Decode(on); err != nil {
			return nil, fmt.Errorf("node: call %s: CallOptions.On %q is not a peer ID (`dray peers` lists them): %w", fn.Name, on, err)
		}
	}
	t.retryErrors = fn.RetryErrors || opts.RetryErrors
	if t.needs, err = callNeeds(fn, opts.Needs); err != nil {
		return nil, fmt.Errorf("node: call %s: %w", fn.Name, err)
	}
	if err := n.checkNeeds(ctx, fn, t.needs); err != nil {
		return nil, err
	}
	t.maxRetries = n.cfg.MaxRetries
	if fn.MaxRetries >= 0 {
		t.maxRetries = fn.MaxRetries
	}
	switch {
	case opts.MaxRetries > 0:
		t.maxRetries = opts.MaxRetries
	case opts.MaxRetries < 0:
		t.maxRetries = 0
	}
	for i := range t.outputs {
		if t.outputs[i], err = outputID(t.id, i); err != nil {
			return nil, fmt.Errorf("node: call %s: %w", fn.Name, err)
		}
	}

	n.mu.Lock()
	if !t.nested {
		// Backpressure: a submitter waits while the node tracks MaxPending
		// unfinished tasks (nested calls never wait: their parents hold
		// slots the waiting would deadlock).
		if err := n.waitRoomLocked(ctx, fn.Name); err != nil {
			n.mu.Unlock()
			return nil, err
		}
	}
	refs, err := n.submitLocked(t)
	n.unlockAndAct()
	// The caller's refs must stay reachable until submitLocked has taken
	// the task's holds on them, or their cleanups could release them first.
	runtime.KeepAlive(args)
	return refs, err
}

// encodeSpec encodes the task spec; its CID is the task ID. Calls of
// deterministic functions carry no nonce, so equal calls get equal IDs. The
// spec is the canonical encoding of
//
//	["dray.task/1", func, [[0, value] | [1, ref link], ...], results, nonce | null]
func (n *Node) encodeSpec(fn *Function, args []argument) ([]byte, error) {
	size := 64 + len(fn.Name)
	for _, a := range args {
		size += 48 + len(a.raw)
	}
	b := codec.NewBuilder(size)
	b.Array(6)
	b.Text(wire.SpecVersion)
	b.Text(fn.Name)
	b.Uint(uint64(fn.ID()))
	b.Array(len(args))
	for _, a := range args {
		b.Array(2)
		if a.ref.Defined() {
			b.Uint(1)
			b.Link(a.ref)
		} else {
			b.Uint(0)
			b.Raw(a.raw)
		}
	}
	b.Uint(uint64(len(fn.Results)))
	if fn.Deterministic {
		b.Null()
	} else {
		var nonce [16]byte
		copy(nonce[:], n.salt[:])
		binary.BigEndian.PutUint64(nonce[8:], n.seq.Add(1))
		b.ByteString(nonce[:])
	}
	return b.Bytes(), nil
}

// outputID is the ref of output i of task: the CID of the descriptor
// [task link, i], known before the task runs. The descriptor is DAG-CBOR,
// and its CID says so (multicodec 0x71), which tells output refs from put
// refs (content CIDs, multicodec 0x51) wherever a ref travels.
func outputID(task cid.Cid, i int) (cid.Cid, error) {
	var buf [64]byte
	b := codec.NewBuilderOn(buf[:0])
	b.Array(2)
	b.Link(task)
	b.Uint(uint64(i))
	d := sha256.Sum256(b.Bytes())
	var raw [4 + sha256.Size]byte // CIDv1, dag-cbor, sha2-256, 32 bytes
	raw[0], raw[1], raw[2], raw[3] = 1, cid.DagCBOR, multihash.SHA2_256, sha256.Size
	copy(raw[4:], d[:])
	return cid.Cast(raw[:])
}

// submitLocked records t and hands it to the scheduler. n.mu is held.
func (n *Node) submitLocked(t *task) ([]ObjectRef, error) {
	if n.closed {
		return nil, fmt.Errorf("%w: cannot call %s", ErrClosed, t.fn.Name)
	}
	key := t.id.KeyString()
	if t.fn.Deterministic {
		if _, inFlight := n.tasks[key]; inFlight {
			// An equal call is running: share its outputs, which exist
			// (pending) for as long as it runs.
			return n.outputRefsLocked(t), nil
		}
		if refs, ok := n.memoLocked(t); ok {
			return refs, nil
		}
	}
	var deps []sched.ObjectID
	var inputs []sched.Input
	var failedDep *DependencyError
	for i, a := range t.args {
		if !a.ref.Defined() {
			for _, l := range linksOf(a.raw) {
				if o := n.objects[l]; o != nil {
					o.holds++
					t.held = append(t.held, l)
				}
			}
			continue
		}
		o := n.objects[a.ref]
		if o == nil {
			n.releaseAllLocked(t.held)
			return nil, &UnknownRefError{Op: fmt.Sprintf("call %s: argument %d", t.fn.Name, i+1), Ref: a.ref}
		}
		o.holds++
		t.held = append(t.held, a.ref)
		switch o.state {
		case pending:
			deps = append(deps, sched.ObjectID(a.ref.KeyString()))
		case ready:
			if n.net != nil {
				inputs = append(inputs, n.inputLocked(a.ref, o))
			}
		case failed:
			if failedDep == nil {
				failedDep = &DependencyError{Arg: i, Ref: a.ref, Err: o.err}
			}
		}
	}
	for i, id := range t.outputs {
		if n.objects[id] == nil {
			n.objects[id] = &object{memo: t.fn.Deterministic, fn: t.fn.Name, task: t.id, index: i}
		}
	}
	refs := n.outputRefsLocked(t)
	n.tasks[key] = t
	if failedDep != nil {
		n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: failedDep})
		return refs, nil
	}
	if err := n.sched.Step(sched.Event{Kind: sched.Submit, Task: sched.TaskID(key), Func: t.fn.ID(), Needs: t.needs, Deps: deps, Nested: t.nested,
		On: peerKey(t.on), Inputs: inputs, MaxRetries: retriesEvent(t.maxRetries), RetryErrors: t.retryErrors}); err != nil {
		// Equal task IDs only arise for deterministic calls, which join
		// the running task above; anything else is a bug worth surfacing.
		n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: err})
		return refs, nil
	}
	n.actLocked()
	return refs, nil
}

// inputLocked describes a ready object for locality: its size and holder.
func (n *Node) inputLocked(id cid.Cid, o *object) sched.Input {
	in := sched.Input{Object: sched.ObjectID(id.KeyString()), Size: o.size}
	if o.holder != "" {
		in.Holders = append(in.Holders, peerKey(o.holder))
	}
	if !o.away {
		in.Size, _ = n.store.Size(o.content)
		in.Holders = append(in.Holders, peerKey(n.net.ID()))
	}
	return in
}

// outputRefsLocked returns a new counted ref to each of t's outputs, whose
// records exist.
func (n *Node) outputRefsLocked(t *task) []ObjectRef {
	refs := make([]ObjectRef, len(t.outputs))
	for i, id := range t.outputs {
		n.objects[id].holds++
		refs[i] = ObjectRef{newHandle(n, id)}
	}
	return refs
}

// memoLocked answers a deterministic call whose task is not running when
// every output is still known to the node or remembered in the memo table
// with its bytes still in the store. Otherwise the task runs again; outputs
// still known keep their records (see finishLocked).
func (n *Node) memoLocked(t *task) ([]ObjectRef, bool) {
	if len(t.outputs) == 0 {
		return nil, false
	}
	contents := make([]cid.Cid, len(t.outputs)) // defined: pinned from the memo table
	undo := func() {
		for _, c := range contents {
			if c.Defined() {
				_ = n.store.Unpin(c)
			}
		}
	}
	for i, id := range t.outputs {
		if n.objects[id] != nil {
			continue
		}
		var c cid.Cid
		ok := false
		if n.memo != nil {
			c, ok = n.memo.Get(id)
		}
		if !ok || n.store.Pin(c) != nil { // never made, forgotten, or evicted since
			undo()
			return nil, false
		}
		contents[i] = c
	}
	for i, id := range t.outputs {
		if contents[i].Defined() {
			n.objects[id] = &object{state: ready, content: contents[i], memo: true, fn: t.fn.Name, task: t.id, index: i}
		}
	}
	return n.outputRefsLocked(t), true
}

// forgetTaskLocked drops a finished task's record and wakes submitters
// waiting for room.
func (n *Node) forgetTaskLocked(key string) {
	delete(n.tasks, key)
	if len(n.roomWait) > 0 && len(n.tasks) < n.cfg.maxPending() {
		for _, w := range n.roomWait {
			close(w)
		}
		n.roomWait = n.roomWait[:0]
	}
}

// waitRoomLocked waits, with n.mu released meanwhile, until the node
// tracks fewer than MaxPending unfinished tasks, or fails when ctx ends.
func (n *Node) waitRoomLocked(ctx context.Context, fn string) error {
	limit := n.cfg.maxPending()
	for len(n.tasks) >= limit {
		if n.closed {
			return fmt.Errorf("%w: cannot call %s", ErrClosed, fn)
		}
		w := make(chan struct{})
		n.roomWait = append(n.roomWait, w)
		n.mu.Unlock()
		select {
		case <-w:
			n.mu.Lock()
		case <-ctx.Done():
			n.mu.Lock()
			if i := slices.Index(n.roomWait, w); i >= 0 {
				n.roomWait = slices.Delete(n.roomWait, i, i+1)
			}
			return fmt.Errorf("node: call %s: waited for room: %d tasks pending, the limit (Config.MaxPending); get or drop results, or raise it: %w", fn, len(n.tasks), ctx.Err())
		}
	}
	return nil
}
