package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// genReader yields size deterministic bytes without holding them: each
// 64 KiB block is a fixed pattern stamped with the block's index. When
// sample is set it is called before every Read, so that a test can watch
// the heap while the store consumes the stream.
type genReader struct {
	size, off int64
	sample    func()
}

var genPattern = obj(7, 64<<10)

func (g *genReader) Read(p []byte) (int, error) {
	if g.sample != nil {
		g.sample()
	}
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	for done := 0; done < len(p); {
		pos := g.off + int64(done)
		block, in := pos/int64(len(genPattern)), pos%int64(len(genPattern))
		k := copy(p[done:], genPattern[in:])
		if in < 8 { // stamp the block index over the block's first 8 bytes
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], uint64(block))
			copy(p[done:min(done+k, done+8-int(in))], w[in:])
		}
		done += k
	}
	g.off += int64(len(p))
	return len(p), nil
}

// genSum returns the CID of the bytes a genReader of size yields.
func genSum(t testing.TB, size int64) []byte {
	t.Helper()
	h := sha256.New()
	_, err := io.CopyBuffer(h, &genReader{size: size}, make([]byte, 1<<20))
	require.NoError(t, err)
	return h.Sum(nil)
}

// heapWatch samples the bytes of heap objects (live, or dead and not yet
// swept) and keeps the peak above the level when it started.
type heapWatch struct {
	base, peak uint64
	alloc0     uint64
	sample     []metrics.Sample
}

func newHeapWatch() *heapWatch {
	runtime.GC()
	runtime.GC()
	w := &heapWatch{sample: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
	metrics.Read(w.sample)
	w.base = w.sample[0].Value.Uint64()
	w.alloc0 = w.sample[1].Value.Uint64()
	return w
}

// Sample records the current heap size.
func (w *heapWatch) Sample() {
	metrics.Read(w.sample)
	if v := w.sample[0].Value.Uint64(); v > w.base && v-w.base > w.peak {
		w.peak = v - w.base
	}
}

// Allocated returns the bytes allocated since the watch started.
func (w *heapWatch) Allocated() uint64 {
	metrics.Read(w.sample)
	return w.sample[1].Value.Uint64() - w.alloc0
}

// TestPutStreamUnknownSizeHoldsOneCopy streams ~100 MiB of unknown size
// into memory and checks that the store never held much more than the
// object: no doubling buffer with its old copy alive, no final trim copy.
func TestPutStreamUnknownSizeHoldsOneCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100 MiB")
	}
	const size = 100<<20 + 12345 // not a power of two: worst case for doubling
	want := genSum(t, size)
	for _, dir := range []string{"", t.TempDir()} {
		name := "memory only"
		if dir != "" {
			name = "with data directory"
		}
		t.Run(name, func(t *testing.T) {
			s := openStore(t, testConfig(dir, 256<<20, 0))
			w := newHeapWatch()
			c, n, err := s.PutStream(ctx, &genReader{size: size, sample: w.Sample}, 0)
			w.Sample()
			allocated := w.Allocated()
			require.NoError(t, err)
			require.Equal(t, int64(size), n)
			t.Logf("%d MiB stream, unknown size: peak heap +%.1f MiB, allocated %.1f MiB",
				size>>20, float64(w.peak)/(1<<20), float64(allocated)/(1<<20))
			require.LessOrEqual(t, w.peak, uint64(size*13/10), "peak heap above 1.3x the object")
			require.LessOrEqual(t, allocated, uint64(size*13/10), "allocated more than 1.3x the object")

			st := s.Stats()
			require.Equal(t, int64(size), st.MemBytes, "kept in memory")
			require.Zero(t, st.DiskBytes)
			// Stream it back out without flattening it.
			r, rn, err := s.Open(ctx, c)
			require.NoError(t, err)
			require.Equal(t, int64(size), rn)
			h := sha256.New()
			_, err = io.Copy(h, r)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			require.Equal(t, want, h.Sum(nil))
			require.Equal(t, want, []byte(c.Hash()[2:]))
			checkInvariants(t, s)
		})
	}
}

// TestPutStreamHonorsBudget streams more than the memory budget of unknown
// size and checks that the heap the stream uses, transient buffers
// included, stays within the budget (plus the hashing pipeline's chunks).
func TestPutStreamHonorsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 96 MiB")
	}
	const (
		budget = 40<<20 + 4321
		size   = 96<<20 + 777
		slack  = (pipeDepth + 4) << 20 // pipeline chunks and small buffers
	)
	tests := []struct {
		name    string
		dir     bool
		hint    int64
		wantErr error
	}{
		{"to disk, unknown size", true, 0, nil},
		{"to disk, hint too small", true, 1 << 20, nil},
		{"no disk, unknown size", false, 0, ErrFull},
		{"no disk, hint too large", false, 4 * budget, ErrFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := ""
			if tt.dir {
				dir = t.TempDir()
			}
			s := openStore(t, testConfig(dir, budget, 0))
			var maxUsed int64
			w := newHeapWatch()
			sample := func() {
				w.Sample()
				s.mu.Lock()
				maxUsed = max(maxUsed, s.memUsed)
				s.mu.Unlock()
			}
			_, n, err := s.PutStream(ctx, &genReader{size: size, sample: sample}, tt.hint)
			w.Sample()
			t.Logf("budget %d MiB, %d MiB stream: peak heap +%.1f MiB, allocated %.1f MiB, reserved %.1f MiB",
				budget>>20, size>>20, float64(w.peak)/(1<<20), float64(w.Allocated())/(1<<20), float64(maxUsed)/(1<<20))
			require.LessOrEqual(t, maxUsed, int64(budget))
			require.LessOrEqual(t, w.peak, uint64(budget+slack), "peak heap above the memory budget")
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Zero(t, s.Stats().Objects)
			} else {
				require.NoError(t, err)
				require.Equal(t, int64(size), n)
				require.Equal(t, int64(size), s.Stats().DiskBytes)
			}
			checkInvariants(t, s)
		})
	}
}

// TestPutStreamHintIsOnlyAHint: a size hint the memory cannot hold does
// not fail a stream that turns out to fit.
func TestPutStreamHintIsOnlyAHint(t *testing.T) {
	const budget = 64 << 10
	tests := []struct {
		name   string
		pinned int // bytes of pinned objects already held
		size   int
		hint   int64
	}{
		{"hint above budget", 0, 100, 10 * budget},
		{"hint above budget, stream fills it", 0, budget, 10 * budget},
		{"hint above free memory", budget - 1000, 100, budget / 2},
		{"hint above free memory, stream fills it", budget - 1000, 1000, budget / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig("", budget, 0))
			if tt.pinned > 0 {
				_, err := s.PutPinned(ctx, obj(1, tt.pinned))
				require.NoError(t, err)
			}
			data := obj(2, tt.size)
			c, n, err := s.PutStream(ctx, bytes.NewReader(data), tt.hint)
			require.NoError(t, err)
			require.Equal(t, int64(tt.size), n)
			require.Equal(t, sum(data), c)
			got, err := s.Get(ctx, c)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
			checkInvariants(t, s)

			// One byte more than fits still fails, and stores nothing
			// (it may have evicted unpinned objects trying).
			before := s.Stats()
			_, _, err = s.PutStream(ctx, bytes.NewReader(obj(3, budget+1)), tt.hint)
			require.ErrorIs(t, err, ErrFull)
			require.LessOrEqual(t, s.Stats().Objects, before.Objects)
			require.Equal(t, before.Pinned, s.Stats().Pinned)
			checkInvariants(t, s)
		})
	}
}

// TestPutStreamCompacts checks what a stream leaves allocated when the
// budget has room to trim it: small objects end in one exact slice, large
// ones in segments with little unused room.
func TestPutStreamCompacts(t *testing.T) {
	tests := []struct {
		name string
		size int
		hint int64
	}{
		{"tiny", 100, 0},
		{"two segments", 40 << 10, 0},
		{"many segments, small", 3<<20 + 17, 0},
		{"exactly maxSeg", maxSeg, 0},
		{"just above maxSeg", maxSeg + 1, 0},
		{"large", 20<<20 + 3, 0},
		{"hint overstated", 100, 5000},
		{"hint overstated, large", 5 << 20, 16 << 20},
		{"hint understated", 6<<20 + 5, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig("", 64<<20, 0))
			data := obj(uint64(tt.size), tt.size)
			c, _, err := s.PutStream(ctx, bytes.NewReader(data), tt.hint)
			require.NoError(t, err)
			checkInvariants(t, s)
			s.mu.Lock()
			e := s.objects[c]
			segs, slack := len(e.segs()), e.slack()
			var allocated int
			for _, b := range e.bufs() {
				allocated += cap(b)
			}
			s.mu.Unlock()
			require.Equal(t, tt.size+int(slack), allocated)
			if tt.size <= maxSeg {
				require.Zero(t, segs, "small objects are one slice")
				require.LessOrEqual(t, int(slack), tt.size/8)
			} else {
				require.LessOrEqual(t, slack, int64(minSeg))
			}
			got, err := s.Get(ctx, c)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
			st := s.Stats()
			require.Equal(t, int64(tt.size), st.MemBytes)
			checkInvariants(t, s)
			// After Get the object is one slice, returned to every caller.
			got2, err := s.Get(ctx, c)
			require.NoError(t, err)
			require.Same(t, &got[0], &got2[0])
			s.mu.Lock()
			require.Nil(t, s.objects[c].segs())
			require.Zero(t, s.objects[c].slack())
			s.mu.Unlock()
		})
	}
}

// TestSegmentedObject exercises an object held in segments: streamed out
// by Open, spilled while pinned, read back, and joined by Get only when
// the budget can hold the joined copy.
func TestSegmentedObject(t *testing.T) {
	const size = maxSeg + 3<<20 + 5 // more than maxSeg: kept in segments
	data := obj(5, size)
	segmented := func(t *testing.T, s *Store, c cid.Cid) bool {
		t.Helper()
		s.mu.Lock()
		e := s.objects[c]
		s.mu.Unlock()
		require.NotNil(t, e, "object gone")
		s.mu.Lock()
		defer s.mu.Unlock()
		return e.segs() != nil
	}

	t.Run("open streams segments", func(t *testing.T) {
		s := openStore(t, testConfig("", 64<<20, 0))
		c, _, err := s.PutStream(ctx, bytes.NewReader(data), 0)
		require.NoError(t, err)
		require.True(t, segmented(t, s, c))
		r, n, err := s.Open(ctx, c)
		require.NoError(t, err)
		require.Equal(t, int64(size), n)
		var out bytes.Buffer
		_, err = io.Copy(&out, r) // WriteTo of net.Buffers
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.True(t, bytes.Equal(data, out.Bytes()))
		require.True(t, segmented(t, s, c), "Open does not join")
	})

	for _, pin := range []bool{false, true} {
		t.Run(fmt.Sprintf("get without room for the join/pinned=%v", pin), func(t *testing.T) {
			s := openStore(t, testConfig("", size+1<<20, 0))
			c, _, err := s.PutStream(ctx, bytes.NewReader(data), 0)
			require.NoError(t, err)
			if pin {
				require.NoError(t, s.Pin(c))
			}
			got, err := s.Get(ctx, c)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
			// The object is not evicted to make room for its own join:
			// the caller gets a private copy, the store keeps its segments.
			require.True(t, segmented(t, s, c))
			checkInvariants(t, s)
		})
	}

	t.Run("get joins, evicting unpinned objects but not itself", func(t *testing.T) {
		s := openStore(t, testConfig("", 2*size+1<<20, 0))
		other, err := s.Put(ctx, obj(6, 2<<20))
		require.NoError(t, err)
		c, _, err := s.PutStream(ctx, bytes.NewReader(data), 0)
		require.NoError(t, err)
		got, err := s.Get(ctx, c)
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got))
		require.False(t, segmented(t, s, c))
		require.True(t, s.Has(c))
		require.False(t, s.Has(other), "the unpinned object made room for the join")
		require.Equal(t, int64(size), s.Stats().MemBytes)
		checkInvariants(t, s)
	})

	t.Run("pinned segments spill and restore", func(t *testing.T) {
		s := openStore(t, testConfig(t.TempDir(), size+2<<20, 0))
		c, _, err := s.PutStream(ctx, bytes.NewReader(data), 0)
		require.NoError(t, err)
		require.NoError(t, s.Pin(c))
		require.True(t, segmented(t, s, c))
		_, err = s.Put(ctx, obj(7, 4<<20)) // spills c
		require.NoError(t, err)
		st := s.Stats()
		require.Equal(t, uint64(1), st.Spilled)
		require.Equal(t, int64(size), st.DiskBytes)
		checkInvariants(t, s)
		got, err := s.Get(ctx, c)
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got))
		checkInvariants(t, s)
	})
}
