package store

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

// pipeWorkers returns the number of goroutines running a stream's workers
// (hashers and spill file writers).
func pipeWorkers() int {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("store.(*stage).loop("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// requireNoWorkers fails unless every stream worker has exited. A worker
// may still be unwinding when PutStream returns, so it polls (yielding,
// not sleeping) until a deadline.
func requireNoWorkers(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); pipeWorkers() > 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			require.Zero(t, pipeWorkers(), "stream workers leaked")
		}
	}
}

// burstyReader returns a reader of data fed from another goroutine through
// an io.Pipe in writes of 32 KiB to 256 KiB, as a network stream delivers
// them. The feeder stops when the reader is closed by the test's end.
func burstyReader(t *testing.T, data []byte) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pr.Close() })
	go func() {
		x := uint64(len(data)) | 1
		for len(data) > 0 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			k := min(len(data), 32<<10+int(x%(224<<10)))
			if _, err := pw.Write(data[:k]); err != nil {
				return
			}
			data = data[k:]
		}
		_ = pw.Close()
	}()
	return pr
}

// TestPutStreamVerifiedPipe stores streams that take each path of the
// hashing pipeline (hashed inline; on the worker from the first byte, or
// from the second MiB; in memory, to disk, and from memory to disk) from
// readers of several shapes, and checks that a right CID stores the
// object, a wrong one stores nothing, and no worker outlives the call.
func TestPutStreamVerifiedPipe(t *testing.T) {
	const big = 6<<20 + 3
	tests := []struct {
		name     string
		size     int
		hint     int64
		budget   int64
		dir      bool
		wantDisk bool
	}{
		{"small, inline", 100 << 10, 100 << 10, 64 << 20, false, false},
		{"memory, exact hint", big, big, 64 << 20, false, false},
		{"memory, unknown size", big, -1, 64 << 20, false, false},
		{"memory, hint understated", big, 2 << 20, 64 << 20, false, false},
		{"disk, exact hint", big, big, 4 << 20, true, true},
		{"memory then disk", big, -1, 4 << 20, true, true},
	}
	readers := []struct {
		name string
		wrap func(t *testing.T, data []byte) io.Reader
	}{
		{"plain", func(_ *testing.T, data []byte) io.Reader { return bytes.NewReader(data) }},
		{"half", func(_ *testing.T, data []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{"bursty", burstyReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			for _, match := range []bool{true, false} {
				name := tt.name + "/" + rd.name + "/match"
				if !match {
					name = tt.name + "/" + rd.name + "/mismatch"
				}
				t.Run(name, func(t *testing.T) {
					dir := ""
					if tt.dir {
						dir = t.TempDir()
					}
					s := openStore(t, testConfig(dir, tt.budget, 0))
					data := obj(uint64(tt.size), tt.size)
					want := sum(data)
					if !match {
						want = sum(obj(1, 10))
					}
					n, err := s.PutStreamVerified(ctx, want, rd.wrap(t, data), tt.hint)
					requireNoWorkers(t)
					require.Equal(t, int64(tt.size), n)
					st := s.Stats()
					if !match {
						var me *MismatchError
						require.ErrorAs(t, err, &me)
						require.ErrorIs(t, err, ErrMismatch)
						require.Equal(t, sum(data), me.Got)
						require.Zero(t, st.Objects, "a mismatch stores nothing")
					} else {
						require.NoError(t, err)
						require.Equal(t, 1, st.Objects)
						if tt.wantDisk {
							require.Equal(t, int64(tt.size), st.DiskBytes)
						} else {
							require.Equal(t, int64(tt.size), st.MemBytes)
						}
						got, err := s.Get(ctx, want)
						require.NoError(t, err)
						require.True(t, bytes.Equal(data, got))
					}
					if dir != "" {
						require.Empty(t, tempFiles(t, dir))
					}
					checkInvariants(t, s)
				})
			}
		}
	}
}

// eofReader reads r and calls atEOF once, from the Read that reports
// io.EOF.
type eofReader struct {
	r     io.Reader
	atEOF func()
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && e.atEOF != nil {
		e.atEOF()
		e.atEOF = nil
	}
	return n, err
}

// TestPutStreamReaderRunsAheadOfHasher blocks the hashing worker and
// checks that a stream going to memory is still read to its end: the
// reader does not wait for the hasher (a slow hasher must not stall the
// network), and the object is stored once the hasher catches up.
func TestPutStreamReaderRunsAheadOfHasher(t *testing.T) {
	tests := []struct {
		name      string
		hint      int64
		wantCalls int // items the worker hashes; 0: not checked
	}{
		{"exact hint: on the worker from the first MiB", 8 << 20, 8},
		{"unknown size: on the worker after the first MiB", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig("", 64<<20, 0))
			data := obj(3, 8<<20)
			entered, release := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { // on failure too: let the stream finish
				select {
				case <-release:
				default:
					close(release)
				}
			})
			var calls int
			hookPipeItem = func(*pipe) {
				if calls++; calls == 1 {
					close(entered)
					<-release
				}
			}
			t.Cleanup(func() { hookPipeItem = nil })
			eof := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, _, err := s.PutStream(ctx, &eofReader{r: bytes.NewReader(data), atEOF: func() { close(eof) }}, tt.hint)
				done <- err
			}()
			<-entered
			select {
			case <-eof:
			case err := <-done:
				t.Fatalf("PutStream returned while its hasher was blocked: %v", err)
			case <-time.After(10 * time.Second): // a guard, not a wait: eof comes at once
				t.Fatal("the reader waited for the blocked hasher")
			}
			close(release)
			require.NoError(t, <-done)
			if tt.wantCalls > 0 {
				require.Equal(t, tt.wantCalls, calls)
			}
			got, err := s.Get(ctx, sum(data))
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
			requireNoWorkers(t)
			checkInvariants(t, s)
		})
	}
}

// TestPutStreamAbortsWhileHashing cancels a stream, or closes its store,
// after all its bytes were read but while the hasher is behind: the call
// fails without waiting for the hasher to hash the rest, stores nothing
// and leaves no worker behind.
func TestPutStreamAbortsWhileHashing(t *testing.T) {
	tests := []struct {
		name    string
		abort   func(cancel context.CancelFunc, s *Store)
		wantErr error
	}{
		{"cancel", func(cancel context.CancelFunc, _ *Store) { cancel() }, context.Canceled},
		{"close", func(_ context.CancelFunc, s *Store) { require.NoError(t, s.Close()) }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig("", 64<<20, 0))
			data := obj(4, 8<<20)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			entered, aborted := make(chan struct{}), make(chan struct{})
			var calls int
			hookPipeItem = func(pp *pipe) {
				calls++
				if calls > 1 {
					return
				}
				// Hold the first MiB until the stream was aborted and
				// the reader told the worker to stop.
				close(entered)
				<-aborted
				deadline := time.Now().Add(10 * time.Second) // a guard: stop comes at once
				for !pp.stop.Load() && time.Now().Before(deadline) {
					runtime.Gosched()
				}
			}
			t.Cleanup(func() { hookPipeItem = nil })
			r := &eofReader{r: bytes.NewReader(data), atEOF: func() {
				<-entered // the worker is on the first MiB
				tt.abort(cancel, s)
				close(aborted)
			}}
			n, err := s.PutStreamVerified(cctx, sum(data), r, int64(len(data)))
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, int64(len(data)), n)
			require.Equal(t, 1, calls, "the worker dropped the 7 MiB it had not hashed")
			requireNoWorkers(t)
			if tt.wantErr != ErrClosed {
				require.Zero(t, s.Stats().Objects)
				checkInvariants(t, s)
			}
		})
	}
}
