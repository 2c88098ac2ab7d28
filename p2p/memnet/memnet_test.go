package memnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/p2p"
)

const wait = 5 * time.Second

// served opens a stream from a to b whose other end the test gets.
func served(t *testing.T, a, b *Peer) (mine, theirs p2p.Stream) {
	t.Helper()
	got := make(chan p2p.Stream, 1)
	b.Handle("/t/1", func(s p2p.Stream) { got <- s })
	mine, err := a.OpenStream(context.Background(), b.ID(), "/t/1")
	require.NoError(t, err)
	select {
	case theirs = <-got:
	case <-time.After(wait):
		t.Fatal("the handler never got the stream")
	}
	assert.Equal(t, b.ID(), mine.RemotePeer())
	assert.Equal(t, a.ID(), theirs.RemotePeer())
	return mine, theirs
}

// nextEvent waits for p's next peer event.
func nextEvent(t *testing.T, p *Peer) p2p.PeerEvent {
	t.Helper()
	select {
	case ev, ok := <-p.PeerEvents():
		require.True(t, ok, "events closed")
		return ev
	case <-time.After(wait):
		t.Fatal("no peer event")
		return p2p.PeerEvent{}
	}
}

// noEvent checks that p has no event pending.
func noEvent(t *testing.T, p *Peer) {
	t.Helper()
	select {
	case ev := <-p.PeerEvents():
		t.Fatalf("unexpected event %v %s", ev.Kind, ev.Peer)
	default:
	}
}

func TestStreams(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b p2p.Stream)
	}{
		{"close: the peer reads what was written, then EOF", func(t *testing.T, a, b p2p.Stream) {
			_, err := a.Write([]byte("hello"))
			require.NoError(t, err)
			require.NoError(t, a.Close())
			got, err := io.ReadAll(b)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(got))
			_, err = a.Write([]byte("x"))
			assert.ErrorIs(t, err, ErrStreamClosed)
			_, err = b.Write([]byte("x"))
			assert.ErrorIs(t, err, ErrStreamClosed, "a stopped reading")
		}},
		{"half-close: the peer still answers", func(t *testing.T, a, b p2p.Stream) {
			_, err := a.Write([]byte("ping"))
			require.NoError(t, err)
			require.NoError(t, a.(*Stream).CloseWrite())
			got, err := io.ReadAll(b)
			require.NoError(t, err)
			assert.Equal(t, "ping", string(got))
			_, err = b.Write([]byte("pong"))
			require.NoError(t, err)
			require.NoError(t, b.Close())
			got, err = io.ReadAll(a)
			require.NoError(t, err)
			assert.Equal(t, "pong", string(got))
		}},
		{"reset: both ends fail, buffered bytes are dropped", func(t *testing.T, a, b p2p.Stream) {
			_, err := a.Write([]byte("lost"))
			require.NoError(t, err)
			require.NoError(t, b.Reset())
			_, err = b.Read(make([]byte, 4))
			assert.ErrorIs(t, err, ErrReset)
			_, err = a.Write([]byte("x"))
			assert.ErrorIs(t, err, ErrReset)
			_, err = a.Read(make([]byte, 4))
			assert.ErrorIs(t, err, ErrReset)
		}},
		{"reset wakes a blocked read", func(t *testing.T, a, b p2p.Stream) {
			done := make(chan error, 1)
			go func() {
				_, err := b.Read(make([]byte, 1))
				done <- err
			}()
			require.NoError(t, a.Reset())
			select {
			case err := <-done:
				assert.ErrorIs(t, err, ErrReset)
			case <-time.After(wait):
				t.Fatal("the read stayed blocked")
			}
		}},
		{"flow control: a write blocks at the window until its deadline", func(t *testing.T, a, b p2p.Stream) {
			require.NoError(t, a.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
			k, err := a.Write(make([]byte, Window+10))
			assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			assert.Equal(t, Window, k)
			require.NoError(t, a.SetWriteDeadline(time.Time{}))
			got := make([]byte, 10)
			_, err = io.ReadFull(b, got)
			require.NoError(t, err)
			k, err = a.Write(make([]byte, 10)) // room again
			require.NoError(t, err)
			assert.Equal(t, 10, k)
		}},
		{"a reader keeps a large write going", func(t *testing.T, a, b p2p.Stream) {
			data := bytes.Repeat([]byte("0123456789"), Window/3)
			go func() {
				_, _ = a.Write(data)
				_ = a.Close()
			}()
			got, err := io.ReadAll(b)
			require.NoError(t, err)
			assert.Equal(t, data, got)
		}},
		{"a deadline set while a read waits ends it", func(t *testing.T, a, b p2p.Stream) {
			done := make(chan error, 1)
			go func() {
				_, err := b.Read(make([]byte, 1))
				done <- err
			}()
			require.NoError(t, b.SetDeadline(time.Now().Add(20*time.Millisecond)))
			select {
			case err := <-done:
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			case <-time.After(wait):
				t.Fatal("the read ignored its deadline")
			}
		}},
		{"close read: the peer's writes fail", func(t *testing.T, a, b p2p.Stream) {
			require.NoError(t, b.(*Stream).CloseRead())
			_, err := a.Write([]byte("x"))
			assert.ErrorIs(t, err, ErrStreamClosed)
			_, err = b.Read(make([]byte, 1))
			assert.ErrorIs(t, err, ErrStreamClosed)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := New()
			defer nw.Close()
			ps := nw.AddPeers(2)
			a, b := served(t, ps[0], ps[1])
			tc.run(t, a, b)
		})
	}
}

func TestOpenStreamErrors(t *testing.T) {
	nw := New()
	defer nw.Close()
	ps := nw.AddPeers(3)
	a, b, c := ps[0], ps[1], ps[2]
	for _, p := range ps {
		p.Handle("/t/1", func(s p2p.Stream) { _ = s.Close() })
	}
	nw.Partition([]*Peer{a}, []*Peer{c})
	require.NoError(t, b.Close())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	d := nw.AddPeer() // reaches c
	tests := []struct {
		name  string
		from  *Peer
		ctx   context.Context
		to    peer.ID
		proto string
		want  error
	}{
		{"no handler", d, context.Background(), c.ID(), "/other/1", ErrProtocolNotSupported},
		{"closed peer", a, context.Background(), b.ID(), "/t/1", ErrUnreachable},
		{"cut off", a, context.Background(), c.ID(), "/t/1", ErrUnreachable},
		{"unknown peer", a, context.Background(), peer.ID("nobody"), "/t/1", ErrUnreachable},
		{"itself", a, context.Background(), a.ID(), "/t/1", nil},
		{"context ended", d, cancelled, c.ID(), "/t/1", context.Canceled},
		{"from a closed peer", b, context.Background(), c.ID(), "/t/1", p2p.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.from.OpenStream(tc.ctx, tc.to, tc.proto)
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
	s, err := d.OpenStream(context.Background(), c.ID(), "/t/1")
	require.NoError(t, err, "d reaches c")
	_ = s.Close()
}

func TestConnectionsAndEvents(t *testing.T) {
	nw := New()
	defer nw.Close()
	a, b, c := nw.AddPeer(), nw.AddPeer(), nw.AddPeer()
	require.NoError(t, nw.Connect(a, b))
	assert.Equal(t, p2p.PeerEvent{Peer: b.ID(), Kind: p2p.PeerConnected}, nextEvent(t, a))
	assert.Equal(t, p2p.PeerEvent{Peer: a.ID(), Kind: p2p.PeerConnected}, nextEvent(t, b))
	require.NoError(t, nw.Connect(b, a)) // already connected: no event
	noEvent(t, a)
	assert.True(t, a.Connected(b.ID()))
	assert.False(t, a.Connected(c.ID()))
	assert.Equal(t, []peer.ID{b.ID()}, a.Peers())
	assert.ElementsMatch(t, []peer.ID{b.ID(), c.ID()}, a.RoutingPeers())
	assert.Equal(t, 3, a.NetworkSize())

	// A disconnect resets the streams on the connection.
	s, _ := served(t, a, b)
	nw.Disconnect(a, b)
	assert.Equal(t, p2p.PeerDisconnected, nextEvent(t, a).Kind)
	assert.Equal(t, p2p.PeerDisconnected, nextEvent(t, b).Kind)
	_, err := s.Write([]byte("x"))
	assert.ErrorIs(t, err, ErrReset)
	assert.False(t, a.Connected(b.ID()))

	// Opening a stream dials again.
	_, _ = served(t, a, b)
	assert.Equal(t, p2p.PeerEvent{Peer: b.ID(), Kind: p2p.PeerConnected}, nextEvent(t, a))
	assert.Equal(t, p2p.PeerConnected, nextEvent(t, b).Kind)

	// A partition cuts and keeps cut; Heal connects again.
	nw.Partition([]*Peer{a}, []*Peer{b, c})
	assert.Equal(t, p2p.PeerDisconnected, nextEvent(t, a).Kind)
	assert.Empty(t, a.RoutingPeers())
	assert.ErrorIs(t, nw.Connect(a, c), ErrUnreachable)
	nw.Heal()
	assert.ElementsMatch(t, []peer.ID{b.ID(), c.ID()}, a.Peers())

	// A peer that closes is gone for the others.
	for len(b.PeerEvents()) > 0 {
		<-b.PeerEvents()
	}
	require.NoError(t, a.Close())
	for {
		ev := nextEvent(t, b)
		if ev.Peer == a.ID() && ev.Kind == p2p.PeerDisconnected {
			break
		}
	}
	_, open := <-a.PeerEvents()
	for open {
		_, open = <-a.PeerEvents()
	}
	assert.Equal(t, 2, b.NetworkSize())
	assert.Equal(t, []peer.ID{c.ID()}, b.RoutingPeers())
}

func TestTopics(t *testing.T) {
	nw := New()
	defer nw.Close()
	ps := nw.AddPeers(3)
	a, b, c := ps[0], ps[1], ps[2]
	far := nw.AddPeer() // connected to nobody
	subs := make(map[*Peer]p2p.Subscription)
	topics := make(map[*Peer]p2p.Topic)
	for _, p := range []*Peer{a, b, c, far} {
		tp, err := p.Join("beacons")
		require.NoError(t, err)
		again, err := p.Join("beacons")
		require.NoError(t, err)
		assert.Same(t, tp, again)
		topics[p] = tp
		if p != c {
			subs[p], err = tp.Subscribe()
			require.NoError(t, err)
		}
	}
	assert.Equal(t, []peer.ID{b.ID()}, topics[a].Peers(), "c joined but did not subscribe")

	ctx := context.Background()
	require.NoError(t, topics[a].Publish(ctx, []byte("load")))
	m, err := subs[b].Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, p2p.Message{From: a.ID(), ReceivedFrom: a.ID(), Data: []byte("load")}, m)
	for _, p := range []*Peer{a, far} {
		select {
		case m := <-subs[p].C():
			t.Fatalf("%s got %q", p, m.Data)
		default:
		}
	}

	err = topics[a].Publish(ctx, make([]byte, p2p.DefaultMaxMessageSize+1))
	assert.ErrorIs(t, err, p2p.ErrMessageTooLarge)

	// A lagging subscriber loses what does not fit its buffer.
	for range SubscriptionBuffer + 5 {
		require.NoError(t, topics[a].Publish(ctx, []byte("x")))
	}
	assert.Len(t, subs[b].C(), SubscriptionBuffer)

	require.NoError(t, topics[b].Close())
	_, open := <-subs[b].C()
	for open {
		_, open = <-subs[b].C()
	}
	_, err = subs[b].Next(ctx)
	assert.ErrorIs(t, err, p2p.ErrClosed)
	assert.ErrorIs(t, topics[b].Publish(ctx, nil), p2p.ErrClosed)
	_, err = topics[b].Subscribe()
	assert.ErrorIs(t, err, p2p.ErrClosed)
	again, err := b.Join("beacons")
	require.NoError(t, err)
	assert.NotSame(t, topics[b], again)
	subs[a].Cancel()
	subs[a].Cancel() // idempotent
}

func cidOf(t *testing.T, s string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func TestHolders(t *testing.T) {
	nw := New()
	defer nw.Close()
	ps := nw.AddPeers(3)
	a, b, c := ps[0], ps[1], ps[2]
	x, y := cidOf(t, "x"), cidOf(t, "y")
	ctx := context.Background()
	a.Announce(x, y)
	b.Announce(x, cid.Undef)

	got, err := c.FindHolders(ctx, x, 0)
	require.NoError(t, err)
	assert.ElementsMatch(t, []peer.ID{a.ID(), b.ID()}, got)
	got, err = c.FindHolders(ctx, x, 1)
	require.NoError(t, err)
	assert.Len(t, got, 1)
	// The same multihash under another codec is the same record, as in a DHT.
	got, err = c.FindHolders(ctx, cid.NewCidV1(cid.DagCBOR, y.Hash()), 0)
	require.NoError(t, err)
	assert.Equal(t, []peer.ID{a.ID()}, got)
	_, err = c.FindHolders(ctx, cid.Undef, 0)
	assert.Error(t, err)

	// The reprovider keeps only what the key source yields.
	keys := func(_ context.Context, yield func(cid.Cid) bool) error {
		yield(y)
		return nil
	}
	require.NoError(t, a.StartReprovider(time.Hour, keys))
	assert.Error(t, a.StartReprovider(time.Hour, keys), "started twice")
	got, err = c.FindHolders(ctx, x, 0)
	require.NoError(t, err)
	assert.Equal(t, []peer.ID{b.ID()}, got)

	// Records outlive their peer.
	require.NoError(t, b.Close())
	got, err = c.FindHolders(ctx, x, 0)
	require.NoError(t, err)
	assert.Equal(t, []peer.ID{b.ID()}, got)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.FindHolders(cancelled, x, 0)
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestPeerIDsAreStable(t *testing.T) {
	a, b := New(), New()
	defer a.Close()
	defer b.Close()
	pa, pb := a.AddPeers(2), b.AddPeers(2)
	assert.Equal(t, pa[1].ID(), pb[1].ID())
	assert.NotEqual(t, pa[0].ID(), pa[1].ID())
	_, err := peer.Decode(pa[0].ID().String())
	require.NoError(t, err)
}
