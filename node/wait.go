package node

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Wait returns once at least k of refs are resolved (their value exists or
// their task failed) or the timeout passes, with the resolved refs and the
// others, each in input order (Ray's wait). A timeout of 0 means no
// timeout; k is clamped to [0, len(refs)]. It returns an error only when
// ctx ends, the node closes, or a ref is unknown. Inside a task, waiting
// gives the task's slot back.
func (n *Node) Wait(ctx context.Context, refs []ObjectRef, k int, timeout time.Duration) (ready, notReady []ObjectRef, err error) {
	k = min(max(k, 0), len(refs))
	for i, r := range refs {
		if r.IsZero() {
			return nil, nil, fmt.Errorf("node: wait: ref %d of %d is a zero ref", i+1, len(refs))
		}
		if r.Released() {
			return nil, nil, &ReleasedError{Op: fmt.Sprintf("wait: ref %d of %d", i+1, len(refs)), Ref: r.CID()}
		}
	}
	defer runtime.KeepAlive(refs)
	var expired <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		expired = tm.C
	}
	wake := make(chan struct{}, 1)
	var (
		t       *task
		watched []*object
	)
	defer func() {
		n.mu.Lock()
		for _, o := range watched {
			o.waiters = removeWaiter(o.waiters, wake)
		}
		n.unblockLocked(t)
		n.mu.Unlock()
	}()
	for {
		n.mu.Lock()
		ready, notReady = ready[:0], notReady[:0]
		for _, r := range refs {
			o := n.objects[r.CID()]
			if o == nil {
				n.mu.Unlock()
				return nil, nil, &UnknownRefError{Op: "wait", Ref: r.CID()}
			}
			if o.state != pending {
				ready = append(ready, r)
			} else {
				notReady = append(notReady, r)
			}
		}
		if len(ready) >= k {
			n.mu.Unlock()
			return ready, notReady, nil
		}
		if n.closed {
			n.mu.Unlock()
			return ready, notReady, fmt.Errorf("%w: wait interrupted", ErrClosed)
		}
		for _, o := range watched {
			o.waiters = removeWaiter(o.waiters, wake)
		}
		watched = watched[:0]
		for _, r := range notReady {
			o := n.objects[r.CID()]
			o.waiters = append(o.waiters, wake)
			watched = append(watched, o)
		}
		if t == nil {
			t = n.blockLocked(ctx)
		}
		n.unlockAndAct()
		select {
		case <-wake:
		case <-expired:
			return n.split(refs)
		case <-ctx.Done():
			return ready, notReady, fmt.Errorf("node: wait: %w", ctx.Err())
		case <-n.ctx.Done():
			return ready, notReady, fmt.Errorf("%w: wait interrupted", ErrClosed)
		}
	}
}

// split sorts refs into resolved and not, in input order.
func (n *Node) split(refs []ObjectRef) (ready, notReady []ObjectRef, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range refs {
		if o := n.objects[r.CID()]; o != nil && o.state != pending {
			ready = append(ready, r)
		} else {
			notReady = append(notReady, r)
		}
	}
	return ready, notReady, nil
}

// removeWaiter drops w from ws (it is gone already if o was resolved).
func removeWaiter(ws []chan struct{}, w chan struct{}) []chan struct{} {
	for i, x := range ws {
		if x == w {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}
