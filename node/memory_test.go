package node_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

// heapBound is the most live heap a node may hold, after a garbage
// collection, while a million tasks pass through it in batches: what the
// test process itself needs (a few MiB) plus one batch of refs and results.
const heapBound = 64 << 20

// TestMillionTasksBoundedHeap submits and gets 1,000,000 trivial tasks in
// batches of 10,000 and checks that the live heap never passes heapBound
// and that the node forgets every task and object once the refs are gone.
func TestMillionTasksBoundedHeap(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 100_000
	}
	var inc node.Func1[int, int]
	n := newNode(t, runtime.NumCPU(), func(r *node.Registry) {
		var err error
		inc, err = node.Register1(r, "inc", func(_ context.Context, x int) (int, error) { return x + 1, nil })
		require.NoError(t, err)
	})
	ctx := ctxT(t)
	const batch = 10_000
	var peak uint64
	refs := make([]node.Ref[int], batch)
	for done := 0; done < total; done += batch {
		for i := range refs {
			r, err := inc.Call(ctx, n, node.Val(done+i))
			require.NoError(t, err)
			refs[i] = r
		}
		for i, r := range refs {
			v, err := r.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, done+i+1, v)
		}
		clear(refs)
		if (done/batch)%10 == 9 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			require.Less(t, ms.HeapAlloc, uint64(heapBound), "live heap after %d tasks", done+batch)
		}
	}
	waitForObjects(t, n, 0)
	t.Logf("%d tasks, peak live heap after GC %.1f MiB (bound %d MiB)", total, float64(peak)/(1<<20), heapBound>>20)
}
