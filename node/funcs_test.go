package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

// where registers fn.where under the signature of f on a node's registry:
// it returns the ID of the node that ran it.
func where(f any, opts ...node.FuncOption) func(*node.Config) {
	return func(cfg *node.Config) {
		if err := cfg.Functions.Register("fn.where", f, opts...); err != nil {
			panic(err)
		}
	}
}

func whereNoArgs(ctx context.Context) (string, error) { return node.FromContext(ctx).ID(), nil }

func whereInt(ctx context.Context, _ int) (string, error) { return node.FromContext(ctx).ID(), nil }

// TestSwarmPlacesByFunction: a stock node submits a function only two of
// its peers offer: every call runs on those two, and the built-ins every
// peer offers still spread over all three.
func TestSwarmPlacesByFunction(t *testing.T) {
	nodes := swarmWith(t, 1, nil, where(whereNoArgs), where(whereNoArgs))
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t)
	ran := map[string]int{}
	var refs []node.ObjectRef
	for range 8 {
		r, err := a.Call(ctx, "fn.where")
		require.NoError(t, err)
		refs = append(refs, r...)
	}
	for _, r := range refs {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		ran[who]++
	}
	assert.Zero(t, ran[a.ID()], "the stock node ran a function it does not have")
	assert.Equal(t, 8, ran[b.ID()]+ran[c.ID()])
	requireAllRun(t, nodes, 12, 200)
}

// TestSwarmOtherSignature: one peer has fn.where under another signature
// (it takes an int), another under another version: the calls never go
// there, and nothing fails; a fourth peer with the same fn.where and one
// function more takes its share.
func TestSwarmOtherSignature(t *testing.T) {
	extra := func(cfg *node.Config) {
		where(whereNoArgs)(cfg)
		require.NoError(t, cfg.Functions.Register("fn.extra", func() int { return 1 }))
	}
	nodes := swarmWith(t, 1, where(whereNoArgs), where(whereInt), where(whereNoArgs, node.Version("2")), extra)
	a, d := nodes[0], nodes[3]
	ctx := ctxT(t)
	var refs []node.ObjectRef
	for range 8 {
		r, err := a.Call(ctx, "fn.where")
		require.NoError(t, err)
		refs = append(refs, r...)
	}
	ran := map[string]int{}
	for _, r := range refs {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		ran[who]++
	}
	assert.Equal(t, 8, ran[a.ID()]+ran[d.ID()], "ran on a peer with another identity of fn.where: %v", ran)
	assert.Positive(t, ran[d.ID()], "the peer with one function more took none")
	f, err := a.Registry().Lookup("fn.where")
	require.NoError(t, err)
	assert.Equal(t, "fn.where() string", f.Signature())
	var sigs []string
	for _, sf := range a.SwarmFunctions() {
		if sf.Name == "fn.where" {
			sigs = append(sigs, sf.Signature())
		}
	}
	assert.Equal(t, []string{"fn.where() string", "fn.where() string v2", "fn.where(int) string"}, sigs)
}

// TestSwarmNoPeerOffers: a call of a function no peer offers waits
// FuncWait for one, then fails naming it and the near names the swarm
// offers; a name nothing is close to fails at once.
func TestSwarmNoPeerOffers(t *testing.T) {
	short := func(cfg *node.Config) { cfg.FuncWait = 500 * time.Millisecond }
	nodes := swarmWith(t, 1, short, where(whereNoArgs))
	a := nodes[0]
	ctx := ctxT(t)

	start := time.Now()
	_, err := a.Call(ctx, "fn.wher")
	took := time.Since(start)
	var npo *node.NoPeerOffersError
	require.ErrorAs(t, err, &npo)
	assert.True(t, errors.Is(err, node.ErrNoPeerOffers))
	assert.Equal(t, "fn.wher", npo.Name)
	assert.Contains(t, npo.Suggestions, "fn.where")
	assert.GreaterOrEqual(t, took, 500*time.Millisecond, "it did not wait for a peer")
	assert.Contains(t, err.Error(), "fn.wher")
	assert.Contains(t, err.Error(), "did you mean fn.where")

	start = time.Now()
	_, err = a.Call(ctx, "zzqx.nothing")
	require.ErrorAs(t, err, &npo)
	assert.Less(t, time.Since(start), 400*time.Millisecond, "a typo waited")
	assert.True(t, strings.Contains(err.Error(), "zzqx.nothing"))
	assert.False(t, slices.Contains(npo.Suggestions, "fn.where"))
}

// TestBeaconWith1000Functions: the beacon names the function table by a
// digest, so it stays small however many functions a peer offers; the
// table itself goes once per digest, on a session.
func TestBeaconWith1000Functions(t *testing.T) {
	many := func(cfg *node.Config) {
		for i := range 1000 {
			require.NoError(t, cfg.Functions.Register(fmt.Sprintf("many.f%04d", i), func(x int) int { return x + i }))
		}
	}
	nodes := swarmWith(t, 1, many, nil)
	a, b := nodes[0], nodes[1]
	size := a.BeaconSize()
	t.Logf("beacon payload with %d functions: %d bytes", len(a.Registry().Functions()), size)
	assert.Less(t, size, 200)
	// b learns the table and calls one of the functions there.
	r, err := b.Call(ctxT(t), "many.f0042", 1)
	require.NoError(t, err)
	got, err := node.As[int64](r[0]).Get(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, int64(43), got)
}

// TestSwarmResources: one peer of three has a gpu. Six calls that need
// it run there one at a time while other calls run elsewhere; a need no
// peer has fails at once, saying what the peers have.
func TestSwarmResources(t *testing.T) {
	var running, most, finished atomic.Int32
	gpu := func(cfg *node.Config) {
		require.NoError(t, cfg.Functions.Register("gpu.work", func(ctx context.Context) (string, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
			finished.Add(1)
			return node.FromContext(ctx).ID(), nil
		}, node.Needs("gpu", 1)))
	}
	withGPU := func(cfg *node.Config) {
		gpu(cfg)
		cfg.Resources = map[string]int{"gpu": 1}
	}
	nodes := swarmWith(t, 2, gpu, withGPU, gpu)
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t)
	var gpuRefs, other []node.ObjectRef
	for range 6 {
		r, err := a.Call(ctx, "gpu.work")
		require.NoError(t, err)
		gpuRefs = append(gpuRefs, r...)
	}
	for range 6 {
		r, err := a.Call(ctx, "whoami")
		require.NoError(t, err)
		other = append(other, r...)
	}
	elsewhere := 0
	for _, r := range other {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		if who != b.ID() {
			elsewhere++
		}
	}
	gpuDone := finished.Load()
	for _, r := range gpuRefs {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, b.ID(), who, "a task that needs the gpu ran on a peer without one")
	}
	assert.Equal(t, int32(1), most.Load(), "tasks that need the one gpu ran at once")
	assert.Positive(t, elsewhere, "no other task ran elsewhere")
	assert.Less(t, gpuDone, int32(6), "the other tasks waited for all the gpu tasks")

	_, err := a.CallWith(ctx, node.CallOptions{Needs: map[string]int{"gpu": 2}}, "gpu.work")
	require.ErrorIs(t, err, node.ErrNoPeerOffers)
	assert.Contains(t, err.Error(), "gpu=2")
	assert.Contains(t, err.Error(), "gpu=1")
}
