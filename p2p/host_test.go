package p2p

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dray-project/dray/codec"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loopbackTCP listens on a random loopback TCP port only.
var loopbackTCP = []string{"/ip4/127.0.0.1/tcp/0"}

// logBuffer is a goroutine-safe log sink for asserting on log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestHost starts a host on loopback TCP with no discovery; mutate adjusts the config.
func newTestHost(t testing.TB, mutate func(*Config)) *Host {
	t.Helper()
	cfg := Config{Listen: loopbackTCP, Logger: testLogger(&logBuffer{})}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, h.Close()) })
	return h
}

// eventually polls cond every 20 ms until it holds or ctx ends.
func eventually(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func p2pAddrs(h *Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String())
	}
	return out
}

func TestIdentityAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []peer.ID
	for range 2 {
		h, err := New(ctx, Config{DataDir: dir, Listen: loopbackTCP, Logger: testLogger(&logBuffer{})})
		require.NoError(t, err)
		ids = append(ids, h.ID())
		require.NoError(t, h.Close())
		require.NoError(t, h.Close(), "Close is idempotent")
	}
	assert.Equal(t, ids[0], ids[1])
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Without a data directory every start gets a new identity.
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	assert.NotEqual(t, a.ID(), b.ID())
}

func TestAddrsAndConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	addrs := a.Addrs()
	require.NotEmpty(t, addrs)
	for _, s := range p2pAddrs(a) {
		assert.True(t, strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/"), s)
		assert.True(t, strings.HasSuffix(s, "/p2p/"+a.ID().String()), s)
	}
	assert.ErrorContains(t, b.Connect(ctx, peer.AddrInfo{ID: b.ID()}), "this host")
	require.NoError(t, b.Connect(ctx, a.AddrInfo()))
	assert.Equal(t, []peer.ID{a.ID()}, b.Peers())
	eventually(ctx, t, "a to see b", func() bool { return slices.Equal(a.Peers(), []peer.ID{b.ID()}) })
	require.NoError(t, b.Connect(ctx, a.AddrInfo()), "connecting twice is a no-op")
}

func TestPeerEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	require.NoError(t, b.Connect(ctx, a.AddrInfo()))
	next := func() PeerEvent {
		select {
		case ev := <-a.PeerEvents():
			return ev
		case <-ctx.Done():
			t.Fatal("timed out waiting for a peer event")
			return PeerEvent{}
		}
	}
	assert.Equal(t, PeerEvent{Peer: b.ID(), Kind: PeerConnected}, next())
	require.NoError(t, b.Close())
	assert.Equal(t, PeerEvent{Peer: b.ID(), Kind: PeerDisconnected}, next())
	assert.Equal(t, "disconnected", PeerDisconnected.String())
	require.NoError(t, a.Close())
	_, open := <-a.PeerEvents()
	assert.False(t, open, "PeerEvents is closed by Close")
}

func TestEventQueueCoalesces(t *testing.T) {
	// Drive the queue directly: a consumer that lags sees only final states.
	q := newEventQueue()
	p1, p2 := peer.ID("p1"), peer.ID("p2")
	q.push(PeerEvent{p1, PeerConnected})
	q.push(PeerEvent{p2, PeerConnected})
	q.push(PeerEvent{p1, PeerDisconnected})
	q.push(PeerEvent{p2, PeerDisconnected})
	q.push(PeerEvent{p2, PeerConnected})
	in := make(chan any)
	done := make(chan struct{})
	go q.run(in, done, nil)
	assert.Equal(t, PeerEvent{p2, PeerConnected}, <-q.out, "p1 came and went unseen: nothing to report")
	close(in)
	_, open := <-q.out
	assert.False(t, open)
}

func TestDHTProvideFindThroughBootstrap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newTestHost(t, nil)
	b := newTestHost(t, func(c *Config) { c.Bootstrap = p2pAddrs(a) })
	c := newTestHost(t, func(c *Config) { c.Bootstrap = p2pAddrs(b) })

	key := codec.Sum([]byte("an object held by A"))
	err := newTestHost(t, nil).Provide(ctx, key)
	assert.ErrorIs(t, err, ErrNoPeers, "a lone host cannot provide")

	rt := func(h *Host, want ...*Host) func() bool {
		return func() bool {
			for _, w := range want {
				if h.DHT().RoutingTable().Find(w.ID()) == "" {
					return false
				}
			}
			return true
		}
	}
	eventually(ctx, t, "A's routing table to hold B", rt(a, b))
	eventually(ctx, t, "B's routing table to hold A and C", rt(b, a, c))
	eventually(ctx, t, "C's routing table to hold B", rt(c, b))

	require.NoError(t, a.Provide(ctx, key))
	provs, err := c.FindProviders(ctx, key, 1)
	require.NoError(t, err)
	require.Len(t, provs, 1)
	assert.Equal(t, a.ID(), provs[0].ID)
	require.NotEmpty(t, provs[0].Addrs, "provider addresses travel with the record")
	require.NoError(t, c.Connect(ctx, provs[0]))

	other := codec.Sum([]byte("nobody has this"))
	provs, err = c.FindProviders(ctx, other, 0)
	require.NoError(t, err)
	assert.Empty(t, provs)
}

func TestDHTUsesDrayPrefix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestHost(t, nil)
	b := newTestHost(t, func(c *Config) { c.ProtocolPrefix = "/other" })
	require.NoError(t, b.Connect(ctx, a.AddrInfo()))
	eventually(ctx, t, "identify to finish", func() bool {
		protos, err := b.Libp2p().Peerstore().GetProtocols(a.ID())
		return err == nil && len(protos) > 0
	})
	protos, err := b.Libp2p().Peerstore().GetProtocols(a.ID())
	require.NoError(t, err)
	assert.Contains(t, protos, protocol.ID("/dray/kad/1.0.0"))
	assert.NotContains(t, protos, protocol.ID("/ipfs/kad/1.0.0"))
	assert.Zero(t, b.DHT().RoutingTable().Size(), "different prefixes never share a routing table")
}

func writeSwarmKey(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, GenerateSwarmKey(&buf))
	path := filepath.Join(t.TempDir(), "swarm.key")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path
}

func TestPrivateNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	key1, key2 := writeSwarmKey(t), writeSwarmKey(t)
	both := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	logs := &logBuffer{}
	p1 := newTestHost(t, func(c *Config) { c.SwarmKeyFile = key1; c.Listen = both; c.Logger = testLogger(logs) })
	p2 := newTestHost(t, func(c *Config) { c.SwarmKeyFile = key1 })
	for _, a := range p2pAddrs(p1) {
		assert.Contains(t, a, "/tcp/", "a private host listens on TCP only")
	}
	assert.Contains(t, logs.String(), "QUIC listen addresses dropped")

	require.NoError(t, p2.Connect(ctx, p1.AddrInfo()))
	assert.Equal(t, []peer.ID{p1.ID()}, p2.Peers())

	outsiders := map[string]*Host{
		"other key": newTestHost(t, func(c *Config) { c.SwarmKeyFile = key2 }),
		"no key":    newTestHost(t, func(c *Config) { c.Listen = both }),
	}
	for name, o := range outsiders {
		t.Run(name, func(t *testing.T) {
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
			defer dcancel()
			require.Error(t, o.Connect(dctx, p1.AddrInfo()))
			assert.NotContains(t, p1.Peers(), o.ID())
			assert.Empty(t, o.Peers())
			// The other direction fails too.
			require.Error(t, p1.Connect(dctx, o.AddrInfo()))
			assert.NotContains(t, p1.Peers(), o.ID())
		})
	}
	assert.Equal(t, []peer.ID{p2.ID()}, p1.Peers())
}

func TestPrivateNetworkBadKeyFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("/key/swarm/psk/1.0.0/\n/base16/\nabcd\n"), 0o600))
	for _, path := range []string{bad, filepath.Join(t.TempDir(), "missing.key")} {
		_, err := New(ctx, Config{Listen: loopbackTCP, SwarmKeyFile: path, Logger: testLogger(&logBuffer{})})
		require.ErrorIs(t, err, ErrSwarmKey)
		assert.Contains(t, err.Error(), path)
	}
}

func TestListenFallback(t *testing.T) {
	tests := []struct {
		name   string
		occupy func(t *testing.T) int
		addr   string
	}{
		{"tcp", func(t *testing.T) int {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() })
			return l.Addr().(*net.TCPAddr).Port
		}, "/ip4/127.0.0.1/tcp/%d"},
		{"quic", func(t *testing.T) int {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			return c.LocalAddr().(*net.UDPAddr).Port
		}, "/ip4/127.0.0.1/udp/%d/quic-v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := tt.occupy(t)
			want := fmt.Sprintf(tt.addr, port)
			logs := &logBuffer{}
			h := newTestHost(t, func(c *Config) { c.Listen = []string{want}; c.Logger = testLogger(logs) })
			listen := h.Libp2p().Network().ListenAddresses()
			require.Len(t, listen, 1)
			assert.NotEqual(t, want, listen[0].String())
			assert.NotContains(t, listen[0].String(), fmt.Sprintf("/%d", port))
			assert.Contains(t, logs.String(), "listening on a random port instead")
			assert.Contains(t, logs.String(), want)
		})
	}
	t.Run("nothing listens", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := New(ctx, Config{Listen: []string{"/ip4/192.0.2.123/tcp/0"}, Logger: testLogger(&logBuffer{})})
		assert.ErrorContains(t, err, "could not listen on any address")
	})
}

func TestMocknetHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	h1, err := mn.GenPeer()
	require.NoError(t, err)
	h2, err := mn.GenPeer()
	require.NoError(t, err)
	require.NoError(t, mn.LinkAll())
	a := newTestHost(t, func(c *Config) { c.Host = h1; c.SwarmKeyFile = "/ignored" })
	b := newTestHost(t, func(c *Config) { c.Host = h2 })
	require.NoError(t, b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: h1.Addrs()}))
	select {
	case ev := <-a.PeerEvents():
		assert.Equal(t, PeerEvent{Peer: b.ID(), Kind: PeerConnected}, ev)
	case <-ctx.Done():
		t.Fatal("no peer event on a mocknet host")
	}
	require.NoError(t, a.Close())
	assert.NotEqual(t, network.Connectedness(0), h1.Network().Connectedness(h2.ID()), "Close leaves a host passed in open")
	assert.NotEmpty(t, h1.Network().ListenAddresses())
}
