package node_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

// requireReleased checks err is a *ReleasedError naming c and op.
func requireReleased(t *testing.T, err error, r node.ObjectRef, op string) {
	t.Helper()
	require.ErrorIs(t, err, node.ErrReleased)
	var re *node.ReleasedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, r.CID(), re.Ref)
	assert.Contains(t, err.Error(), r.CID().String())
	assert.Contains(t, err.Error(), "was released")
	assert.Contains(t, err.Error(), op)
}

// TestReleaseFreesAtOnce: Release drops the node's record and the bytes
// at once, without a GC, and every later use of the ref fails with a
// *ReleasedError naming its CID.
func TestReleaseFreesAtOnce(t *testing.T) {
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		make func(t *testing.T, n *node.Node) node.ObjectRef
	}{
		{"put value", func(t *testing.T, n *node.Node) node.ObjectRef {
			r, err := n.Put(ctx, "a value to release")
			require.NoError(t, err)
			return r
		}},
		{"task output", func(t *testing.T, n *node.Node) node.ObjectRef {
			refs, err := n.Call(ctx, "sleep", 0) // not deterministic: no memo
			require.NoError(t, err)
			_, err = refs[0].Get(ctx)
			require.NoError(t, err)
			return refs[0]
		}},
		{"typed ref", func(t *testing.T, n *node.Node) node.ObjectRef {
			r, err := node.Put(ctx, n, 42)
			require.NoError(t, err)
			t.Cleanup(func() {
				r.Release() // promoted from ObjectRef; released already
				_, err := r.Get(ctx)
				requireReleased(t, err, r.ObjectRef, "get")
			})
			return r.ObjectRef
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 2, nil)
			r := tc.make(t, n)
			before := n.Stats()
			require.Equal(t, 1, before.Objects)
			r.Release()
			assert.True(t, r.Released())
			after := n.Stats()
			assert.Equal(t, 0, after.Objects, "the node still tracks the object")
			assert.Equal(t, 0, after.Store.Pinned, "the object's bytes are still pinned")

			_, err := r.Get(ctx)
			requireReleased(t, err, r, "get")
			_, err = n.Call(ctx, "len", r)
			requireReleased(t, err, r, "call len: argument 1")
			_, _, err = n.Wait(ctx, []node.ObjectRef{r}, 1, 0)
			requireReleased(t, err, r, "wait: ref 1 of 1")
			assert.Equal(t, r.CID().String(), r.String(), "a released ref still names its CID")
		})
	}
}

// TestReleaseOnce: copies share one hold, so releasing several copies, or
// one copy several times, or from many goroutines at once, gives back
// exactly one hold: another ref to the same object keeps it.
func TestReleaseOnce(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, 2, nil)
	a, err := n.Put(ctx, "shared")
	require.NoError(t, err)
	b, err := n.Ref(a.CID()) // a second, independent hold
	require.NoError(t, err)
	copies := []node.ObjectRef{a, a, a, a, a, a, a, a}
	var wg sync.WaitGroup
	for _, c := range copies {
		wg.Go(func() { c.Release(); c.Release() })
	}
	wg.Wait()
	a.Release()
	for _, c := range copies {
		assert.True(t, c.Released(), "every copy shares the release")
	}
	v, err := b.Get(ctx)
	require.NoError(t, err, "one release too many dropped the object b holds")
	assert.Equal(t, "shared", v)
	assert.Equal(t, 1, n.Stats().Objects)
	b.Release()
	assert.Equal(t, 0, n.Stats().Objects)

	var zero node.ObjectRef
	zero.Release() // does nothing
	assert.False(t, zero.Released())
}

// TestReleaseStopsTheCleanup: once a ref is released, the garbage
// collector's cleanup of its handle gives nothing back again: another ref
// to the object keeps it after the released one is collected.
func TestReleaseStopsTheCleanup(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, 2, nil)
	var b node.ObjectRef
	func() {
		a, err := n.Put(ctx, "kept by b")
		require.NoError(t, err)
		b, err = n.Ref(a.CID())
		require.NoError(t, err)
		a.Release()
		// A sentinel dropped with a: once its cleanup has run, a's
		// would have too, had it not been stopped.
		_, err = n.Put(ctx, "sentinel")
		require.NoError(t, err)
	}()
	require.Equal(t, 2, n.Stats().Objects)
	waitForObjects(t, n, 1) // the sentinel's cleanup ran
	for range 3 {
		runtime.GC()
	}
	assert.Equal(t, 1, n.Stats().Objects, "the released ref's cleanup released b's hold")
	v, err := b.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "kept by b", v)
}

// TestReleasePending: releasing the only ref of a running task's output
// lets the node forget it as soon as the task ends; a task taking a ref
// as argument keeps its own hold, so releasing the caller's ref at once
// is safe.
func TestReleasePending(t *testing.T) {
	ctx := ctxT(t)
	gate := make(chan struct{})
	n := newNode(t, 2, func(reg *node.Registry) {
		reg.MustRegister("gate", func(ctx context.Context) (int, error) {
			select {
			case <-gate:
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		})
	})
	out, err := n.Call(ctx, "gate")
	require.NoError(t, err)
	dep, err := n.Call(ctx, "add", out[0], int64(2))
	require.NoError(t, err)
	out[0].Release() // the add task still holds it
	close(gate)
	v, err := dep[0].Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), v)
	// The add task gave its hold on out back when it finished, before
	// its Get returned.
	assert.Equal(t, 1, n.Stats().Objects, "out outlived the task that held it")
	dep[0].Release()
	st := n.Stats()
	assert.Equal(t, 0, st.Objects)
	assert.Equal(t, 0, st.Tasks)
	assert.Equal(t, 0, st.Store.Pinned)
	_, err = out[0].Get(ctx)
	require.True(t, errors.Is(err, node.ErrReleased))
}
