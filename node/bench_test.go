package node_test

import (
	"context"
	"crypto/sha256"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// benchNode is a node with a trivial typed function "inc" and the built-ins.
func benchNode(b *testing.B) (*node.Node, node.Func1[int, int]) {
	var inc node.Func1[int, int]
	n := newNode(b, runtime.NumCPU(), func(r *node.Registry) {
		var err error
		inc, err = node.Register1(r, "inc", func(_ context.Context, x int) (int, error) { return x + 1, nil })
		if err != nil {
			b.Fatal(err)
		}
	})
	return n, inc
}

func incr(_ context.Context, x int) (int, error) { return x + 1, nil }

// poolRun runs the same trivial calls on a bare pool of NumCPU goroutines
// fed by a channel: the baseline for task throughput.
func poolRun(total int) time.Duration {
	start := time.Now()
	in := make(chan int, 1024)
	out := make([]int, total)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for i := range in {
				out[i], _ = incr(context.Background(), i)
			}
		})
	}
	for i := range total {
		in <- i
	}
	close(in)
	wg.Wait()
	return time.Since(start)
}

// BenchmarkTasksAsync submits b.N trivial tasks, then gets them all, and
// reports tasks/s next to a bare goroutine pool doing the same calls.
// Target: at least 200,000 tasks/s (Ray: about 14,000/s).
func BenchmarkTasksAsync(b *testing.B) {
	n, inc := benchNode(b)
	ctx := context.Background()
	refs := make([]node.Ref[int], b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range refs {
		r, err := inc.Call(ctx, n, node.Val(i))
		if err != nil {
			b.Fatal(err)
		}
		refs[i] = r
	}
	for i, r := range refs {
		v, err := r.Get(ctx)
		if err != nil || v != i+1 {
			b.Fatalf("task %d: got %d, %v", i, v, err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	pool := poolRun(b.N)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(b.N)/pool.Seconds(), "pool-tasks/s")
	b.ReportMetric(pool.Seconds()/elapsed.Seconds(), "ratio-to-pool")
}

// BenchmarkTaskRoundTrip submits one trivial task, gets it, and repeats;
// it reports the median round trip. Target: under 20 µs (Ray: about 1 ms).
func BenchmarkTaskRoundTrip(b *testing.B) {
	n, inc := benchNode(b)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := inc.Call(ctx, n, node.Val(i))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Get(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	// Baseline: a bare goroutine hand-off and back through channels.
	req, resp := make(chan int), make(chan int)
	go func() {
		for x := range req {
			v, _ := incr(context.Background(), x)
			resp <- v
		}
	}()
	base := make([]time.Duration, 0, len(lat))
	for i := range len(lat) {
		start := time.Now()
		req <- i
		<-resp
		base = append(base, time.Since(start))
	}
	close(req)
	b.ReportMetric(float64(median(lat).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(median(base).Nanoseconds())/1e3, "chan-p50-µs")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkPutSmall puts small values; target at least 500,000/s.
func BenchmarkPutSmall(b *testing.B) {
	n, _ := benchNode(b)
	ctx := context.Background()
	refs := make([]node.ObjectRef, 0, b.N)
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		r, err := n.Put(ctx, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, r)
	}
	b.ReportMetric(float64(len(refs))/time.Since(start).Seconds(), "puts/s")
}

// BenchmarkGetSmall gets a small value; target at least 500,000/s.
func BenchmarkGetSmall(b *testing.B) {
	n, _ := benchNode(b)
	ctx := context.Background()
	r, err := node.Put(ctx, n, "a small value")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	count := 0
	for b.Loop() {
		if _, err := r.Get(ctx); err != nil {
			b.Fatal(err)
		}
		count++
	}
	b.ReportMetric(float64(count)/time.Since(start).Seconds(), "gets/s")
}

// BenchmarkPutLarge puts a 256 MiB float64 array and reports GB/s next to
// sha2-256 alone over the same bytes. Target: at least 1 GB/s.
func BenchmarkPutLarge(b *testing.B) {
	n, _ := benchNode(b)
	ctx := context.Background()
	const size = 256 << 20
	vals := make([]float64, size/8)
	for i := range vals {
		vals[i] = float64(i)
	}
	arr, err := codec.NewArray([]int{len(vals)}, vals)
	if err != nil {
		b.Fatal(err)
	}
	vals = nil
	var putTime, hashTime time.Duration
	for i := 0; b.Loop(); i++ {
		arr.Data[0] = byte(i) // a new value each time, so nothing is deduplicated
		start := time.Now()
		r, err := n.Put(ctx, arr)
		if err != nil {
			b.Fatal(err)
		}
		putTime += time.Since(start)
		r = node.ObjectRef{}
		_ = r
		start = time.Now()
		sha256.Sum256(arr.Data)
		hashTime += time.Since(start)
		runtime.GC() // let the dropped ref release its object
	}
	iters := float64(b.N)
	putGBs := iters * size / putTime.Seconds() / 1e9
	hashGBs := iters * size / hashTime.Seconds() / 1e9
	b.ReportMetric(putGBs, "put-GB/s")
	b.ReportMetric(hashGBs, "sha256-GB/s")
	b.ReportMetric(putGBs/hashGBs, "ratio-to-sha256")
}
