package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
)

// Put stores v and returns its ref, whose CID is the CID of v's encoding.
func (n *Node) Put(ctx context.Context, v any) (ObjectRef, error) {
	data, err := codec.Marshal(v)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("node: put: %w", err)
	}
	r, err := n.PutEncoded(ctx, data)
	runtime.KeepAlive(v) // refs inside v stay alive until the put holds them
	return r, err
}

// Put stores v on n and returns its typed ref.
func Put[T any](ctx context.Context, n *Node, v T) (Ref[T], error) {
	r, err := n.Put(ctx, v)
	return Ref[T]{r}, err
}

// PutEncoded stores bytes that are already a canonical codec encoding and
// returns their ref. The node takes ownership of data.
func (n *Node) PutEncoded(ctx context.Context, data []byte) (ObjectRef, error) {
	c, err := n.store.PutPinned(ctx, data)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("node: put: %w", err)
	}
	links := linksOf(data)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_, _ = n.store.Release(c)
		return ObjectRef{}, fmt.Errorf("%w: cannot put", ErrClosed)
	}
	if o, ok := n.objects[c]; ok && o.state == ready {
		o.holds++
		_, _ = n.store.Release(c) // the existing record already pins it
		return ObjectRef{newHandle(n, c)}, nil
	}
	o := &object{state: ready, content: c, holds: 1}
	n.holdLinksLocked(o, links)
	n.objects[c] = o
	r := ObjectRef{newHandle(n, c)}
	if n.net != nil {
		n.mu.Unlock()
		n.announce(c)
		n.mu.Lock() // for the deferred unlock
	}
	return r, nil
}

// Ref returns a new counted ref to the object with ID c: one this node
// tracks (made by a call or a put and still held), or a value whose bytes
// are in this node's store under the content CID c (spilled by an earlier
// run, say), which is then adopted like a put value.
func (n *Node) Ref(c cid.Cid) (ObjectRef, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ObjectRef{}, fmt.Errorf("%w: cannot resolve ref %s", ErrClosed, c)
	}
	o := n.objects[c]
	if o == nil {
		if n.store.Pin(c) != nil {
			return ObjectRef{}, &UnknownRefError{Op: "ref", Ref: c}
		}
		o = &object{state: ready, content: c}
		n.objects[c] = o
	}
	o.holds++
	return ObjectRef{newHandle(n, c)}, nil
}

// getBytes waits until id is resolved and returns its encoded value.
func (n *Node) getBytes(ctx context.Context, id cid.Cid, opts []GetOption) ([]byte, error) {
	content, release, err := n.resolve(ctx, id, opts, false)
	if err != nil {
		return nil, err
	}
	defer release()
	data, err := n.store.Get(ctx, content)
	if err != nil {
		return nil, fmt.Errorf("node: get %s: %w", id, err)
	}
	return data, nil
}

// resolve waits until id is resolved and returns the CID of its bytes, or
// the task's error. The object cannot be dropped before release is called
// when hold is set, or when resolve had to wait (the caller's ref may be
// gone by then); otherwise the caller's ref keeps it. A WithTimeout option
// bounds the whole resolve, however often the object is rebuilt meanwhile.
func (n *Node) resolve(ctx context.Context, id cid.Cid, opts []GetOption, hold bool) (content cid.Cid, release func(), err error) {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	for {
		content, release, err = n.resolveOnce(ctx, id, hold)
		if !errors.Is(err, errRebuilding) {
			return content, release, err
		}
		// Its holder is gone and its task runs again: wait for it.
	}
}

func (n *Node) resolveOnce(ctx context.Context, id cid.Cid, hold bool) (content cid.Cid, release func(), err error) {
	release = func() {}
	n.mu.Lock()
	obj := n.objects[id]
	if obj == nil {
		n.mu.Unlock()
		return cid.Undef, release, &UnknownRefError{Op: "get", Ref: id}
	}
	if obj.state == pending {
		obj.holds++ // keep the record while we wait
		w := make(chan struct{}, 1)
		obj.waiters = append(obj.waiters, w)
		tc := n.blockLocked(ctx)
		n.unlockAndAct()

		var werr error
		select {
		case <-w:
		case <-ctx.Done():
			werr = ctx.Err()
		case <-n.ctx.Done():
			werr = ErrClosed
		}
		n.mu.Lock()
		n.unblockLocked(tc)
		if werr != nil {
			obj.waiters = removeWaiter(obj.waiters, w)
			obj.holds--
			what := obj.describe()
			n.maybeDropLocked(id, obj)
			n.mu.Unlock()
			return cid.Undef, release, fmt.Errorf("node: get %s (%s): %w", id, what, werr)
		}
		hold = false // we hold it already
		release = func() { n.release(id) }
	}
	if hold {
		obj.holds++
		release = func() { n.release(id) }
	}
	if n.closed {
		n.mu.Unlock()
		release()
		return cid.Undef, func() {}, fmt.Errorf("%w: cannot get %s", ErrClosed, id)
	}
	state, content, oerr, away := obj.state, obj.content, obj.err, obj.away
	n.mu.Unlock()
	if state == failed {
		release()
		return cid.Undef, func() {}, oerr
	}
	if away {
		if err := n.localize(ctx, id); err != nil {
			release()
			return cid.Undef, func() {}, err
		}
		n.mu.Lock()
		content = obj.content // the same unless it was rebuilt meanwhile
		n.mu.Unlock()
	}
	return content, release, nil
}
