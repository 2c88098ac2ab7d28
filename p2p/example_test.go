package p2p_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// Two hosts on loopback: b dials a, opens a stream and exchanges one frame.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: quiet}

	a, err := p2p.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := p2p.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	// a answers each frame of /dray/hello/1 with the same payload in upper case.
	a.Libp2p().SetStreamHandler("/dray/hello/1", func(s network.Stream) {
		defer s.Close()
		typ, payload, err := p2p.ReadFrame(s, p2p.DefaultMaxFrame)
		if err != nil {
			_ = s.Reset()
			return
		}
		_ = p2p.WriteFrame(s, typ+1, []byte(fmt.Sprintf("%X", payload)))
	})

	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("b's peers are [a]:", len(b.Peers()) == 1 && b.Peers()[0] == a.ID())

	s, err := b.Libp2p().NewStream(ctx, a.ID(), "/dray/hello/1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := p2p.WriteFrame(s, 1, []byte("hi")); err != nil {
		fmt.Println(err)
		return
	}
	typ, reply, err := p2p.ReadFrame(s, p2p.DefaultMaxFrame)
	fmt.Println(typ, string(reply), err)
	// Output:
	// b's peers are [a]: true
	// 2 6869 <nil>
}

// Announce queues CIDs for the DHT without waiting; Flush waits until they are out.
func ExampleHost_Announce() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: quiet}
	a, err := p2p.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := p2p.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		fmt.Println(err)
		return
	}

	var objects []cid.Cid
	for i := range 1000 {
		objects = append(objects, codec.Sum(fmt.Appendf(nil, "object %d", i)))
	}
	a.Announce(objects...) // returns at once
	a.Announce(objects[0]) // coalesced: already queued
	if err := a.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	st := a.AnnounceStats()
	fmt.Println("announced:", st.Announced, "coalesced:", st.Coalesced, "failed:", st.Failed)

	provs, err := b.FindProviders(ctx, objects[999], 1)
	fmt.Println("b finds a:", err == nil && len(provs) == 1 && provs[0].ID == a.ID())
	// Output:
	// announced: 1000 coalesced: 1 failed: 0
	// b finds a: true
}
