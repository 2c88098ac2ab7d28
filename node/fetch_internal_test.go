package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/p2p/memnet"
	"github.com/dray-project/dray/wire"
)

// loopHost starts a libp2p host on loopback TCP bootstrapped to boot.
func loopHost(t *testing.T, boot ...*p2p.Host) *p2p.Host {
	t.Helper()
	return loopHostIn(t, t.TempDir(), boot...)
}

// loopHostIn is loopHost with its data directory (and so its identity)
// in dir.
func loopHostIn(t *testing.T, dir string, boot ...*p2p.Host) *p2p.Host {
	t.Helper()
	pc := p2p.DefaultConfig()
	pc.DataDir = dir
	pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	pc.MDNS = false
	pc.Logger = slog.New(slog.DiscardHandler)
	for _, b := range boot {
		for _, a := range b.Addrs() {
			pc.Bootstrap = append(pc.Bootstrap, a.String())
		}
	}
	h, err := p2p.New(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// pair starts two nodes with reg on a memnet, connected, each with its
// options, and waits until a hears b. The node logic runs as over libp2p;
// closing a peer is the connection's end.
func pair(t *testing.T, reg *Registry, aOpt, bOpt func(*Config)) (a *Node, ha *memnet.Peer, b *Node, hb *memnet.Peer) {
	t.Helper()
	nw := memnet.New()
	t.Cleanup(nw.Close) // after the nodes' cleanups
	peers := nw.AddPeers(2)
	ha, hb = peers[0], peers[1]
	opt := func(extra func(*Config)) func(*Config) {
		return func(c *Config) {
			c.Functions = reg
			if extra != nil {
				extra(c)
			}
		}
	}
	a = loopNode(t, ha, opt(aOpt))
	b = loopNode(t, hb, opt(bOpt))
	waitHeard(t, a, 1)
	return a, ha, b, hb
}

// naps calls nap(ms) count times on n and returns the refs.
func naps(t *testing.T, ctx context.Context, n *Node, count, ms int) []ObjectRef {
	t.Helper()
	refs := make([]ObjectRef, 0, count)
	for range count {
		r, err := n.Call(ctx, "nap", ms)
		require.NoError(t, err)
		refs = append(refs, r...)
	}
	return refs
}

// waitHeard waits until n has heard the load of at least k peers.
func waitHeard(t *testing.T, n *Node, k int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.Stats().Sched.Peers < k {
		require.True(t, time.Now().Before(deadline), "node %s heard %d of %d peers", n.ID(), n.Stats().Sched.Peers, k)
		time.Sleep(20 * time.Millisecond) // poll: beacons come every 250 ms
	}
}

// loopNode starts a node of one slot over h.
func loopNode(t *testing.T, h p2p.Network, opts ...func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Slots = 1
	cfg.Network = h
	cfg.Store.Dir = t.TempDir()
	cfg.Store.MemoryBudget = 64 << 20
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, o := range opts {
		o(&cfg)
	}
	n, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestFetchResumesAndSkipsLiars fetches an object from a list of holders
// whose first is a bad peer speaking the fetch protocol: one that dies
// halfway (the fetch resumes from the next holder at the same offset, so
// the bytes cross the network once) and one that serves other bytes under
// the right CID (the whole fails verification, and the fetch starts over
// with the next holder). Either way the right bytes arrive.
func TestFetchResumesAndSkipsLiars(t *testing.T) {
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i*13 + i>>12)
	}
	enc, err := codec.Marshal(data)
	require.NoError(t, err)
	size := int64(len(enc))
	tests := []struct {
		name    string
		serve   func(s network.Stream, off int64) // writes the body from off
		resumed uint64
		maxRecv int64 // bytes the fetcher may receive in all
	}{
		{"dies halfway", func(s network.Stream, off int64) {
			_, _ = s.Write(enc[off : off+size/2])
			_ = s.Reset()
		}, 1, size + 1024},
		{"serves other bytes", func(s network.Stream, off int64) {
			bad := append([]byte(nil), enc[off:]...)
			bad[len(bad)/2] ^= 0xff
			_, _ = s.Write(bad)
			_ = s.Close()
		}, 0, 2*size + 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ha := loopHost(t)
			a := loopNode(t, ha)
			ref, err := a.PutEncoded(context.Background(), append([]byte(nil), enc...))
			require.NoError(t, err)

			bad := loopHost(t, ha)
			bad.Libp2p().SetStreamHandler(wire.FetchProtocol, func(s network.Stream) {
				defer s.Close()
				_, payload, err := p2p.ReadFrame(s, 256)
				if err != nil {
					return
				}
				var w wire.Want
				if codec.Unmarshal(payload, &w) != nil {
					return
				}
				msg, _ := codec.Marshal(wire.Have{Content: ref.CID().Bytes(), Size: size})
				_ = p2p.WriteFrame(s, wire.FrameHave, msg)
				tc.serve(s, w.Offset)
			})
			hc := loopHost(t, ha, bad)
			c := loopNode(t, hc)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, hc.Connect(ctx, peer.AddrInfo{ID: bad.ID(), Addrs: bad.Addrs()}))

			content, err := c.fetchAny(ctx, ref.CID(), []peer.ID{bad.ID(), ha.ID()})
			require.NoError(t, err)
			assert.Equal(t, ref.CID(), content)
			got, err := c.store.Get(ctx, content)
			require.NoError(t, err)
			assert.Equal(t, enc, got)
			st := c.Stats().Net
			assert.Equal(t, tc.resumed, st.Resumed)
			assert.LessOrEqual(t, int64(st.BytesRecv), tc.maxRecv)
			assert.EqualValues(t, 1, st.Fetches)
		})
	}
}
