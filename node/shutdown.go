package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dray-project/dray/sched"
)

// drainEvery is how often Shutdown looks whether the node's tasks are done.
const drainEvery = 10 * time.Millisecond

// Shutdown stops the node gracefully: it refuses new calls (they fail with
// ErrClosed; calls made by running tasks are still taken), lets every task
// submitted so far finish, and, with a network, leaves the swarm as Leave
// does (tasks other peers handed it that have not started go back to their
// owners, those running finish and report, results it lends go to their
// owners). Then it closes the node as Close does. Refs stay usable until
// then, so results can be read while Shutdown waits.
//
// When ctx ends first, Shutdown falls back to Close at once (running tasks
// see their context cancelled) and returns an error that wraps ctx.Err()
// and says what was still running. Like Close, it must not be called from
// inside a task; after Close it does nothing.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil
	}
	n.draining.Store(true)
	var err error
	if n.net != nil {
		if lerr := n.Leave(ctx); lerr != nil {
			err = fmt.Errorf("node: shutdown: closed before leaving the swarm: %w", lerr)
		}
	}
	if err == nil {
		err = n.drain(ctx)
	}
	if cerr := n.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("node: shutdown: %w", cerr))
	}
	return err
}

// drain waits until the node has no unfinished task, or ctx ends (an error
// saying what is left), or the node is closed.
func (n *Node) drain(ctx context.Context) error {
	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	for {
		here, handed, fromPeers := n.unfinished()
		if here+handed+fromPeers == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			here, handed, fromPeers = n.unfinished()
			return fmt.Errorf("node: shutdown: closed with %d task(s) unfinished here, %d handed to peers and %d from peers: %w",
				here, handed, fromPeers, ctx.Err())
		case <-n.ctx.Done():
			return nil // closed meanwhile
		case <-tick.C:
		}
	}
}

// unfinished counts the tasks the node tracks: its own queued or running
// here, its own handed to peers, and those peers handed it.
func (n *Node) unfinished() (here, handed, fromPeers int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, t := range n.tasks {
		switch {
		case t.owner != "":
			fromPeers++
		case n.sched.HandedTo(sched.TaskID(t.id.KeyString())) != "":
			handed++
		default:
			here++
		}
	}
	return here, handed, fromPeers
}

// admitCall refuses a call once Shutdown has begun, unless a task of this
// node makes it (its parent must be able to finish).
func (n *Node) admitCall(ctx context.Context, name string) error {
	if !n.draining.Load() {
		return nil
	}
	if tc, ok := ctx.Value(ctxKey{}).(*taskCtx); ok && tc.n == n {
		return nil
	}
	return fmt.Errorf("%w: shutting down, cannot call %s", ErrClosed, name)
}
