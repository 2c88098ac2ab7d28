package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting until %s", what)
		runtime.GC() // refs dropped by the test are released by cleanups
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAll waits until every ref is resolved, without fetching any.
func waitAll(t *testing.T, n *node.Node, refs []node.ObjectRef) {
	t.Helper()
	_, rest, err := n.Wait(ctxT(t), refs, len(refs), 0)
	require.NoError(t, err)
	require.Empty(t, rest)
}

// TestSwarmLargeResults runs tasks with results above the inline limit on
// other peers: the results stay on their executors until a Get fetches
// them, a task on a third peer takes such a result as its argument
// straight from the executor (the owner never fetches it), and dropping
// the owner's ref frees the executor's copy.
func TestSwarmLargeResults(t *testing.T) {
	nodes := swarm(t, 3, 1)
	ctx := ctxT(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const size = 1 << 20
	want, err := builtin.Bytes(size, 42)
	require.NoError(t, err)
	enc, err := codec.Marshal(want)
	require.NoError(t, err)
	content := codec.Sum(enc)

	r, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "bytes", size, uint64(42))
	require.NoError(t, err)
	waitAll(t, a, r)
	assert.False(t, a.Store().Has(content), "the owner holds the result before anyone asked for it")
	assert.True(t, b.Store().Has(content), "the executor keeps the result")

	// A task on C takes it as its argument, fetched from B.
	h, err := a.CallWith(ctx, node.CallOptions{On: c.ID()}, "sha256", r[0])
	require.NoError(t, err)
	sum, err := node.As[string](h[0]).Get(ctx)
	require.NoError(t, err)
	d := sha256.Sum256(want)
	assert.Equal(t, hex.EncodeToString(d[:]), sum)
	assert.False(t, a.Store().Has(content), "the owner fetched an argument it only passed on")
	assert.EqualValues(t, 1, c.Stats().Net.Fetches)
	assert.EqualValues(t, 0, a.Stats().Net.Fetches)

	// A Get on the owner fetches it, verified, once.
	got, err := node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.True(t, a.Store().Has(content))
	assert.EqualValues(t, 1, a.Stats().Net.Fetches)
	_, err = node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, a.Stats().Net.Fetches, "a second Get fetched again")

	// Dropping the owner's refs releases the executor's copy.
	runtime.KeepAlive(r)
	r, h = nil, nil
	waitFor(t, "the executor released the lent result", func() bool { return !b.Store().Has(content) })
}

// TestSwarmLocality places tasks whose inputs are large results held by
// one peer: of the peers with room, the holder wins every time (by chance
// 1 in 32), and nobody fetches.
func TestSwarmLocality(t *testing.T) {
	nodes := swarm(t, 3, 1)
	ctx := ctxT(t)
	a, b := nodes[0], nodes[1]
	const k = 5
	var inputs []node.ObjectRef
	for i := range k {
		r, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "bytes", 1<<20, uint64(i))
		require.NoError(t, err)
		inputs = append(inputs, r...)
	}
	waitAll(t, a, inputs)
	in := b.Stats().Net.TasksIn
	// Keep A's own slot busy so the tasks must go to a peer.
	busy, err := a.CallWith(ctx, node.CallOptions{On: a.ID()}, "sleep", 1000)
	require.NoError(t, err)
	for _, r := range inputs {
		h, err := a.Call(ctx, "sha256", r)
		require.NoError(t, err)
		waitAll(t, a, h)
	}
	waitAll(t, a, busy)
	for _, n := range nodes {
		assert.EqualValues(t, 0, n.Stats().Net.Fetches, "peer %s fetched an input", n.ID())
	}
	assert.EqualValues(t, k, b.Stats().Net.TasksIn-in, "the holder did not run every task")
}

// TestSwarmMessagesPerTask counts the frames a remote call costs: the
// hand-off and the completion (the acknowledgement of a short task rides
// on its completion).
func TestSwarmMessagesPerTask(t *testing.T) {
	nodes := swarm(t, 2, 1)
	ctx := ctxT(t)
	a, b := nodes[0], nodes[1]
	before := a.Stats().Net.MsgsSent + b.Stats().Net.MsgsSent
	const calls = 200
	for i := range calls {
		r, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "add", int64(i), int64(1))
		require.NoError(t, err)
		v, err := node.As[int64](r[0]).Get(ctx)
		require.NoError(t, err)
		require.EqualValues(t, i+1, v)
	}
	sent := a.Stats().Net.MsgsSent + b.Stats().Net.MsgsSent - before
	// Beacons go out every 250 ms at most: a few of those may land in the
	// window too.
	perTask := float64(sent) / calls
	t.Logf("%d messages for %d remote calls: %.2f a task", sent, calls, perTask)
	assert.LessOrEqual(t, perTask, 2.2)
	assert.GreaterOrEqual(t, perTask, 2.0)
}

// TestSwarmRebuildsLostResult: a large result stays on the peer that made
// it; that peer dies before anyone fetched it. A Get on the owner finds no
// holder, runs the task again from its lineage, and returns the right
// value.
func TestSwarmRebuildsLostResult(t *testing.T) {
	nodes := swarm(t, 2, 1)
	ctx := ctxT(t)
	a, b := nodes[0], nodes[1]
	want, err := builtin.Bytes(1<<20, 5)
	require.NoError(t, err)
	r, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "bytes", 1<<20, uint64(5))
	require.NoError(t, err)
	waitAll(t, a, r)
	require.NoError(t, b.Close())
	require.NoError(t, hosts[b].Close())

	got, err := node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.EqualValues(t, 1, a.Stats().Net.Rebuilt)
}

// TestSwarmMaxRetries: a call allowed one retry loses its executor twice
// (each peer that takes it is shut down while it runs): the first loss
// places it again on the other peer, the second fails it with an
// ExecutorLostError that says how to allow more.
func TestSwarmMaxRetries(t *testing.T) {
	nodes, peers := memSwarm(t, 3, 1)
	ctx := ctxT(t)
	a := nodes[0]
	busy, err := a.CallWith(ctx, node.CallOptions{On: a.ID()}, "sleep", 8000)
	require.NoError(t, err)
	_ = busy
	r, err := a.CallWith(ctx, node.CallOptions{MaxRetries: 1}, "sleep", 5000)
	require.NoError(t, err)
	alive := []int{1, 2}
	for loss := range 2 {
		took := -1
		waitFor(t, "a peer took the task", func() bool {
			for _, i := range alive {
				if nodes[i].Stats().Net.TasksIn > 0 {
					took = i
					return true
				}
			}
			return false
		})
		require.NoError(t, nodes[took].Close(), "loss %d", loss+1)
		require.NoError(t, peers[took].Close())
		alive = slices.DeleteFunc(alive, func(i int) bool { return i == took })
	}
	_, err = r[0].Get(ctx)
	var lost *node.ExecutorLostError
	require.ErrorAs(t, err, &lost)
	assert.Equal(t, 2, lost.Runs)
	assert.Equal(t, 1, lost.MaxRetries)
	assert.Contains(t, err.Error(), "CallOptions.MaxRetries")
}

// TestSwarmLeave: a peer that leaves gracefully first refuses new work and
// hands the results it lends to their owners, so its departure costs no
// rebuild: the owner has the bytes before it goes.
func TestSwarmLeave(t *testing.T) {
	ctx := ctxT(t)
	a, b, r, want, enc := lentResult(t, ctx, 11)
	require.NoError(t, b.Leave(ctx))
	assert.True(t, a.Store().Has(codec.Sum(enc)), "the owner does not have the result after the holder left")
	// B takes no more work: a task pinned to it is refused and fails.
	p, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "whoami")
	require.NoError(t, err)
	_, err = p[0].Get(ctx)
	require.Error(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, hosts[b].Close())

	got, err := node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Zero(t, a.Stats().Net.Rebuilt)
}

// TestSwarmReleaseEndsLoan: the owner's Release of a result another peer
// lends it ends the loan at once, without a GC: the holder's bytes go.
// A peer gone ends its loans too: the bytes stay as an evictable cache.
func TestSwarmReleaseEndsLoan(t *testing.T) {
	ctx := ctxT(t)
	for _, how := range []string{"release", "owner gone"} {
		t.Run(how, func(t *testing.T) {
			a, b, r, _, enc := lentResult(t, ctx, 13)
			content := codec.Sum(enc)
			require.Equal(t, 1, b.Stats().Lent)
			require.True(t, b.Store().Has(content))
			pinned := b.Stats().Store.Pinned
			if how == "release" {
				r[0].Release()
			} else {
				require.NoError(t, a.Close())
				require.NoError(t, hosts[a].Close())
			}
			require.Eventually(t, func() bool { return b.Stats().Lent == 0 }, 10*time.Second, 5*time.Millisecond, "the loan did not end")
			assert.Equal(t, pinned-1, b.Stats().Store.Pinned, "the lent bytes are still pinned")
			assert.Equal(t, how == "owner gone", b.Store().Has(content), "a released loan's bytes leave the store; an orphaned one's stay as a cache")
		})
	}
}

// lentResult starts two peers and has b make a 1 MiB result for a (seeded
// with seed), which b keeps and lends to a. It returns both peers, the
// result's ref, its value and its encoding.
func lentResult(t *testing.T, ctx context.Context, seed uint64) (a, b *node.Node, r []node.ObjectRef, want, enc []byte) {
	t.Helper()
	nodes := swarm(t, 2, 1)
	a, b = nodes[0], nodes[1]
	want, err := builtin.Bytes(1<<20, seed)
	require.NoError(t, err)
	enc, err = codec.Marshal(want)
	require.NoError(t, err)
	r, err = a.CallWith(ctx, node.CallOptions{On: b.ID()}, "bytes", 1<<20, seed)
	require.NoError(t, err)
	waitAll(t, a, r)
	require.False(t, a.Store().Has(codec.Sum(enc)), "the result should be lent, not sent")
	return a, b, r, want, enc
}

// TestSwarmRebuildsLostArgument: a large result stays on the peer that
// made it, which dies; a task on a third peer takes that result as its
// argument. The executor can fetch it from nobody and hands the task back
// naming the argument; the owner rebuilds the argument from its lineage,
// and the task then runs and returns the right value — on the same peer
// when it was pinned there.
func TestSwarmRebuildsLostArgument(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		t.Run(fmt.Sprintf("pinned=%t", pinned), func(t *testing.T) {
			nodes := swarm(t, 3, 1)
			ctx := ctxT(t)
			a, b, c := nodes[0], nodes[1], nodes[2]
			data, err := builtin.Bytes(1<<20, 9)
			require.NoError(t, err)
			sum := sha256.Sum256(data)
			r, err := a.CallWith(ctx, node.CallOptions{On: b.ID()}, "bytes", 1<<20, uint64(9))
			require.NoError(t, err)
			waitAll(t, a, r)
			require.NoError(t, b.Close())
			require.NoError(t, hosts[b].Close())
			waitFor(t, "A forgot B", func() bool { return a.Stats().Sched.Peers == 1 })

			// A's only slot is busy, so the hash of the lost value goes to C.
			busy, err := a.CallWith(ctx, node.CallOptions{On: a.ID()}, "sleep", 1500)
			require.NoError(t, err)
			var opts node.CallOptions
			if pinned {
				opts.On = c.ID()
			}
			h, err := a.CallWith(ctx, opts, "sha256", r[0])
			require.NoError(t, err)
			got, err := node.As[string](h[0]).Get(ctx)
			require.NoError(t, err)
			assert.Equal(t, hex.EncodeToString(sum[:]), got)
			assert.EqualValues(t, 1, a.Stats().Net.Rebuilt, "the argument was not rebuilt")
			assert.Positive(t, c.Stats().Net.TasksIn, "C never got the task: the test proves nothing")
			_, err = busy[0].Get(ctx)
			require.NoError(t, err)
		})
	}
}

// TestSwarmLeaveHandsBackQueued: a leaving peer finishes the task it runs
// and hands the one still queued back to its owner, which places it again
// (here on itself, once its own slot is free): Leave takes one task's
// time, not two, and both results arrive.
func TestSwarmLeaveHandsBackQueued(t *testing.T) {
	nodes := swarm(t, 2, 1)
	ctx := ctxT(t)
	a, b := nodes[0], nodes[1]
	const ms = 1500
	busy, err := a.CallWith(ctx, node.CallOptions{On: a.ID()}, "sleep", 2*ms)
	require.NoError(t, err)
	var refs []node.ObjectRef
	for range 2 {
		r, err := a.Call(ctx, "sleep", ms)
		require.NoError(t, err)
		refs = append(refs, r...)
	}
	waitFor(t, "B runs one task and queues the other", func() bool {
		st := b.Stats().Sched
		return st.Running == 1 && st.Queued == 1
	})
	start := time.Now()
	require.NoError(t, b.Leave(ctx))
	left := time.Since(start)
	assert.Less(t, left, 2*ms*time.Millisecond, "Leave ran the queued task too")
	ran := map[string]int{}
	for _, r := range refs {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		ran[who]++
	}
	t.Logf("leave took %v; tasks per peer: %v", left.Round(time.Millisecond), ran)
	assert.Equal(t, 1, ran[b.ID()], "B should finish the task it ran")
	assert.Equal(t, 1, ran[a.ID()], "the handed-back task should run on A")
	_, err = busy[0].Get(ctx)
	require.NoError(t, err)
}
