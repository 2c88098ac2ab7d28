package p2p

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newFakeAnnouncer returns an announcer on a simulated DHT; workers 0 means none run.
func newFakeAnnouncer(t *testing.T, f *fakeNet, s *fakeSender, bound, workers int) (*announcer, *atomic.Int64) {
	t.Helper()
	var local atomic.Int64
	a := newAnnouncer(announceDeps{
		self:      f.self,
		k:         f.k,
		router:    f,
		sender:    s,
		addLocal:  func(context.Context, []byte) error { local.Add(1); return nil },
		selfAddrs: func() []ma.Multiaddr { return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")} },
		rtSize:    func() int { return int(f.rt.Load()) },
		protect:   func(peer.ID, string, bool) {},
	}, bound, workers, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a.retryBase, a.noPeersMin, a.noPeersMax = time.Millisecond, time.Millisecond, 5*time.Millisecond
	a.start()
	t.Cleanup(a.close)
	return a, &local
}

func cids(prefix string, n int) []cid.Cid {
	out := make([]cid.Cid, n)
	for i := range out {
		out[i] = testCID(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func queued(a *announcer) []cid.Cid {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []cid.Cid
	for i := range a.queue.len() {
		out = append(out, a.queue.buf[(a.queue.head+i)%len(a.queue.buf)].c)
	}
	return out
}

func TestAnnounceQueue(t *testing.T) {
	c := cids("q", 6)
	tests := []struct {
		name   string
		bound  int
		recent int
		run    func(a *announcer)
		want   []cid.Cid // queued, oldest first
		stats  AnnounceStats
	}{
		{
			name: "duplicates coalesce",
			run:  func(a *announcer) { a.announce([]cid.Cid{c[0], c[1], c[0]}); a.announce(c[1:2]) },
			want: c[:2], stats: AnnounceStats{Queued: 2, Coalesced: 2},
		},
		{
			name: "a full backlog drops the oldest", bound: 3,
			run:  func(a *announcer) { a.announce(c[:5]) },
			want: c[2:5], stats: AnnounceStats{Queued: 3, Dropped: 2},
		},
		{
			name: "a dropped CID can be queued again", bound: 2,
			run:  func(a *announcer) { a.announce(c[:3]); a.announce(c[:1]) },
			want: []cid.Cid{c[2], c[0]}, stats: AnnounceStats{Queued: 2, Dropped: 2},
		},
		{
			name: "undefined CIDs fail",
			run:  func(a *announcer) { a.announce([]cid.Cid{cid.Undef, c[0]}) },
			want: c[:1], stats: AnnounceStats{Queued: 1, Failed: 1},
		},
		{
			name: "in flight and recently announced CIDs coalesce; reprovides do not",
			run: func(a *announcer) {
				a.announce(c[:2])
				batch := a.take()
				a.announce(c[:2]) // in flight
				a.settle(batch[:1], batch[1:], nil)
				a.announce(c[:2]) // c0 announced recently, c1 failed: queued again
				a.mu.Lock()
				a.enqueueLocked(c[0], true) // a reprovide
				a.enqueueLocked(c[1], true) // already queued
				a.mu.Unlock()
			},
			want:  []cid.Cid{c[1], c[0]},
			stats: AnnounceStats{Queued: 2, Announced: 1, Failed: 1, Coalesced: 4},
		},
		{
			name: "only the last announced are remembered", recent: 2,
			run: func(a *announcer) {
				a.announce(c[:3])
				a.settle(a.take(), nil, nil)
				a.announce(c[:3])
			},
			want:  c[:1],
			stats: AnnounceStats{Queued: 1, Announced: 3, Coalesced: 2},
		},
		{
			name: "dropped in flight (closing) are forgotten",
			run: func(a *announcer) {
				a.announce(c[:2])
				a.settle(nil, nil, a.take())
				a.announce(c[:1])
			},
			want:  c[:1],
			stats: AnnounceStats{Queued: 1, Dropped: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound := tt.bound
			if bound == 0 {
				bound = 100
			}
			a, _ := newFakeAnnouncer(t, newFakeNet(5, 20), newFakeSender(), bound, 0)
			if tt.recent > 0 {
				a.recent = tt.recent
			}
			tt.run(a)
			assert.Equal(t, tt.want, queued(a))
			assert.Equal(t, tt.stats, a.stats())
		})
	}
}

func TestAnnounceSendsEachRecordToItsClosestPeers(t *testing.T) {
	tests := []struct {
		name     string
		peers, k int
	}{
		{"small network", 6, 20},
		{"300 peers", 300, 20},
		{"small k", 100, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, s := newFakeNet(tt.peers, tt.k), newFakeSender()
			a, local := newFakeAnnouncer(t, f, s, 1<<16, 3)
			cs := cids(tt.name, 3000)
			a.announce(cs[:1]) // a batch of one
			a.announce(cs[1:]) // and one of the rest
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, a.flush(ctx))
			st := a.stats()
			assert.Equal(t, AnnounceStats{
				Announced: 3000, Lookups: st.Lookups, Records: uint64(3000 * min(tt.k, tt.peers)),
			}, st)
			assert.EqualValues(t, 3000, local.Load(), "a local record each")
			assert.Less(t, st.Lookups, uint64(300), "batched: far fewer lookups than CIDs")
			for _, c := range cs {
				assert.ElementsMatch(t, f.closest(kadKeyOf(c.Hash())), s.holders(c.Hash()), "holders of %s", c)
			}
		})
	}
}

func TestAnnounceFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("every peer fails", func(t *testing.T) {
		f, s := newFakeNet(5, 20), newFakeSender()
		s.failAll = true
		a, _ := newFakeAnnouncer(t, f, s, 100, 2)
		a.announce(cids("fail", 10))
		require.NoError(t, a.flush(ctx))
		st := a.stats()
		assert.EqualValues(t, 10, st.Failed)
		assert.Zero(t, st.Announced)
		assert.GreaterOrEqual(t, st.Lookups, uint64(announceMaxAttempts), "each attempt looks again (the failed peers' regions were dropped)")
		s.mu.Lock()
		s.failAll = false
		s.mu.Unlock()
		a.announce(cids("fail", 10))
		require.NoError(t, a.flush(ctx))
		assert.EqualValues(t, 10, a.stats().Announced, "failed CIDs are not remembered as announced")
	})
	t.Run("one peer fails", func(t *testing.T) {
		f, s := newFakeNet(5, 20), newFakeSender()
		s.fail[f.peers[2]] = true
		a, _ := newFakeAnnouncer(t, f, s, 100, 1)
		cs := cids("one", 50)
		a.announce(cs)
		require.NoError(t, a.flush(ctx))
		assert.EqualValues(t, 50, a.stats().Announced)
		assert.Len(t, s.holders(cs[0].Hash()), 4)
	})
	t.Run("lookups fail", func(t *testing.T) {
		f, s := newFakeNet(5, 20), newFakeSender()
		f.setErr(fmt.Errorf("no route"))
		a, _ := newFakeAnnouncer(t, f, s, 100, 1)
		a.announce(cids("lookup", 20))
		require.NoError(t, a.flush(ctx))
		st := a.stats()
		assert.EqualValues(t, 20, st.Failed)
		assert.EqualValues(t, announceMaxAttempts, st.Lookups, "one failed lookup per attempt, not one per CID")
	})
	t.Run("no peers: the backlog waits", func(t *testing.T) {
		f, s := newFakeNet(5, 20), newFakeSender()
		f.rt.Store(0)
		a, _ := newFakeAnnouncer(t, f, s, 100, 2)
		a.announce(cids("wait", 20))
		short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancelShort()
		err := a.flush(short)
		require.ErrorIs(t, err, ErrNoPeers)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "20 pending")
		f.rt.Store(5)
		require.NoError(t, a.flush(ctx))
		assert.EqualValues(t, 20, a.stats().Announced)
	})
}

func TestAnnounceClosed(t *testing.T) {
	a, _ := newFakeAnnouncer(t, newFakeNet(5, 20), newFakeSender(), 100, 1)
	a.close()
	a.announce(cids("closed", 3))
	assert.EqualValues(t, 3, a.stats().Dropped)
	assert.ErrorIs(t, a.flush(context.Background()), ErrClosed)
	assert.ErrorIs(t, a.startReprovider(time.Second, func(context.Context, func(cid.Cid) bool) error { return nil }), ErrClosed)
}

func TestReprovider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, s := newFakeNet(5, 20), newFakeSender()
	a, _ := newFakeAnnouncer(t, f, s, 8, 2)
	held := cids("held", 40) // five times the backlog's bound: rounds wait for room, never drop
	a.announce(held[:8])
	require.NoError(t, a.flush(ctx))

	rounds := make(chan struct{}, 100)
	require.NoError(t, a.startReprovider(5*time.Millisecond, func(ctx context.Context, yield func(cid.Cid) bool) error {
		for _, c := range append([]cid.Cid{cid.Undef}, held...) {
			if !yield(c) {
				return nil
			}
		}
		rounds <- struct{}{}
		return nil
	}))
	assert.ErrorContains(t, a.startReprovider(time.Second, func(context.Context, func(cid.Cid) bool) error { return nil }), "already started")
	for range 2 {
		select {
		case <-rounds:
		case <-ctx.Done():
			t.Fatal("no reprovide round")
		}
	}
	require.NoError(t, a.flush(ctx))
	st := a.stats()
	assert.GreaterOrEqual(t, st.Reprovided, uint64(80), "two rounds of 40, recently announced or not")
	assert.Zero(t, st.Dropped)
	assert.Zero(t, st.Failed)
	for _, c := range held {
		assert.Len(t, s.holders(c.Hash()), 5)
	}
	s.mu.Lock()
	assert.GreaterOrEqual(t, s.got[f.peers[0]][string(held[0].Hash())], 3, "announced, then reprovided twice")
	s.mu.Unlock()
}

func TestRing(t *testing.T) {
	var r ring[int]
	for i := range 200 {
		r.pushBack(i)
		if i%3 == 0 {
			assert.Equal(t, i/3, r.popFront())
		}
	}
	assert.Equal(t, 200-67, r.len())
	for want := 67; r.len() > 0; want++ {
		assert.Equal(t, want, r.popFront())
	}
}

// newMesh starts n hosts on loopback TCP, connects every pair, and waits until every
// routing table holds every other host.
func newMesh(t testing.TB, n int, mutate func(*Config)) []*Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hosts := make([]*Host, n)
	for i := range hosts {
		hosts[i] = newTestHost(t, mutate)
	}
	for i, a := range hosts {
		for _, b := range hosts[i+1:] {
			require.NoError(t, a.Connect(ctx, b.AddrInfo()))
		}
	}
	for _, h := range hosts {
		eventually(ctx, t, "full routing tables", func() bool { return h.DHT().RoutingTable().Size() == n-1 })
	}
	return hosts
}

func TestAnnounceFiveHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hosts := newMesh(t, 5, nil)
	a, finder := hosts[0], hosts[3]

	cs := cids("five-hosts", 5000)
	start := time.Now()
	a.Announce(cs...)
	require.NoError(t, a.Flush(ctx))
	took := time.Since(start)
	st := a.AnnounceStats()
	t.Logf("5000 CIDs announced to 4 peers in %v (%.0f/s): %+v", took, 5000/took.Seconds(), st)
	assert.EqualValues(t, 5000, st.Announced)
	assert.Zero(t, st.Failed)
	assert.Zero(t, st.Dropped)
	assert.EqualValues(t, 4*5000, st.Records, "every peer is among the k closest of every CID")
	assert.LessOrEqual(t, st.Lookups, uint64(4), "a lookup per batch at most, not per CID")

	for i := 0; i < len(cs); i += 100 {
		c := cs[i]
		provs, err := finder.FindProviders(ctx, c, 1)
		require.NoError(t, err)
		require.Len(t, provs, 1, "providers of CID %d", i)
		assert.Equal(t, a.ID(), provs[0].ID)
		assert.NotEmpty(t, provs[0].Addrs, "provider addresses travel with the record")
		for _, h := range hosts {
			held, err := h.DHT().ProviderStore().GetProviders(ctx, c.Hash())
			require.NoError(t, err)
			require.Len(t, held, 1, "record of CID %d on %s", i, h.ID())
			assert.Equal(t, a.ID(), held[0].ID)
		}
	}

	// The same CIDs again coalesce: they were announced just now.
	a.Announce(cs[:100]...)
	assert.EqualValues(t, 100, a.AnnounceStats().Coalesced)
	require.NoError(t, a.Flush(ctx))

	// The old path still works next to the new one.
	one := testCID("provided the old way")
	require.NoError(t, a.Provide(ctx, one))
	provs, err := finder.FindProviders(ctx, one, 1)
	require.NoError(t, err)
	require.Len(t, provs, 1)
	assert.Equal(t, a.ID(), provs[0].ID)

	t.Run("reprovider", func(t *testing.T) {
		held := cids("reprovided", 300)
		require.NoError(t, a.StartReprovider(10*time.Millisecond, func(ctx context.Context, yield func(cid.Cid) bool) error {
			for _, c := range held {
				if !yield(c) {
					break
				}
			}
			return nil
		}))
		eventually(ctx, t, "a reprovide round", func() bool { return a.AnnounceStats().Reprovided >= uint64(len(held)) })
		require.NoError(t, a.Flush(ctx))
		for _, c := range held[:10] {
			provs, err := hosts[4].FindProviders(ctx, c, 1)
			require.NoError(t, err)
			require.Len(t, provs, 1)
			assert.Equal(t, a.ID(), provs[0].ID)
		}
	})
}

func TestAnnounceNeverBlocks(t *testing.T) {
	const calls, backlog = 100_000, 1000
	hosts := newMesh(t, 2, func(c *Config) { c.AnnounceBacklog = backlog })
	a := hosts[0]
	cs := cids("never-blocks", calls) // made first: only Announce is timed
	start := time.Now()
	for _, c := range cs {
		a.Announce(c)
	}
	took := time.Since(start)
	st := a.AnnounceStats()
	t.Logf("%d Announce calls in %v: %.0f calls/s, %.0f ns/call; %+v", calls, took, calls/took.Seconds(), float64(took.Nanoseconds())/calls, st)
	// About 0.2 µs a call (2 µs under -race); a call that waited for the network
	// even once in a hundred would take milliseconds.
	assert.Less(t, took, 3*time.Second)
	assert.LessOrEqual(t, st.Queued, backlog, "memory is bounded")
	assert.Positive(t, st.Dropped, "the oldest were dropped")
	assert.EqualValues(t, calls, st.Announced+st.Dropped+st.Failed+uint64(st.Queued+st.InFlight), "every CID is accounted for")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, a.Flush(ctx))
	st = a.AnnounceStats()
	assert.EqualValues(t, calls, st.Announced+st.Dropped)
	assert.Zero(t, st.Failed)
	provs, err := hosts[1].FindProviders(ctx, cs[calls-1], 1)
	require.NoError(t, err, "the newest CID is never dropped")
	require.Len(t, provs, 1)
	assert.Equal(t, a.ID(), provs[0].ID)
}

func TestAnnounceWithoutPeers(t *testing.T) {
	h := newTestHost(t, nil)
	h.Announce(cids("alone", 10)...)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := h.Flush(ctx)
	require.ErrorIs(t, err, ErrNoPeers)
	assert.Equal(t, 10, h.AnnounceStats().Queued+h.AnnounceStats().InFlight, "kept until a peer shows up")
	require.NoError(t, h.Close())
	assert.ErrorIs(t, h.Flush(context.Background()), ErrClosed)
	assert.ErrorContains(t, h.StartReprovider(-1, func(context.Context, func(cid.Cid) bool) error { return nil }), "negative interval")
	assert.ErrorContains(t, h.StartReprovider(0, nil), "nil key source")
}
