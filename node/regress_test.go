package node_test

// Regression tests for bugs found in review: lost actions on failure
// cascades, duplicate deterministic tasks, memo and ref-count corner cases,
// refs collected by the GC while an operation still needed them, and Close.

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

// Bug A: actLocked iterates the slice returned by sched.Actions() while
// finishLocked -> sched.Step appends into the same backing array.
func TestFailureCascadeLosesNoTask(t *testing.T) {
	gate := make(chan struct{})
	n := newNode(t, 1, func(r *node.Registry) {
		r.MustRegister("boom", func(ctx context.Context) (int, error) {
			<-gate
			return 0, errors.New("boom")
		})
		r.MustRegister("id", func(x int) int { return x })
	})
	ctx := ctxT(t)
	f, err := n.Call(ctx, "boom")
	require.NoError(t, err)
	g1, err := n.Call(ctx, "id", f[0])
	require.NoError(t, err)
	g2, err := n.Call(ctx, "id", f[0])
	require.NoError(t, err)
	h1, err := n.Call(ctx, "id", g1[0])
	require.NoError(t, err)
	h2, err := n.Call(ctx, "id", g1[0])
	require.NoError(t, err)
	close(gate)
	for name, r := range map[string]node.ObjectRef{"g1": g1[0], "h1": h1[0], "h2": h2[0], "g2": g2[0]} {
		_, err := r.Get(ctx, node.WithTimeout(2*time.Second))
		var te *node.TaskError
		if !errors.As(err, &te) {
			t.Errorf("%s: want TaskError, got %v", name, err)
		}
	}
	t.Logf("stats: %+v", n.Stats())
}

// Bug B: a deterministic function with no results called twice while the
// first call is queued: sched refuses the duplicate Submit, and
// finishLocked(dup) deletes the FIRST task from n.tasks. Its Run action is
// then dropped ("unknown task") and the slot leaks forever.
func TestDeterministicNoResultDuplicate(t *testing.T) {
	gate := make(chan struct{})
	n := newNode(t, 1, func(r *node.Registry) {
		r.MustRegister("hold", func(ctx context.Context) int { <-gate; return 1 })
		r.MustRegister("touch", func(x int) error { return nil }, node.Deterministic())
	})
	ctx := ctxT(t)
	h, err := n.Call(ctx, "hold")
	require.NoError(t, err)
	_, err = n.Call(ctx, "touch", 1) // queued behind hold
	require.NoError(t, err)
	_, err = n.Call(ctx, "touch", 1) // duplicate ID -> ErrDuplicate, silently swallowed
	require.NoError(t, err)
	close(gate)
	_, err = h[0].Get(ctx)
	require.NoError(t, err)
	// Any later task should run.
	a, err := n.Call(ctx, "add", int64(1), int64(2))
	require.NoError(t, err)
	_, err = a[0].Get(ctx, node.WithTimeout(2*time.Second))
	t.Logf("stats: %+v", n.Stats().Sched)
	require.NoError(t, err, "node is wedged: slot leaked")
}

func gcUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		runtime.GC()
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never held")
}

// Bug C: memoLocked treats a partially released multi-output deterministic
// task as a miss and resubmits; submitLocked then overwrites the live
// object record of output 0 (old handles still count against it).
func TestDeterministicPartialRelease(t *testing.T) {
	n := newNode(t, 2, func(r *node.Registry) {
		r.MustRegister("pair", func(x int) (int, int) { return x, x + 1 }, node.Deterministic())
	})
	ctx := ctxT(t)
	old0 := func() node.ObjectRef {
		refs, err := n.Call(ctx, "pair", 5)
		require.NoError(t, err)
		_, err = refs[0].Get(ctx)
		require.NoError(t, err)
		_, err = refs[1].Get(ctx)
		require.NoError(t, err)
		return refs[0] // refs[1] dropped
	}()
	gcUntil(t, func() bool { return n.Stats().Objects == 1 })
	pinnedBefore := n.Stats().Store.Pinned

	refs, err := n.Call(ctx, "pair", 5) // "partial" -> resubmitted, overwrites record of output 0
	require.NoError(t, err)
	_, err = refs[0].Get(ctx)
	require.NoError(t, err)
	t.Logf("pinned before=%d after=%d", pinnedBefore, n.Stats().Store.Pinned)

	runtime.KeepAlive(old0)
	old0 = node.ObjectRef{}
	for i := 0; i < 20; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	v, err := refs[0].Get(ctx) // we still hold refs[0]!
	require.NoError(t, err, "live ref released because the old handle's cleanup hit the new record")
	require.Equal(t, int64(5), v)
}

func regWrap(r *node.Registry) {
	r.MustRegister("wrap", func(ctx context.Context, x int) (node.ObjectRef, error) {
		return node.FromContext(ctx).Put(ctx, x)
	}, node.Deterministic())
	r.MustRegister("deref", func(ctx context.Context, inner node.ObjectRef) (int, error) {
		return node.As[int](inner).Get(ctx)
	})
}

// Bug D: a memo hit re-creates the output record without its links, so the
// refs inside a memoized result point at released objects.
func TestMemoHitKeepsNestedRefs(t *testing.T) {
	n := newNode(t, 2, regWrap)
	ctx := ctxT(t)
	func() {
		w, err := n.Call(ctx, "wrap", 5)
		require.NoError(t, err)
		d, err := n.Call(ctx, "deref", w[0])
		require.NoError(t, err)
		v, err := node.As[int](d[0]).Get(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, v)
	}()
	gcUntil(t, func() bool { return n.Stats().Objects == 0 })
	w, err := n.Call(ctx, "wrap", 5) // memo hit
	require.NoError(t, err)
	d, err := n.Call(ctx, "deref", w[0])
	require.NoError(t, err)
	_, err = node.As[int](d[0]).Get(ctx)
	require.NoError(t, err, "memoized result holds a dangling ref")
}

// Bug E: a ref nested in a result cannot be resolved by the driver; the
// error tells the user to "pass the node's context", which no API offers.
func TestNestedResultRefUsableOutsideTask(t *testing.T) {
	n := newNode(t, 2, regWrap)
	ctx := ctxT(t)
	w, err := n.Call(ctx, "wrap", 7)
	require.NoError(t, err)
	inner, err := node.As[node.ObjectRef](w[0]).Get(ctx)
	require.NoError(t, err)
	_, err = node.As[int](inner).Get(ctx)
	require.NoError(t, err)
}

func TestNestedResultRefViaNodeRef(t *testing.T) {
	n := newNode(t, 2, regWrap)
	ctx := ctxT(t)
	w, err := n.Call(ctx, "wrap", 7)
	require.NoError(t, err)
	inner, err := node.As[node.ObjectRef](w[0]).Get(ctx)
	require.NoError(t, err)
	c, err := n.Ref(inner.CID())
	require.NoError(t, err)
	v, err := node.As[int](c).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, v)
}

// Bug F: Close runs every queued task (with a cancelled context) before it
// returns, instead of failing the queued ones.
func TestCloseDoesNotRunQueuedTasks(t *testing.T) {
	var ran atomic.Int32
	reg := node.NewRegistry()
	started := make(chan struct{}, 30)
	reg.MustRegister("slow", func(ctx context.Context, i int) int {
		ran.Add(1)
		started <- struct{}{}
		time.Sleep(100 * time.Millisecond) // the work: ignores its context
		return i
	})
	cfg := node.DefaultConfig()
	cfg.Slots = 1
	cfg.Functions = reg
	n, err := node.New(cfg)
	require.NoError(t, err)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		_, err := n.Call(ctx, "slow", i)
		require.NoError(t, err)
	}
	<-started
	start := time.Now()
	require.NoError(t, n.Close())
	t.Logf("Close took %v; tasks run: %d of 30", time.Since(start), ran.Load())
	require.Less(t, time.Since(start), time.Second)
	require.Less(t, ran.Load(), int32(5), "queued tasks must not start once Close began")
}

type boxed struct {
	Ref node.ObjectRef
	Pad []byte
}

func regBox(r *node.Registry) {
	r.MustRegister("open", func(ctx context.Context, xs []any) (int, error) {
		var ref node.ObjectRef
		if err := ref.SetLink(xs[0].(cid.Cid)); err != nil {
			return 0, err
		}
		return node.As[int](ref).Get(ctx)
	})
	r.MustRegister("openArg", func(ctx context.Context, xs []any, pad []byte) (int, error) {
		var ref node.ObjectRef
		if err := ref.SetLink(xs[0].(cid.Cid)); err != nil {
			return 0, err
		}
		return node.As[int](ref).Get(ctx)
	})
	r.MustRegister("mk", func(ctx context.Context, i int) ([]any, error) {
		nd := node.FromContext(ctx)
		inner, err := nd.Put(ctx, i)
		if err != nil {
			return nil, err
		}
		return []any{inner, make([]byte, 8<<20)}, nil // inner handle dies after Marshal
	})
}

func gcLoop(t *testing.T) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
}

func countUnknown(t *testing.T, err error, bad *atomic.Int32) {
	if err == nil {
		return
	}
	if errors.Is(err, node.ErrUnknownRef) {
		bad.Add(1)
		return
	}
	t.Fatal(err)
}

// TestNestedRefsHeldAcrossGC checks the windows in which a ref nested in a
// value could be collected before the node holds it: in a Put (the value is
// dead after Marshal, the holds come after hashing), in an inline Call
// argument (encodeSpec hashes first), and in a task's result (the handle
// dies after Marshal; links are held in finishLocked, after PutPinned).
// A garbage collector runs in a loop meanwhile.
func TestNestedRefsHeldAcrossGC(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(ctx context.Context, n *node.Node, i int) ([]node.ObjectRef, error)
	}{
		{"put", func(ctx context.Context, n *node.Node, i int) ([]node.ObjectRef, error) {
			inner, err := n.Put(ctx, 1_000_000+i)
			if err != nil {
				return nil, err
			}
			outer, err := n.Put(ctx, []any{inner, make([]byte, 8<<20)})
			if err != nil {
				return nil, err
			}
			return n.Call(ctx, "open", outer)
		}},
		{"call argument", func(ctx context.Context, n *node.Node, i int) ([]node.ObjectRef, error) {
			inner, err := n.Put(ctx, 2_000_000+i)
			if err != nil {
				return nil, err
			}
			return n.Call(ctx, "openArg", []any{inner}, make([]byte, 8<<20))
		}},
		{"task result", func(ctx context.Context, n *node.Node, i int) ([]node.ObjectRef, error) {
			m, err := n.Call(ctx, "mk", 3_000_000+i)
			if err != nil {
				return nil, err
			}
			return n.Call(ctx, "open", m[0])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 4, regBox)
			ctx := ctxT(t)
			gcLoop(t)
			var bad atomic.Int32
			for i := range 10 {
				r, err := tc.open(ctx, n, i)
				require.NoError(t, err)
				_, err = r[0].Get(ctx)
				countUnknown(t, err, &bad)
			}
			require.Zero(t, bad.Load(), "a nested ref was released before the node held it")
		})
	}
}

func regBox2(r *node.Registry) {
	regBox(r)
	r.MustRegister("mk2", func(ctx context.Context, i int) ([]node.ObjectRef, error) {
		inner, err := node.FromContext(ctx).Put(ctx, i)
		return []node.ObjectRef{inner}, err
	})
	r.MustRegister("open2", func(ctx context.Context, xs []node.ObjectRef) (int, error) {
		return node.As[int](xs[0]).Get(ctx)
	})
	r.MustRegister("inc", func(x int) int { return x + 1 })
}

// Top-level ref argument whose handle dies inside Call (common chaining
// pattern x = f(x)).
func TestCallHoldsTopLevelRef(t *testing.T) {
	n := newNode(t, 8, regBox2)
	ctx := ctxT(t)
	gcLoop(t)
	var bad int
	for c := 0; c < 200; c++ {
		x, err := n.Put(ctx, 0)
		require.NoError(t, err)
		for i := 0; i < 100; i++ {
			r, err := n.Call(ctx, "inc", x)
			if errors.Is(err, node.ErrUnknownRef) {
				bad++
				break
			}
			require.NoError(t, err)
			x = r[0]
		}
	}
	require.Zero(t, bad, "chains broken by a ref collected inside Call")
}

func TestResultNestedRefStress(t *testing.T) {
	n := newNode(t, 8, regBox2)
	ctx := ctxT(t)
	gcLoop(t)
	var bad atomic.Int32
	const N = 5000
	keep := make([]node.ObjectRef, 0, N)
	opens := make([]node.ObjectRef, 0, N)
	for i := 0; i < N; i++ {
		m, err := n.Call(ctx, "mk2", 5_000_000+i)
		require.NoError(t, err)
		keep = append(keep, m[0])
		r, err := n.Call(ctx, "open2", m[0])
		require.NoError(t, err)
		opens = append(opens, r[0])
	}
	for _, r := range opens {
		_, err := r.Get(ctx)
		countUnknown(t, err, &bad)
	}
	require.Zero(t, bad.Load())
}

func TestGetHoldsReadyRef(t *testing.T) {
	n := newNode(t, 8, regBox2)
	ctx := ctxT(t)
	gcLoop(t)
	var bad atomic.Int32
	var first atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				r, err := n.Put(ctx, g*1_000_000+i)
				if err != nil {
					panic(err)
				}
				if _, err := node.As[int](r).Get(ctx); err != nil {
					bad.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, bad.Load(), "first: %v", first.Load())
}

func TestCloseDuringNestedTasks(t *testing.T) {
	for iter := 0; iter < 5; iter++ {
		reg := node.NewRegistry()
		leaves := make(chan struct{}, 1)
		reg.MustRegister("leaf", func(ctx context.Context, i int) (int, error) {
			time.Sleep(time.Millisecond) // the work
			select {
			case leaves <- struct{}{}:
			default:
			}
			return i, nil
		})
		reg.MustRegister("fan", func(ctx context.Context, i int) (int, error) {
			nd := node.FromContext(ctx)
			var refs []node.ObjectRef
			for j := 0; j < 4; j++ {
				r, err := nd.Call(ctx, "leaf", i*10+j)
				if err != nil {
					return 0, err
				}
				refs = append(refs, r[0])
			}
			// goroutine that outlives the task and Gets with the task ctx
			go func() {
				for _, r := range refs {
					_, _ = r.Get(ctx, node.WithTimeout(50*time.Millisecond))
				}
			}()
			if _, _, err := nd.Wait(ctx, refs, 2, 0); err != nil {
				return 0, err
			}
			s := 0
			for _, r := range refs {
				v, err := node.As[int](r).Get(ctx)
				if err != nil {
					return 0, err
				}
				s += v
			}
			return s, nil
		})
		cfg := node.DefaultConfig()
		cfg.Slots = 2
		cfg.Functions = reg
		n, err := node.New(cfg)
		require.NoError(t, err)
		ctx := context.Background()
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					r, err := n.Call(ctx, "fan", i)
					if err != nil {
						return
					}
					_, _ = r[0].Get(ctx)
				}
			}()
		}
		<-leaves // close mid-run, once nested work is under way
		done := make(chan struct{})
		go func() { _ = n.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close hung")
		}
		wg.Wait()
	}
}
