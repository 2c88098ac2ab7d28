package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// gated registers "gated": it waits for gate, then makes a nested call of
// add (which a shutting-down node must still take) and returns its result.
func gated(gate <-chan struct{}) func(*node.Registry) {
	return func(reg *node.Registry) {
		reg.MustRegister("gated", func(ctx context.Context) (int64, error) {
			select {
			case <-gate:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			refs, err := node.FromContext(ctx).Call(ctx, "add", int64(40), int64(2))
			if err != nil {
				return 0, err
			}
			v, err := refs[0].Get(ctx)
			if err != nil {
				return 0, err
			}
			return v.(int64), nil
		})
	}
}

// waitRefusing calls add until the node refuses calls (Shutdown began).
func waitRefusing(t *testing.T, ctx context.Context, n *node.Node) error {
	t.Helper()
	var err error
	require.Eventually(t, func() bool {
		var refs []node.ObjectRef
		refs, err = n.Call(ctx, "add", int64(1), int64(1))
		for _, r := range refs {
			r.Release()
		}
		return err != nil
	}, 10*time.Second, time.Millisecond)
	return err
}

// TestShutdownLetsTasksFinish: Shutdown refuses new calls at once but lets
// a running task finish (and make nested calls), whose result can be read
// meanwhile; then the node is closed.
func TestShutdownLetsTasksFinish(t *testing.T) {
	ctx := ctxT(t)
	gate := make(chan struct{})
	n := newNode(t, 2, gated(gate))
	refs, err := n.Call(ctx, "gated")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()

	err = waitRefusing(t, ctx, n)
	require.ErrorIs(t, err, node.ErrClosed)
	assert.Contains(t, err.Error(), "shutting down")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned while a task was running: %v", err)
	default:
	}
	close(gate)
	v, err := refs[0].Get(ctx)
	require.NoError(t, err, "a result of a task running at Shutdown")
	assert.Equal(t, int64(42), v)
	require.NoError(t, <-done)
	_, err = n.Call(ctx, "gated")
	require.ErrorIs(t, err, node.ErrClosed, "Shutdown closes the node")
	assert.Equal(t, 0, n.Stats().Objects, "Close released every object")
	require.NoError(t, n.Shutdown(ctx), "Shutdown after Close does nothing")
}

// TestShutdownDeadline: when ctx ends before the tasks do, Shutdown closes
// the node at once (running tasks see their context cancelled) and says
// what was left, wrapping ctx.Err().
func TestShutdownDeadline(t *testing.T) {
	ctx := ctxT(t)
	stopped := make(chan error, 1)
	n := newNode(t, 1, func(reg *node.Registry) {
		reg.MustRegister("forever", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			stopped <- ctx.Err()
			return 0, ctx.Err()
		})
	})
	r1, err := n.Call(ctx, "forever")
	require.NoError(t, err)
	r2, err := n.Call(ctx, "forever") // queued behind it: one slot
	require.NoError(t, err)
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = n.Shutdown(sctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "want ctx.Err() wrapped, got %v", err)
	assert.Contains(t, err.Error(), "2 task(s) unfinished here")
	require.ErrorIs(t, <-stopped, context.Canceled, "the running task was not cancelled")
	for _, r := range [][]node.ObjectRef{r1, r2} {
		_, err := r[0].Get(ctx)
		require.Error(t, err)
	}
	_, err = n.Call(ctx, "forever")
	require.ErrorIs(t, err, node.ErrClosed)
}

// TestShutdownLeavesTheSwarm: with a network, Shutdown does what Leave
// does before it closes — the results the peer lends reach their owner —
// so the owner reads them after the peer is gone, with no rebuild.
func TestShutdownLeavesTheSwarm(t *testing.T) {
	ctx := ctxT(t)
	a, b, r, want, enc := lentResult(t, ctx, 12)
	require.NoError(t, b.Shutdown(ctx))
	assert.True(t, a.Store().Has(codec.Sum(enc)), "the owner does not have the result after the holder shut down")
	require.NoError(t, hosts[b].Close())
	got, err := node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Zero(t, a.Stats().Net.Rebuilt)
}
