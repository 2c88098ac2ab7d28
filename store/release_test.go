package store

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPutPinnedAndRelease(t *testing.T) {
	for _, tc := range []struct {
		name        string
		puts        int // PutPinned calls of the same bytes
		releases    int
		wantDeleted []bool
		wantHas     bool
	}{
		{"one put, one release", 1, 1, []bool{true}, false},
		{"two puts share one object", 2, 1, []bool{false}, true},
		{"two puts, two releases", 2, 2, []bool{false, true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir(), 1<<20, 0))
			data := obj(1, 100)
			var c = sum(data)
			for range tc.puts {
				got, err := s.PutPinned(ctx, data)
				require.NoError(t, err)
				require.Equal(t, c, got)
			}
			assert.Equal(t, 1, s.Stats().Pinned)
			for i := range tc.releases {
				deleted, err := s.Release(c)
				require.NoError(t, err)
				assert.Equal(t, tc.wantDeleted[i], deleted, "release %d", i+1)
			}
			assert.Equal(t, tc.wantHas, s.Has(c))
			checkInvariants(t, s)
		})
	}
	s := openStore(t, testConfig("", 1<<20, 0))
	c, err := s.Put(ctx, obj(2, 10))
	require.NoError(t, err)
	_, err = s.Release(c)
	require.ErrorIs(t, err, ErrNotPinned, "releasing an unpinned object is an error")
	_, err = s.Release(sum(obj(3, 10)))
	require.ErrorIs(t, err, ErrNotFound)
}

// TestPutPinnedReleaseRace runs PutPinned and Release of the same content
// from many goroutines: every holder that put the bytes must be able to
// read them until its own Release, which plain Put+Pin / Unpin+Delete
// cannot promise.
func TestPutPinnedReleaseRace(t *testing.T) {
	s := openStore(t, testConfig("", 1<<20, 0))
	data := obj(7, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				c, err := s.PutPinned(ctx, data)
				if !assert.NoError(t, err) {
					return
				}
				if _, err := s.Get(ctx, c); !assert.NoError(t, err, "pinned object vanished") {
					return
				}
				if _, err := s.Release(c); !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.False(t, s.Has(sum(data)), "the last release deletes the object")
	assert.Equal(t, 0, s.Stats().Pinned)
	checkInvariants(t, s)
}
