package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
	"github.com/dray-project/dray/p2p"
)

// swarm starts k nodes over loopback TCP, each with its own libp2p host;
// nodes 2..k bootstrap to node 1. It returns once every node has heard a
// load beacon from every other.
func swarm(t *testing.T, k, slots int) []*node.Node {
	return swarmOf(t, k, slots, false)
}

// swarmB is swarm for benchmarks (one slot each, 3 GiB of memory for
// objects, so big values stay in memory as they would on a real peer).
func swarmB(b *testing.B, k int) []*node.Node {
	benchBudget = 3 << 30
	defer func() { benchBudget = 0 }()
	return swarmOf(b, k, 1, false)
}

// benchBudget, when set, overrides the nodes' object memory budget.
var benchBudget int64

// hosts maps the nodes swarmOf made to their libp2p hosts.
var hosts = map[*node.Node]*p2p.Host{}

// swarmOf is swarm; with chain set, node i bootstraps to node i-1 only.
func swarmOf(t testing.TB, k, slots int, chain bool) []*node.Node {
	t.Helper()
	return swarmSetup(t, make([]func(*node.Config), k), slots, chain)
}

// swarmWith is swarm with one configuration hook per node (nil: none),
// which may register more functions in cfg.Functions (the built-ins are
// there) or change the configuration.
func swarmWith(t testing.TB, slots int, setups ...func(*node.Config)) []*node.Node {
	t.Helper()
	return swarmSetup(t, setups, slots, false)
}

func swarmSetup(t testing.TB, setups []func(*node.Config), slots int, chain bool) []*node.Node {
	t.Helper()
	k := len(setups)
	ctx := ctxT(t)
	var nodes []*node.Node
	var boot []string
	for i := range k {
		pc := p2p.DefaultConfig()
		pc.DataDir = t.TempDir()
		pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		pc.MDNS = false
		pc.Bootstrap = boot
		pc.Logger = slog.New(slog.DiscardHandler)
		h, err := p2p.New(ctx, pc)
		require.NoError(t, err)
		t.Cleanup(func() { _ = h.Close() })
		if i == 0 || chain {
			boot = boot[:0]
			for _, a := range h.Addrs() {
				boot = append(boot, a.String())
			}
		}
		reg := node.NewRegistry()
		require.NoError(t, builtin.Register(reg))
		cfg := node.DefaultConfig()
		cfg.Slots = slots
		cfg.Functions = reg
		cfg.Network = h
		cfg.Store.Dir = t.TempDir()
		cfg.Store.MemoryBudget = 256 << 20
		if benchBudget > 0 {
			cfg.Store.MemoryBudget = benchBudget
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		if setups[i] != nil {
			setups[i](&cfg)
		}
		n, err := node.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close() })
		nodes = append(nodes, n)
		hosts[n] = h
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for n.Stats().Sched.Peers < k-1 {
			require.True(t, time.Now().Before(deadline), "node %s heard %d of %d peers", n.ID(), n.Stats().Sched.Peers, k-1)
			time.Sleep(20 * time.Millisecond) // poll: beacons arrive every 250 ms
		}
	}
	return nodes
}

// TestSwarmSpreadsTasks submits sleep tasks on one node of three: its own
// slot fills, the rest go to the peers with room, and every result comes
// back to the submitter.
func TestSwarmSpreadsTasks(t *testing.T) {
	nodes := swarm(t, 3, 1)
	requireAllRun(t, nodes, 12, 50)
}

// requireAllRun submits count sleep(ms) tasks on nodes[0] and checks that
// every node ran at least one of them.
func requireAllRun(t *testing.T, nodes []*node.Node, count, ms int) {
	t.Helper()
	ctx := ctxT(t)
	var refs []node.ObjectRef
	for range count {
		r, err := nodes[0].Call(ctx, "sleep", ms)
		require.NoError(t, err)
		refs = append(refs, r[0])
	}
	ran := map[string]int{}
	for _, r := range refs {
		who, err := node.As[string](r).Get(ctx)
		require.NoError(t, err)
		ran[who]++
	}
	t.Logf("tasks per peer: %v", ran)
	for _, n := range nodes {
		assert.Positive(t, ran[n.ID()], "peer %s ran no task", n.ID())
	}
}

// TestSwarmNestedAndChains runs nested fib across peers (children are
// placed by the executors) and a dependency chain across peers.
func TestSwarmNestedAndChains(t *testing.T) {
	nodes := swarm(t, 3, 1)
	ctx := ctxT(t)
	r, err := nodes[0].Call(ctx, "fib", 16)
	require.NoError(t, err)
	v, err := node.As[int64](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(987), v)

	x, err := nodes[1].Call(ctx, "add", int64(1), int64(2))
	require.NoError(t, err)
	for i := range 5 {
		x, err = nodes[1].Call(ctx, "add", x[0], int64(i))
		require.NoError(t, err)
	}
	sum, err := node.As[int64](x[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(13), sum)

}

// TestSwarmRemoteFailure fails tasks on other peers: every Get returns a
// TaskError naming the function, and the cause names the peer.
func TestSwarmRemoteFailure(t *testing.T) {
	nodes := swarm(t, 3, 1)
	ctx := ctxT(t)
	// Keep node 0's slot busy so the failing task goes to a peer.
	busy, err := nodes[0].Call(ctx, "sleep", 300)
	require.NoError(t, err)
	var first error
	for i := range 4 {
		bad, err := nodes[0].Call(ctx, "fib", -1-i)
		require.NoError(t, err)
		_, err = bad[0].Get(ctx)
		var te *node.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "fib", te.Func)
		assert.ErrorContains(t, err, fmt.Sprintf("fib of negative %d", -1-i))
		if i == 0 {
			first = err
		}
	}
	_, err = busy[0].Get(ctx)
	require.NoError(t, err)
	// The first went to a peer whose beacon showed a free slot.
	var re *node.RemoteError
	if assert.ErrorAs(t, first, &re, "a failure on another peer names that peer") {
		assert.NotEqual(t, nodes[0].ID(), re.Peer)
	}
}

func TestSwarmCloseWithPeers(t *testing.T) {
	nodes := swarm(t, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := nodes[0].Call(ctx, "whoami")
	require.NoError(t, err)
	_, err = r[0].Get(ctx)
	require.NoError(t, err)
	require.NoError(t, nodes[1].Close())
	require.NoError(t, nodes[0].Close())
}

// TestSwarmFetchThroughDHT puts a value on the first of five nodes, joined
// in a chain (each bootstraps to the one before), and gets it on the last,
// which finds the holder through the DHT, fetches and verifies the bytes.
// A task output made on one peer is resolved on another the same way, and
// tasks submitted on the first node run on all five.
func TestSwarmFetchThroughDHT(t *testing.T) {
	nodes := swarmOf(t, 5, 1, true)
	ctx := ctxT(t)
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	put, err := node.Put(ctx, nodes[0], data)
	require.NoError(t, err)
	out, err := nodes[1].Call(ctx, "sha256", put)
	_ = out
	require.Error(t, err, "a ref from another node is not usable before it is resolved")

	var got node.ObjectRef
	deadline := time.Now().Add(20 * time.Second)
	for { // the provider record needs a moment to reach the DHT
		got, err = nodes[4].Resolve(ctx, put.CID())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	v, err := node.As[[]byte](got).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, data, v)

	// A task output made on node 2 resolves on node 3.
	r, err := nodes[2].Call(ctx, "bytes", 1000, uint64(9))
	require.NoError(t, err)
	want, err := node.As[[]byte](r[0]).Get(ctx)
	require.NoError(t, err)
	for {
		got, err = nodes[3].Resolve(ctx, r[0].CID())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	v, err = node.As[[]byte](got).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, v)

	// Tasks submitted on node 1 run on all five.
	requireAllRun(t, nodes, 40, 100)
}

// TestSwarmPinnedPlacement pins calls to a peer with CallWith(On): they
// run there whatever the load, and a call pinned to a peer that is not in
// the swarm fails with an error naming it.
func TestSwarmPinnedPlacement(t *testing.T) {
	nodes := swarm(t, 3, 2)
	ctx := ctxT(t)
	for _, target := range []*node.Node{nodes[2], nodes[1], nodes[0]} {
		r, err := nodes[0].CallWith(ctx, node.CallOptions{On: target.ID()}, "whoami")
		require.NoError(t, err)
		who, err := node.As[string](r[0]).Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, target.ID(), who)
	}
	const stranger = "12D3KooWJNGVgkWmE6moSVwpoF4se6bgk4admrXaoGwLu8V9J5G7"
	r, err := nodes[0].CallWith(ctx, node.CallOptions{On: stranger}, "whoami")
	require.NoError(t, err)
	_, err = r[0].Get(ctx)
	assert.ErrorContains(t, err, "cannot run on peer "+stranger)
}
