package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

func TestPutStream(t *testing.T) {
	const budget = 64 << 10
	tests := []struct {
		name     string
		size     int
		hint     int64
		dir      bool
		wantDisk bool
	}{
		{"empty unknown", 0, -1, false, false},
		{"empty exact", 0, 0, false, false},
		{"small unknown", 100, 0, false, false},
		{"small exact", 100, 100, false, false},
		{"small under hint", 100, 50, false, false},
		{"small over hint", 100, 5000, false, false},
		{"chunked unknown", 40 << 10, -1, false, false},
		{"exactly budget", budget, budget, false, false},
		{"exactly budget unknown", budget, -1, false, false},
		{"grows past budget", 3 * budget, -1, true, true},
		{"grows past under hint", 3 * budget, budget / 2, true, true},
		{"too big by hint", 3 * budget, 3 * budget, true, true},
		{"hint too big, data small", 1000, 3 * budget, true, true},
		{"big, multi-chunk", 3<<20 + 17, -1, true, true},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"dataerr":  iotest.DataErrReader,
		"onebyte?": func(r io.Reader) io.Reader { return r }, // replaced below for small sizes
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			if rname == "onebyte?" {
				if tt.size > 100<<10 {
					continue
				}
				wrap = iotest.OneByteReader
			}
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				dir := ""
				if tt.dir {
					dir = t.TempDir()
				}
				s := openStore(t, testConfig(dir, budget, 0))
				data := obj(uint64(tt.size), tt.size)
				c, n, err := s.PutStream(ctx, wrap(bytes.NewReader(data)), tt.hint)
				require.NoError(t, err)
				require.Equal(t, int64(tt.size), n)
				require.Equal(t, sum(data), c)
				st := s.Stats()
				require.Equal(t, 1, st.Objects)
				if tt.wantDisk {
					require.Equal(t, int64(tt.size), st.DiskBytes)
					require.Zero(t, st.MemBytes)
					require.Empty(t, tempFiles(t, dir))
				} else {
					require.Equal(t, int64(tt.size), st.MemBytes)
					// Any unused room kept (the budget being too small
					// to trim it) is accounted: see checkInvariants.
					s.mu.Lock()
					slack := s.objects[c].slack()
					s.mu.Unlock()
					require.LessOrEqual(t, slack, int64(budget-tt.size))
				}
				got, err := s.Get(ctx, c)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got))
				checkInvariants(t, s)
			})
		}
	}
}

// cancelReader yields data forever and cancels its context on the n-th Read.
type cancelReader struct {
	n      int
	cancel context.CancelFunc
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.n--
	if r.n == 0 {
		r.cancel()
	}
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func TestPutStreamFailuresStoreNothing(t *testing.T) {
	errRead := errors.New("connection reset")
	tests := []struct {
		name    string
		reader  func(cancel context.CancelFunc) io.Reader
		hint    int64
		wantErr error
	}{
		{"cancel in memory", func(cancel context.CancelFunc) io.Reader {
			return &cancelReader{n: 3, cancel: cancel}
		}, 1 << 20, context.Canceled},
		{"cancel on disk", func(cancel context.CancelFunc) io.Reader {
			return &cancelReader{n: 3, cancel: cancel}
		}, 16 << 20, context.Canceled},
		{"cancel unknown size", func(cancel context.CancelFunc) io.Reader {
			return iotest.HalfReader(&cancelReader{n: 40, cancel: cancel})
		}, -1, context.Canceled},
		{"read error in memory", func(context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(obj(1, 1000)), iotest.ErrReader(errRead))
		}, -1, errRead},
		{"read error on disk", func(context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(obj(1, 5<<20)), iotest.ErrReader(errRead))
		}, 5 << 20, errRead},
		{"read error with data", func(context.CancelFunc) io.Reader {
			return iotest.TimeoutReader(bytes.NewReader(obj(1, 5<<20)))
		}, 5 << 20, iotest.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, testConfig(dir, 4<<20, 0))
			keep, err := s.Put(ctx, obj(9, 100))
			require.NoError(t, err)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, _, err = s.PutStream(cctx, tt.reader(cancel), tt.hint)
			require.ErrorIs(t, err, tt.wantErr)
			requireNoWorkers(t)
			st := s.Stats()
			require.Equal(t, 1, st.Objects)
			require.True(t, s.Has(keep))
			require.Equal(t, int64(100), st.MemBytes)
			require.Zero(t, st.DiskBytes)
			require.Empty(t, tempFiles(t, dir))
			require.Empty(t, spillFiles(t, dir))
			checkInvariants(t, s) // reservations released
		})
	}
}

func TestPutStreamCanceledBeforeStart(t *testing.T) {
	s := openStore(t, testConfig("", 1<<20, 0))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err := s.PutStream(cctx, bytes.NewReader([]byte("x")), 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Put(cctx, []byte("x"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Get(cctx, sum([]byte("x")))
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, s.Stats().Objects)
}

// allocated returns the bytes allocated while running f.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestPutStreamAllocatesOneCopy(t *testing.T) {
	const size = 16 << 20
	data := obj(1, size)
	tests := []struct {
		name     string
		budget   int64
		hint     int64
		maxAlloc uint64
	}{
		{"memory, exact hint: one buffer", 64 << 20, size, size + size/8},
		{"memory, unknown size: segments, no copies", 64 << 20, -1, size + maxSeg},
		{"disk: streamed, not loaded", 4 << 20, size, (pipeDepth + 1) << 20},
		{"disk, grows past budget", 4 << 20, -1, 12 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir(), tt.budget, 0))
			var err error
			got := allocated(func() {
				_, _, err = s.PutStream(ctx, bytes.NewReader(data), tt.hint)
			})
			require.NoError(t, err)
			require.LessOrEqual(t, got, tt.maxAlloc, "allocated %d MiB", got>>20)
			t.Logf("allocated %.1f MiB for a %d MiB stream", float64(got)/(1<<20), size>>20)
		})
	}
}

func TestPutDoesNotCopy(t *testing.T) {
	s := openStore(t, testConfig("", 64<<20, 0))
	data := obj(1, 8<<20)
	var c interface{ String() string }
	got := allocated(func() {
		cc, err := s.Put(ctx, data)
		require.NoError(t, err)
		c = cc
	})
	require.Less(t, got, uint64(64<<10), "Put allocated %d bytes", got)
	require.NotEmpty(t, c.String())
}

func TestPutAdoptsSpilledObject(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir, 1000, 0))
	a := obj(1, 600)
	c, err := s.Put(ctx, a)
	require.NoError(t, err)
	require.NoError(t, s.Pin(c))
	b, err := s.Put(ctx, obj(2, 600)) // spills a
	require.NoError(t, err)
	require.NoError(t, s.Delete(b))
	require.Zero(t, s.Stats().MemBytes)
	a2 := bytes.Clone(a)
	_, err = s.Put(ctx, a2)
	require.NoError(t, err)
	st := s.Stats()
	require.Equal(t, int64(600), st.MemBytes, "the new copy is kept in memory")
	require.Equal(t, 1, st.DiskObjects, "the file stays")
	got, err := s.Get(ctx, c)
	require.NoError(t, err)
	require.Same(t, &a2[0], &got[0])
	checkInvariants(t, s)
}

func TestStreamVerifiedMismatchOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir, 1<<20, 0))
	want := sum(obj(1, 3<<20))
	n, err := s.PutStreamVerified(ctx, want, bytes.NewReader(obj(2, 3<<20)), -1)
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	requireNoWorkers(t)
	require.Equal(t, int64(3<<20), n)
	require.Equal(t, sum(obj(2, 3<<20)), me.Got)
	require.Zero(t, s.Stats().Objects)
	require.Empty(t, tempFiles(t, dir))
	require.Empty(t, spillFiles(t, dir))
	checkInvariants(t, s)
	require.Contains(t, me.Error(), "want "+want.String())
}

// blockingReader yields n bytes, then signals blocked and waits for
// unblock before reporting io.EOF.
type blockingReader struct {
	n                int
	blocked, unblock chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		close(r.blocked)
		<-r.unblock
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestCloseDoesNotWaitForBlockedStream(t *testing.T) {
	for _, hint := range []int64{-1, 8 << 20} { // memory, disk
		dir := t.TempDir()
		s, err := Open(testConfig(dir, 4<<20, 0))
		require.NoError(t, err)
		r := &blockingReader{n: 3 << 20, blocked: make(chan struct{}), unblock: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, _, err := s.PutStream(ctx, r, hint)
			done <- err
		}()
		<-r.blocked
		require.NoError(t, s.Close())
		close(r.unblock)
		require.ErrorIs(t, <-done, ErrClosed)
		requireNoWorkers(t)
		require.Empty(t, tempFiles(t, dir))
		require.Empty(t, spillFiles(t, dir))
	}
}
