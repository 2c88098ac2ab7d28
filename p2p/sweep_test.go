package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeNet is a simulated DHT: GetClosestPeers answers exactly, by brute force.
type fakeNet struct {
	self  peer.ID
	peers []peer.ID
	keys  []kadKey
	k     int

	calls atomic.Int64
	rt    atomic.Int64 // routing table size reported
	mu    sync.Mutex
	err   error // returned by GetClosestPeers when set
}

func newFakeNet(n, k int) *fakeNet {
	f := &fakeNet{self: "self", k: k}
	for i := range n {
		p := peer.ID(fmt.Sprintf("peer-%d-of-%d", i, n))
		f.peers = append(f.peers, p)
		f.keys = append(f.keys, peerKadKey(p))
	}
	f.rt.Store(int64(min(n, 20)))
	return f
}

func (f *fakeNet) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeNet) GetClosestPeers(ctx context.Context, key string) ([]peer.ID, error) {
	f.calls.Add(1)
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return f.closest(kadKeyOf([]byte(key))), nil
}

// closest returns the k peers closest to t, by insertion into a sorted list.
func (f *fakeNet) closest(t kadKey) []peer.ID {
	var best []int
	for i := range f.peers {
		if len(best) == f.k && !closer(t, f.keys[i], f.keys[best[len(best)-1]]) {
			continue
		}
		at := len(best)
		for at > 0 && closer(t, f.keys[i], f.keys[best[at-1]]) {
			at--
		}
		best = slices.Insert(best, at, i)
		if len(best) > f.k {
			best = best[:f.k]
		}
	}
	out := make([]peer.ID, len(best))
	for i, b := range best {
		out[i] = f.peers[b]
	}
	return out
}

func testKeys(n int, seed string) []sweepKey {
	out := make([]sweepKey, n)
	for i := range out {
		c := testCID(fmt.Sprintf("%s-%d", seed, i))
		out[i] = sweepKey{key: c.Hash(), kad: kadKeyOf(c.Hash())}
	}
	return out
}

func testCID(s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func newTestSweeper(f *fakeNet) *sweeper {
	return &sweeper{router: f, k: f.k, lookups: func() {}, now: time.Now}
}

func TestSweepPlacesRecordsOnTheClosestPeers(t *testing.T) {
	tests := []struct {
		name       string
		peers, k   int
		keys       int
		maxLookups int // for the whole batch
	}{
		{"fewer peers than k", 4, 20, 1000, 1},
		{"exactly k peers", 20, 20, 1000, 2},
		{"200 peers", 200, 20, 3000, 60},
		{"1000 peers", 1000, 20, 3000, 250},
		{"small k, deep regions", 300, 3, 2000, 400},
		{"a few keys: one lookup each", 500, 20, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNet(tt.peers, tt.k)
			s := newTestSweeper(f)
			keys := testKeys(tt.keys, tt.name)
			plan, err := s.plan(context.Background(), keys, int(f.rt.Load()))
			require.NoError(t, err)
			require.Len(t, plan, len(keys))
			lookups := int(f.calls.Load())
			t.Logf("%d keys, %d peers, k=%d: %d lookups", tt.keys, tt.peers, tt.k, lookups)
			assert.LessOrEqual(t, lookups, tt.maxLookups)
			for i, k := range keys {
				want := f.closest(k.kad)
				assert.ElementsMatch(t, want, plan[i], "key %d", i)
			}

			// The regions are cached: the same keys again cost no lookup.
			before := f.calls.Load()
			again, err := s.plan(context.Background(), keys, int(f.rt.Load()))
			require.NoError(t, err)
			if tt.keys > 10 {
				assert.Equal(t, before, f.calls.Load(), "cached regions")
			}
			for i := range keys {
				assert.ElementsMatch(t, plan[i], again[i])
			}
		})
	}
}

func TestSweepRegionCacheInvalidation(t *testing.T) {
	f := newFakeNet(5, 20)
	s := newTestSweeper(f)
	keys := testKeys(100, "inval")
	_, err := s.plan(context.Background(), keys, 5)
	require.NoError(t, err)
	require.EqualValues(t, 1, f.calls.Load())

	_, err = s.plan(context.Background(), keys, 6)
	require.NoError(t, err)
	assert.EqualValues(t, 2, f.calls.Load(), "the routing table grew: explore again")

	s.cache.dropPeer(f.peers[0])
	_, err = s.plan(context.Background(), keys, 6)
	require.NoError(t, err)
	assert.EqualValues(t, 3, f.calls.Load(), "a failed peer drops the regions holding it")

	now := time.Now().Add(regionTTL + 1)
	s.now = func() time.Time { return now }
	_, err = s.plan(context.Background(), keys, 6)
	require.NoError(t, err)
	assert.EqualValues(t, 4, f.calls.Load(), "regions expire")
}

func TestSweepLookupFailure(t *testing.T) {
	f := newFakeNet(50, 20)
	f.setErr(errors.New("boom"))
	s := newTestSweeper(f)
	plan, err := s.plan(context.Background(), testKeys(10, "fail"), 20)
	require.ErrorContains(t, err, "boom")
	assert.EqualValues(t, 1, f.calls.Load(), "planning stops at the first failed lookup")
	for _, ps := range plan {
		assert.Nil(t, ps)
	}
}

func TestRTStable(t *testing.T) {
	for _, tc := range []struct {
		then, now int
		want      bool
	}{
		{5, 5, true}, {5, 6, false}, {5, 4, false}, {100, 110, true}, {100, 89, false}, {0, 1, false},
	} {
		assert.Equal(t, tc.want, rtStable(tc.then, tc.now), "%d -> %d", tc.then, tc.now)
	}
}

func TestKeyspaceHelpers(t *testing.T) {
	var a, b kadKey
	assert.Equal(t, 256, cpl(a, b))
	b[0] = 0x80
	assert.Equal(t, 0, cpl(a, b))
	b[0], b[1] = 0, 0x01
	assert.Equal(t, 15, cpl(a, b))
	assert.Equal(t, kadKey{0x40}, flipBit(kadKey{}, 1))
	assert.Equal(t, kadKey{0, 0x01}, flipBit(kadKey{}, 15))

	var t0, near, far kadKey
	near[1], far[0] = 1, 1
	assert.True(t, closer(t0, near, far))
	assert.False(t, closer(t0, far, near))
	assert.False(t, closer(t0, near, near))

	for bits := range 13 {
		want := prefix{key: kadKeyOf(fmt.Appendf(nil, "p%d", bits)), bits: bits}
		s, at, ok := lookupTarget(want)
		require.True(t, ok, "%d bits", bits)
		assert.Equal(t, kadKeyOf([]byte(s)), at)
		assert.True(t, want.contains(at), "%d bits", bits)
	}
	_, _, ok := lookupTarget(prefix{bits: sweepMaxTargetBits + 1})
	assert.False(t, ok, "too deep to search")
}

// fakeSender records the provider records it is sent.
type fakeSender struct {
	mu      sync.Mutex
	got     map[peer.ID]map[string]int
	fail    map[peer.ID]bool
	failAll bool
}

func newFakeSender() *fakeSender {
	return &fakeSender{got: map[peer.ID]map[string]int{}, fail: map[peer.ID]bool{}}
}

func (s *fakeSender) SendRecords(ctx context.Context, p peer.ID, keys [][]byte, self peer.AddrInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAll || s.fail[p] {
		return errors.New("peer unreachable")
	}
	if len(self.Addrs) == 0 || self.ID == "" {
		return errors.New("provider without addresses")
	}
	if s.got[p] == nil {
		s.got[p] = map[string]int{}
	}
	for _, k := range keys {
		s.got[p][string(k)]++
	}
	return nil
}

// holders returns the peers that got a record for key.
func (s *fakeSender) holders(key []byte) []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []peer.ID
	for p, keys := range s.got {
		if keys[string(key)] > 0 {
			out = append(out, p)
		}
	}
	return out
}
