package store

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// blockFirstSpill makes the first spill write wait until release is
// closed, and signals entered when it starts waiting.
func blockFirstSpill(t *testing.T) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	hookSpillWrite = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	t.Cleanup(func() { hookSpillWrite = nil })
	return entered, release
}

func TestOperationsDuringSpill(t *testing.T) {
	var reput chan error
	tests := []struct {
		name   string
		during func(t *testing.T, s *Store, a cid.Cid)
		check  func(t *testing.T, s *Store, a cid.Cid)
	}{
		{"get served from memory", func(t *testing.T, s *Store, a cid.Cid) {
			got, err := s.Get(ctx, a)
			require.NoError(t, err)
			require.Equal(t, obj(1, 600), got)
			require.True(t, s.Has(a))
		}, func(t *testing.T, s *Store, a cid.Cid) {
			require.Equal(t, uint64(1), s.Stats().Spilled)
			require.Equal(t, 1, s.Stats().Pinned)
		}},
		{"unpin", func(t *testing.T, s *Store, a cid.Cid) {
			require.NoError(t, s.Unpin(a))
		}, func(t *testing.T, s *Store, a cid.Cid) {
			st := s.Stats()
			require.Equal(t, uint64(1), st.Spilled)
			require.Zero(t, st.Pinned)
			require.Equal(t, 1, st.DiskObjects)
		}},
		{"unpin and delete", func(t *testing.T, s *Store, a cid.Cid) {
			require.NoError(t, s.Unpin(a))
			require.NoError(t, s.Delete(a))
			require.False(t, s.Has(a))
			require.Zero(t, s.Stats().MemBytes)
		}, func(t *testing.T, s *Store, a cid.Cid) {
			require.False(t, s.Has(a))
			require.Empty(t, spillFiles(t, s.dir[:len(s.dir)-len("/objects")]))
			require.Zero(t, s.Stats().DiskObjects)
		}},
		{"delete and put again", func(t *testing.T, s *Store, a cid.Cid) {
			require.NoError(t, s.Unpin(a))
			require.NoError(t, s.Delete(a))
			// Memory is still reserved for the deleted, spilling copy: a
			// new copy waits for the spill to finish.
			waiting := make(chan struct{})
			hookSpillWait = func() { close(waiting); hookSpillWait = nil }
			t.Cleanup(func() { hookSpillWait = nil })
			reput = make(chan error, 1)
			go func() {
				_, err := s.Put(ctx, obj(1, 600))
				reput <- err
			}()
			<-waiting
		}, func(t *testing.T, s *Store, a cid.Cid) {
			require.NoError(t, <-reput)
			require.True(t, s.Has(a))
			got, err := s.Get(ctx, a)
			require.NoError(t, err)
			require.Equal(t, obj(1, 600), got)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir(), 1000, 0))
			a, err := s.Put(ctx, obj(1, 600))
			require.NoError(t, err)
			require.NoError(t, s.Pin(a))
			entered, release := blockFirstSpill(t)
			done := make(chan error, 1)
			go func() {
				_, err := s.Put(ctx, obj(2, 600)) // spills a
				done <- err
			}()
			<-entered
			tt.during(t, s, a)
			close(release)
			require.NoError(t, <-done)
			tt.check(t, s, a)
			require.Empty(t, tempFiles(t, s.dir[:len(s.dir)-len("/objects")]))
			checkInvariants(t, s)
		})
	}
}

func TestPutWaitsForInFlightSpill(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool
		wantErr error
	}{
		{"waits then succeeds", false, nil},
		{"wait canceled", true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir(), 1000, 0))
			a, err := s.Put(ctx, obj(1, 1000))
			require.NoError(t, err)
			require.NoError(t, s.Pin(a))
			entered, release := blockFirstSpill(t)
			first := make(chan error, 1)
			go func() {
				_, err := s.Put(ctx, obj(2, 500)) // spills a, blocked
				first <- err
			}()
			<-entered

			// Nothing is left to evict or spill: the second Put must wait.
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			waiting := make(chan struct{})
			hookSpillWait = func() {
				if tt.cancel {
					cancel()
				}
				close(waiting)
				hookSpillWait = nil
			}
			t.Cleanup(func() { hookSpillWait = nil })
			second := make(chan error, 1)
			go func() {
				_, err := s.Put(cctx, obj(3, 400))
				second <- err
			}()
			<-waiting
			if tt.cancel {
				require.ErrorIs(t, <-second, tt.wantErr)
				close(release)
			} else {
				close(release)
				require.NoError(t, <-second)
			}
			require.NoError(t, <-first)
			st := s.Stats()
			require.LessOrEqual(t, st.MemBytes, int64(1000))
			require.Equal(t, uint64(1), st.Spilled)
			checkInvariants(t, s)
		})
	}
}

func TestCloseWaitsForSpill(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir, 1000, 0))
	require.NoError(t, err)
	a, err := s.Put(ctx, obj(1, 600))
	require.NoError(t, err)
	require.NoError(t, s.Pin(a))
	entered, release := blockFirstSpill(t)
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, obj(2, 600))
		done <- err
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !s.isClosed() {
		runtime.Gosched()
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a spill was in flight")
	default:
	}
	close(release)
	putErr := <-done
	require.NoError(t, <-closed)
	// The spill completed (its file is kept); the put itself may have lost
	// the race with Close.
	if putErr != nil {
		require.ErrorIs(t, putErr, ErrClosed)
	}
	require.Equal(t, []string{a.String()}, spillFiles(t, dir))
	require.Empty(t, tempFiles(t, dir))
}
