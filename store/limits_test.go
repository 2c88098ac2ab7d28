package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFullWhenMemoryAndDiskArePinned fills the memory budget and the disk
// budget with pinned objects, which can be neither evicted nor spilled:
// the next object fails with ErrFull, and the error names the object, both
// budgets and what to do. Nothing already stored is lost, and the store
// takes objects again once refs are released.
func TestFullWhenMemoryAndDiskArePinned(t *testing.T) {
	const (
		memBudget  = 1000
		diskBudget = 1500
		size       = 250 // 4 objects fill memory, 6 fill the disk
	)
	tests := []struct {
		name string
		pin  func(s *Store, data []byte) (cid.Cid, error)
		next int // size of the object that no longer fits
	}{
		{"PutPinned, small object", func(s *Store, data []byte) (cid.Cid, error) { return s.PutPinned(ctx, data) }, size},
		{"Put then Pin, small object", func(s *Store, data []byte) (cid.Cid, error) {
			c, err := s.Put(ctx, data)
			if err != nil {
				return c, err
			}
			return c, s.Pin(c)
		}, size},
		{"object larger than memory", func(s *Store, data []byte) (cid.Cid, error) { return s.PutPinned(ctx, data) }, memBudget + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, testConfig(dir, memBudget, diskBudget))
			var stored []cid.Cid
			var err error
			for i := range 20 {
				var c cid.Cid
				if c, err = tt.pin(s, obj(uint64(i), size)); err != nil {
					break
				}
				stored = append(stored, c)
				checkInvariants(t, s)
			}
			require.ErrorIs(t, err, ErrFull, "the 11th pinned object fits nowhere")
			require.Len(t, stored, 10, "4 objects in memory + 6 on disk")
			before := s.Stats()
			require.Equal(t, int64(memBudget), before.MemBytes)
			require.Equal(t, int64(diskBudget), before.DiskBytes)

			next := obj(1000, tt.next)
			want := sum(next)
			_, err = s.Put(ctx, next)
			require.ErrorIs(t, err, ErrFull)
			msg := err.Error()
			for _, part := range []string{
				want.String(),                            // the object
				strconv.Itoa(tt.next) + " bytes",         // its size
				"memory budget of 1000 bytes",            // both budgets
				"disk budget of 1500 bytes",              //
				"1500 bytes by pinned spill files",       // what takes the disk
				"release refs", "--memory", "DiskBudget", // what to do
			} {
				assert.Contains(t, msg, part)
			}
			if tt.next <= memBudget {
				assert.Contains(t, msg, "1000 bytes by pinned objects", "what takes memory")
			} else {
				assert.Contains(t, msg, "larger than the whole memory budget")
			}
			t.Log(msg)

			// A failed Put changes nothing and leaves no file behind.
			assert.False(t, s.Has(want))
			_, _, err = s.PutStream(ctx, bytes.NewReader(next), -1)
			require.ErrorIs(t, err, ErrFull, "PutStream, unknown size")
			assert.Contains(t, err.Error(), "disk budget of 1500 bytes")
			_, _, err = s.PutStream(ctx, bytes.NewReader(next), int64(len(next)))
			require.ErrorIs(t, err, ErrFull, "PutStream, exact size")
			require.ErrorIs(t, s.PutVerified(ctx, want, next), ErrFull)
			after := s.Stats()
			assert.Equal(t, before.Objects, after.Objects)
			assert.Equal(t, before.MemBytes, after.MemBytes)
			assert.Equal(t, before.DiskBytes, after.DiskBytes)
			assert.Empty(t, tempFiles(t, dir))
			assert.Len(t, spillFiles(t, dir), 6)
			checkInvariants(t, s)

			// Nothing stored earlier is lost; putting one again is a no-op.
			for i, c := range stored {
				got, err := s.Get(ctx, c)
				require.NoError(t, err, "object %d", i)
				require.Equal(t, obj(uint64(i), size), got, "object %d", i)
			}
			_, err = s.Put(ctx, obj(0, size))
			require.NoError(t, err, "an object the store holds is not refused")
			checkInvariants(t, s)

			// Releasing refs makes room again.
			for _, c := range stored[:5] {
				_, err := s.Release(c)
				require.NoError(t, err)
			}
			c, err := s.Put(ctx, next)
			require.NoError(t, err)
			assert.Equal(t, want, c)
			checkInvariants(t, s)
		})
	}
}

// TestConcurrentLoadHonorsBothBudgets runs owners that PutPinned, Get,
// Unpin and Release objects, and writers of unpinned objects and streams,
// all at once against small memory and disk budgets, while a sampler reads
// Stats: MemBytes never exceeds MemoryBudget and DiskBytes never exceeds
// DiskBudget. Every pinned object reads back intact until its owner lets
// it go; the only error allowed is ErrFull (the owners may hold more than
// both budgets together at a peak).
func TestConcurrentLoadHonorsBothBudgets(t *testing.T) {
	const (
		memBudget  = 64 << 10
		diskBudget = 128 << 10
		workers    = 8
		rounds     = 400
		held       = 3 // pinned objects an owner holds at most
	)
	dir := t.TempDir()
	s := openStore(t, testConfig(dir, memBudget, diskBudget))

	var (
		stop    = make(chan struct{})
		samples atomic.Int64
		full    atomic.Int64
		sampler sync.WaitGroup
	)
	var sampleErr error
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := s.Stats()
			samples.Add(1)
			if st.MemBytes > memBudget || st.DiskBytes > diskBudget {
				sampleErr = fmt.Errorf("MemBytes %d (budget %d), DiskBytes %d (budget %d)",
					st.MemBytes, memBudget, st.DiskBytes, diskBudget)
				return
			}
			runtime.Gosched()
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			type pinnedObj struct {
				c    cid.Cid
				seed uint64
				size int
			}
			var mine []pinnedObj
			fail := func(err error) { errs <- fmt.Errorf("worker %d: %w", w, err) }
			for i := range rounds {
				seed := uint64(w*rounds + i)
				size := 512 + rng.IntN(8<<10)
				switch op := rng.IntN(10); {
				case op < 5: // an owner's object: pinned until released
					c, err := s.PutPinned(ctx, obj(seed, size))
					if errors.Is(err, ErrFull) {
						full.Add(1)
						break
					}
					if err != nil {
						fail(err)
						return
					}
					mine = append(mine, pinnedObj{c, seed, size})
				case op < 7: // a cached value, or a large one straight to disk
					if rng.IntN(20) == 0 {
						size = memBudget + 1 + rng.IntN(memBudget/2)
					}
					var c cid.Cid
					var err error
					if op == 5 {
						c, err = s.Put(ctx, obj(seed, size))
					} else {
						c, _, err = s.PutStream(ctx, bytes.NewReader(obj(seed, size)), -1)
					}
					switch {
					case errors.Is(err, ErrFull):
						full.Add(1)
					case err != nil:
						fail(err)
						return
					default:
						got, gerr := s.Get(ctx, c)
						if gerr != nil && !errors.Is(gerr, ErrNotFound) { // evicted meanwhile
							fail(gerr)
							return
						}
						if gerr == nil && !bytes.Equal(got, obj(seed, size)) {
							fail(fmt.Errorf("unpinned %s read back wrong", c))
							return
						}
					}
				default: // read back one of ours
					if len(mine) == 0 {
						break
					}
					p := mine[rng.IntN(len(mine))]
					got, err := s.Get(ctx, p.c)
					if err != nil {
						fail(fmt.Errorf("pinned object lost: %w", err))
						return
					}
					if !bytes.Equal(got, obj(p.seed, p.size)) {
						fail(fmt.Errorf("pinned %s read back wrong", p.c))
						return
					}
				}
				for len(mine) > held {
					p := mine[0]
					mine = mine[1:]
					var err error
					if rng.IntN(3) == 0 {
						err = s.Unpin(p.c) // its spill file, if any, becomes evictable
					} else {
						_, err = s.Release(p.c)
					}
					if err != nil {
						fail(err)
						return
					}
				}
				if st := s.Stats(); st.MemBytes > memBudget || st.DiskBytes > diskBudget {
					fail(fmt.Errorf("MemBytes %d (budget %d), DiskBytes %d (budget %d)",
						st.MemBytes, memBudget, st.DiskBytes, diskBudget))
					return
				}
			}
			for _, p := range mine {
				got, err := s.Get(ctx, p.c)
				if err != nil || !bytes.Equal(got, obj(p.seed, p.size)) {
					fail(fmt.Errorf("pinned %s lost or wrong at the end: %v", p.c, err))
					return
				}
				if _, err := s.Release(p.c); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, sampleErr)

	st := s.Stats()
	t.Logf("%d Stats samples; %d puts refused with ErrFull; %+v", samples.Load(), full.Load(), st)
	assert.Positive(t, samples.Load())
	assert.LessOrEqual(t, st.MemBytes, int64(memBudget))
	assert.LessOrEqual(t, st.DiskBytes, int64(diskBudget))
	assert.Positive(t, st.Evicted, "the load never made the store evict")
	assert.Positive(t, st.Spilled, "the load never made the store spill")
	assert.Positive(t, st.DiskEvicted, "the load never made the store evict spill files")
	assert.Zero(t, st.Pinned, "every owner released its objects")
	assert.Empty(t, tempFiles(t, dir))
	checkInvariants(t, s)
}
