package p2p

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGossipSub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A -- B -- C in a line; A accepts at most 1 KiB, B and C the default 64 KiB.
	a := newTestHost(t, func(c *Config) { c.MaxMessageSize = 1 << 10 })
	b := newTestHost(t, nil)
	c := newTestHost(t, nil)
	require.NoError(t, b.Connect(ctx, a.AddrInfo()))
	require.NoError(t, c.Connect(ctx, b.AddrInfo()))

	const name = "dray/load"
	ta, err := a.Join(name)
	require.NoError(t, err)
	again, err := a.Join(name)
	require.NoError(t, err)
	assert.Same(t, ta, again, "joining twice returns the same topic")
	tb, err := b.Join(name)
	require.NoError(t, err)
	tc, err := c.Join(name)
	require.NoError(t, err)
	sa, err := ta.Subscribe()
	require.NoError(t, err)
	sb, err := tb.Subscribe()
	require.NoError(t, err)
	sc, err := tc.Subscribe()
	require.NoError(t, err)

	// (The DHT may also connect A and C directly; B is the only link we make.)
	eventually(ctx, t, "topic peers", func() bool {
		return slices.Contains(ta.Peers(), b.ID()) && slices.Contains(tc.Peers(), b.ID()) &&
			slices.Contains(tb.Peers(), a.ID()) && slices.Contains(tb.Peers(), c.ID())
	})

	// A's message crosses B to reach C. B forwards along its mesh, which
	// takes C in at a heartbeat after C subscribed: a message published
	// before that can miss C, so A publishes until one arrives, and the
	// reads below skip the other copies.
	const hello = "hello from A"
	var m Message
	for i := 0; ; i++ {
		require.NoError(t, ta.Publish(ctx, fmt.Appendf(nil, "%s %d", hello, i)))
		try, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		var err error
		m, err = sc.Next(try)
		cancel()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "C never got a message from A")
	}
	assert.True(t, strings.HasPrefix(string(m.Data), hello), "got %q", m.Data)
	assert.Equal(t, a.ID(), m.From)
	assert.Contains(t, []peer.ID{a.ID(), b.ID()}, m.ReceivedFrom)
	skipHello := func(s Subscription) Message {
		t.Helper()
		for {
			m, err := s.Next(ctx)
			require.NoError(t, err)
			if !strings.HasPrefix(string(m.Data), hello) {
				return m
			}
		}
	}

	// The publisher's own subscription does not see its message; B's does.
	m, err = sb.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, a.ID(), m.From)

	// Oversized messages are refused by the publisher...
	err = ta.Publish(ctx, make([]byte, 1<<10+1))
	require.ErrorIs(t, err, ErrMessageTooLarge)
	assert.Contains(t, err.Error(), "1025 bytes, limit 1024")
	err = tb.Publish(ctx, make([]byte, DefaultMaxMessageSize+1))
	require.ErrorIs(t, err, ErrMessageTooLarge)

	// ...and by receivers: B's 2 KiB message reaches C but not A, whose limit is 1 KiB.
	// B floods it to both; once C has it, A has had it too, and A's next message must
	// be the small one that follows.
	big := bytes.Repeat([]byte{'x'}, 2<<10)
	require.NoError(t, tb.Publish(ctx, big))
	m = skipHello(sc)
	assert.Len(t, m.Data, len(big))
	require.NoError(t, tb.Publish(ctx, []byte("small after big")))
	m, err = sa.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, "small after big", string(m.Data[:min(len(m.Data), 20)]), "A must reject the 2 KiB message")
	m = skipHello(sc)
	assert.Equal(t, "small after big", string(m.Data[:min(len(m.Data), 20)]))

	// Cancel closes the channel; Next then reports ErrClosed.
	sc.Cancel()
	sc.Cancel()
	_, open := <-sc.C()
	assert.False(t, open)
	_, err = sc.Next(ctx)
	assert.ErrorIs(t, err, ErrClosed)

	// Closing a topic ends its subscriptions; joining again works.
	require.NoError(t, ta.Close())
	_, err = sa.Next(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, ta.Publish(ctx, []byte("x")), ErrClosed)
	_, err = ta.Subscribe()
	assert.ErrorIs(t, err, ErrClosed)
	ta2, err := a.Join(name)
	require.NoError(t, err)
	assert.NotSame(t, ta, ta2)

	// Closing the host ends everything.
	require.NoError(t, b.Close())
	_, err = sb.Next(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = b.Join("another")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = a.Join("")
	assert.Error(t, err)
}
