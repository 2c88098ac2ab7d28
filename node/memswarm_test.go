package node_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
	"github.com/dray-project/dray/p2p/memnet"
)

// memSwarm starts k nodes of slots each, with the built-ins, on a memnet
// where every pair is connected; peers[i] is nodes[i]'s peer (closing it
// is that peer's connections ending). It returns once every node has heard
// a load beacon from every other. Tests of node logic use it; tests of the
// transport use swarm, over libp2p.
func memSwarm(t *testing.T, k, slots int) (nodes []*node.Node, peers []*memnet.Peer) {
	t.Helper()
	nw := memnet.New()
	t.Cleanup(nw.Close) // after the nodes' cleanups
	peers = nw.AddPeers(k)
	for _, p := range peers {
		reg := node.NewRegistry()
		require.NoError(t, builtin.Register(reg))
		cfg := node.DefaultConfig()
		cfg.Slots = slots
		cfg.Functions = reg
		cfg.Network = p
		cfg.Store.Dir = t.TempDir()
		cfg.Store.MemoryBudget = 256 << 20
		cfg.Logger = slog.New(slog.DiscardHandler)
		n, err := node.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close() })
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitFor(t, "every node hears every other", func() bool { return n.Stats().Sched.Peers == k-1 })
	}
	return nodes, peers
}
