package memnet_test

import (
	"context"
	"fmt"
	"io"

	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/p2p/memnet"
)

// Two peers: b serves an echo protocol, a opens a stream to it.
func Example() {
	nw := memnet.New()
	defer nw.Close()
	peers := nw.AddPeers(2)
	a, b := peers[0], peers[1]
	b.Handle("/echo/1", func(s p2p.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})

	ctx := context.Background()
	s, err := a.OpenStream(ctx, b.ID(), "/echo/1")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = s.Write([]byte("hello"))
	_ = s.(*memnet.Stream).CloseWrite()
	got, _ := io.ReadAll(s)
	fmt.Printf("%s from %v\n", got, s.RemotePeer() == b.ID())
	fmt.Println("a's peers:", len(a.Peers()), "swarm size:", a.NetworkSize())
	// Output:
	// hello from true
	// a's peers: 1 swarm size: 2
}
