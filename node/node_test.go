package node_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
)

// newNode starts a node with the built-ins plus whatever setup registers.
func newNode(t testing.TB, slots int, setup func(*node.Registry)) *node.Node {
	t.Helper()
	reg := node.NewRegistry()
	require.NoError(t, builtin.Register(reg))
	if setup != nil {
		setup(reg)
	}
	cfg := node.DefaultConfig()
	cfg.Slots = slots
	cfg.Functions = reg
	cfg.Store.Dir = t.TempDir()
	cfg.Store.MemoryBudget = 512 << 20
	n, err := node.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCallReturnsAtOnceAndNeverRunsInCaller(t *testing.T) {
	release := make(chan struct{})
	var ranOn atomic.Value
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("block", func(ctx context.Context) (int, error) {
			ranOn.Store(node.FromContext(ctx) != nil)
			<-release
			return 7, nil
		})
	})
	ctx := ctxT(t)
	refs, err := n.Call(ctx, "block") // would hang if it ran in the caller
	require.NoError(t, err)
	require.Len(t, refs, 1)
	ready, notReady, err := n.Wait(ctx, refs, 1, 20*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, ready)
	assert.Len(t, notReady, 1)
	close(release)
	v, err := node.As[int](refs[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	assert.Equal(t, true, ranOn.Load(), "the function runs in a task context")
}

func TestTypedFunctionsAndDependencies(t *testing.T) {
	var mul node.Func2[int, int, int]
	n := newNode(t, 2, func(r *node.Registry) {
		var err error
		mul, err = node.Register2(r, "mul", func(_ context.Context, a, b int) (int, error) { return a * b, nil })
		require.NoError(t, err)
	})
	ctx := ctxT(t)
	a, err := mul.Call(ctx, n, node.Val(3), node.Val(4))
	require.NoError(t, err)
	// A ref as a top-level argument is a dependency: the task gets 12.
	b, err := mul.Call(ctx, n, a, node.Val(10))
	require.NoError(t, err)
	c, err := mul.Call(ctx, n, b, b)
	require.NoError(t, err)
	v, err := c.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 14400, v)
}

func TestNestedRefArrivesAsRef(t *testing.T) {
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("sumrefs", func(ctx context.Context, refs []node.Ref[int64]) (int64, error) {
			var s int64
			for _, r := range refs {
				v, err := r.Get(ctx) // borrowed refs resolve through the task's node
				if err != nil {
					return 0, err
				}
				s += v
			}
			return s, nil
		})
	})
	ctx := ctxT(t)
	var refs []node.Ref[int64]
	for i := range 5 {
		r, err := n.Call(ctx, "add", int64(i), int64(100))
		require.NoError(t, err)
		refs = append(refs, node.As[int64](r[0]))
	}
	out, err := n.Call(ctx, "sumrefs", refs)
	require.NoError(t, err)
	v, err := node.As[int64](out[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(510), v)
}

func TestNestedTasksDoNotDeadlockOneSlot(t *testing.T) {
	for _, slots := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("slots=", slots), func(t *testing.T) {
			n := newNode(t, slots, nil)
			ctx := ctxT(t)
			refs, err := n.Call(ctx, "fib", 18)
			require.NoError(t, err)
			v, err := node.As[int64](refs[0]).Get(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(2584), v)
		})
	}
}

func TestMultipleReturns(t *testing.T) {
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("divmod", func(a, b int) (int, int, error) {
			if b == 0 {
				return 0, 0, errors.New("division by zero")
			}
			return a / b, a % b, nil
		})
	})
	ctx := ctxT(t)
	refs, err := n.Call(ctx, "divmod", 17, 5)
	require.NoError(t, err)
	require.Len(t, refs, 2)
	q, err := node.As[int](refs[0]).Get(ctx)
	require.NoError(t, err)
	r, err := node.As[int](refs[1]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, [2]int{3, 2}, [2]int{q, r})
	assert.NotEqual(t, refs[0].CID(), refs[1].CID())
}

func TestFailuresAreTypedAndThePeerKeepsRunning(t *testing.T) {
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("fail", func(msg string) (int, error) { return 0, errors.New(msg) })
		r.MustRegister("boom", func() (int, error) {
			var m map[string]int
			m["x"] = 1 // nil map write: a runtime panic
			return 0, nil
		})
	})
	ctx := ctxT(t)

	refs, err := n.Call(ctx, "fail", "disk on fire")
	require.NoError(t, err)
	_, err = refs[0].Get(ctx)
	var te *node.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "fail", te.Func)
	assert.Equal(t, refs[0].CID().String() != "", true)
	assert.ErrorContains(t, err, "task fail (")
	assert.ErrorContains(t, err, "disk on fire")
	assert.Empty(t, te.Stack)

	refs, err = n.Call(ctx, "boom")
	require.NoError(t, err)
	_, err = refs[0].Get(ctx)
	require.ErrorAs(t, err, &te)
	var pe *node.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, te.Stack, "goroutine", "panic stack included")
	assert.ErrorContains(t, err, "assignment to entry in nil map")

	// A task whose argument failed fails too, naming the argument.
	dep, err := n.Call(ctx, "fail", "upstream")
	require.NoError(t, err)
	down, err := n.Call(ctx, "add", dep[0], int64(1))
	require.NoError(t, err)
	_, err = down[0].Get(ctx)
	var de *node.DependencyError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, 0, de.Arg)
	assert.ErrorContains(t, err, "upstream")
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "add", te.Func)

	// The peer still runs tasks.
	ok, err := n.Call(ctx, "add", int64(2), int64(3))
	require.NoError(t, err)
	v, err := node.As[int64](ok[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), v)
}

func TestCallErrors(t *testing.T) {
	n := newNode(t, 1, nil)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		fn   string
		args []any
		want string
	}{
		{"unknown with suggestion", "ad", nil, `unknown function "ad" (did you mean add`},
		{"unknown far", "zzzzzzzz", nil, `run ` + "`dray functions`"},
		{"too few", "add", []any{int64(1)}, "add takes 2, got 1 (signature: add(int64, int64) int64)"},
		{"wrong type", "add", []any{"one", int64(2)}, "argument 1: cannot use value as int64"},
		{"unregistered struct", "len", []any{struct{ X int }{1}}, "unregistered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.Call(ctx, tc.fn, tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := n.Call(ctx, "ad")
	assert.ErrorIs(t, err, node.ErrUnknownFunction)
}

func TestGetCancellationAndTimeout(t *testing.T) {
	release := make(chan struct{})
	n := newNode(t, 1, func(r *node.Registry) {
		r.MustRegister("wait", func() (int, error) { <-release; return 1, nil })
	})
	defer close(release)
	ctx := ctxT(t)
	refs, err := n.Call(ctx, "wait")
	require.NoError(t, err)

	_, err = refs[0].Get(ctx, node.WithTimeout(10*time.Millisecond))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, refs[0].CID().String())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = refs[0].Get(cctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestPutGet(t *testing.T) {
	n := newNode(t, 1, nil)
	ctx := ctxT(t)
	arr, err := codec.NewArray([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	require.NoError(t, err)
	for _, v := range []any{
		true, int64(-5), uint64(1 << 63), 3.25, "héllo", []byte{0, 1, 2},
		[]any{int64(1), "two", []byte("3")}, map[string]any{"a": int64(1)}, arr,
	} {
		r, err := n.Put(ctx, v)
		require.NoError(t, err)
		got, err := r.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, v, got)
		enc, err := codec.Marshal(v)
		require.NoError(t, err)
		assert.Equal(t, codec.Sum(enc), r.CID(), "a put ref is the CID of the value's encoding")
	}
	typed, err := node.Put(ctx, n, 42)
	require.NoError(t, err)
	v, err := typed.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	// A ref from Put is a dependency like any other.
	s, err := n.Call(ctx, "nd.sum", mustRef(t, n, arr))
	require.NoError(t, err)
	total, err := node.As[float64](s[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 21.0, total)
}

func mustRef(t *testing.T, n *node.Node, v any) node.ObjectRef {
	r, err := n.Put(context.Background(), v)
	require.NoError(t, err)
	return r
}

func TestWait(t *testing.T) {
	gates := map[int]chan struct{}{}
	for i := range 4 {
		gates[i] = make(chan struct{})
	}
	n := newNode(t, 4, func(r *node.Registry) {
		r.MustRegister("gate", func(i int) (int, error) { <-gates[i]; return i, nil })
	})
	ctx := ctxT(t)
	var refs []node.ObjectRef
	for i := range 4 {
		r, err := n.Call(ctx, "gate", i)
		require.NoError(t, err)
		refs = append(refs, r[0])
	}
	close(gates[2])
	close(gates[0])
	ready, notReady, err := n.Wait(ctx, refs, 2, 0)
	require.NoError(t, err)
	assert.Equal(t, []node.ObjectRef{refs[0], refs[2]}, ready, "input order kept")
	assert.Equal(t, []node.ObjectRef{refs[1], refs[3]}, notReady)

	ready, notReady, err = n.Wait(ctx, refs, 4, 20*time.Millisecond)
	require.NoError(t, err, "a timeout is not an error")
	assert.Len(t, ready, 2)
	assert.Len(t, notReady, 2)

	close(gates[3])
	close(gates[1])
	ready, notReady, err = n.Wait(ctx, refs, 10, 0)
	require.NoError(t, err)
	assert.Equal(t, refs, ready)
	assert.Empty(t, notReady)
}

func TestDeterministicCallsAreMemoized(t *testing.T) {
	var runs atomic.Int64
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("square", func(x int) int { runs.Add(1); return x * x }, node.Deterministic())
		r.MustRegister("noisy", func(x int) int { runs.Add(1); return x * x })
	})
	ctx := ctxT(t)
	get := func(fn string, x int) (int, node.ObjectRef) {
		refs, err := n.Call(ctx, fn, x)
		require.NoError(t, err)
		v, err := node.As[int](refs[0]).Get(ctx)
		require.NoError(t, err)
		return v, refs[0]
	}
	v1, r1 := get("square", 9)
	v2, r2 := get("square", 9)
	assert.Equal(t, 81, v1)
	assert.Equal(t, 81, v2)
	assert.Equal(t, r1.CID(), r2.CID(), "equal arguments, equal task CID")
	assert.Equal(t, int64(1), runs.Load(), "second call answered from the store")

	// Still memoized after every ref is gone.
	r1, r2 = node.ObjectRef{}, node.ObjectRef{}
	_, _ = r1, r2
	waitForObjects(t, n, 0)
	v3, _ := get("square", 9)
	assert.Equal(t, 81, v3)
	assert.Equal(t, int64(1), runs.Load())

	_, a := get("noisy", 9)
	_, b := get("noisy", 9)
	assert.NotEqual(t, a.CID(), b.CID(), "non-deterministic calls get fresh task IDs")
	assert.Equal(t, int64(3), runs.Load())
}

// waitForObjects collects garbage until the node tracks at most want
// objects, failing after a deadline.
func waitForObjects(t testing.TB, n *node.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		got := n.Stats().Objects
		if got <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node still tracks %d objects, want <= %d", got, want)
		}
		runtime.Gosched()
	}
}

func TestDroppedRefsAreReleased(t *testing.T) {
	n := newNode(t, 2, nil)
	ctx := ctxT(t)
	func() {
		for i := range 200 {
			refs, err := n.Call(ctx, "add", int64(i), int64(1))
			require.NoError(t, err)
			_, err = refs[0].Get(ctx)
			require.NoError(t, err)
			_, err = n.Put(ctx, fmt.Sprint("value ", i))
			require.NoError(t, err)
		}
	}()
	waitForObjects(t, n, 0)
	st := n.Stats()
	assert.Equal(t, 0, st.Tasks)
	assert.Equal(t, 0, st.Store.Pinned, "no object pinned once no ref is held")
}

func TestClose(t *testing.T) {
	reg := node.NewRegistry()
	reg.MustRegister("forever", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	cfg := node.DefaultConfig()
	cfg.Functions, cfg.Store.Dir = reg, t.TempDir()
	n, err := node.New(cfg)
	require.NoError(t, err)
	ctx := ctxT(t)
	refs, err := n.Call(ctx, "forever")
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, err := refs[0].Get(ctx); errc <- err }()
	require.NoError(t, n.Close())
	require.Error(t, <-errc)
	_, err = n.Call(ctx, "forever")
	require.ErrorIs(t, err, node.ErrClosed)
	require.NoError(t, n.Close(), "Close twice is fine")
}

func TestConfigValidate(t *testing.T) {
	cfg := node.DefaultConfig()
	require.NoError(t, cfg.Validate())
	cfg.Slots = 0
	require.ErrorContains(t, cfg.Validate(), "Slots")
	_, err := node.New(cfg)
	require.Error(t, err)
}

// TestSpecEncodingIsCanonical checks the hand-built spec against Marshal of
// the equivalent value, so task IDs are CIDs of canonical encodings.
func TestSpecEncodingIsCanonical(t *testing.T) {
	n := newNode(t, 1, nil)
	ctx := ctxT(t)
	dep, err := n.Put(ctx, int64(5))
	require.NoError(t, err)
	refs, err := n.Call(ctx, "add", dep, int64(7))
	require.NoError(t, err)
	raw7, err := codec.Marshal(int64(7))
	require.NoError(t, err)
	add, err := n.Registry().Lookup("add")
	require.NoError(t, err)
	spec, err := codec.Marshal(codec.Tuple{"dray.task/2", "add", uint64(add.ID()),
		codec.Tuple{codec.Tuple{1, dep.CID()}, codec.Tuple{0, codec.Raw(raw7)}}, 1, nil})
	require.NoError(t, err)
	desc, err := codec.Marshal(codec.Tuple{codec.Sum(spec), 0})
	require.NoError(t, err)
	assert.Equal(t, cid.NewCidV1(cid.DagCBOR, codec.Sum(desc).Hash()), refs[0].CID(), "add is deterministic: its ref is fixed by its arguments")
}
