package node_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
	"github.com/dray-project/dray/p2p"
)

// Phases of TestSwarmPartitionHeals, recorded with every run.
const (
	phaseJoined      = iota // all four peers see each other
	phasePartitioned        // {0,1} | {2,3}
	phaseHealed             // linked and connected again
)

// partRuns records the runs of the partition test's function on every
// peer: where each ran, and the phase it started and ended in. All the
// nodes live in this process, so one recorder sees them all.
type partRuns struct {
	phase atomic.Int32

	mu      sync.Mutex
	running map[string]int    // peer -> runs in progress
	ended   map[string][3]int // peer -> runs ended, by phase
	cut     map[string]int    // peer -> runs that started before the partition and ended in it
}

func newPartRuns() *partRuns {
	return &partRuns{running: map[string]int{}, ended: map[string][3]int{}, cut: map[string]int{}}
}

// square is the function the test runs: it sleeps ms milliseconds and
// returns a value the test can check and the peer that ran it.
func (r *partRuns) square(ctx context.Context, i, ms int) (int64, string, error) {
	who := node.FromContext(ctx).ID()
	start := r.phase.Load()
	r.mu.Lock()
	r.running[who]++
	r.mu.Unlock()
	tm := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
	end := r.phase.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running[who]--
	e := r.ended[who]
	e[end]++
	r.ended[who] = e
	if start == phaseJoined && end == phasePartitioned {
		r.cut[who]++
	}
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	return partValue(i), who, nil
}

func (r *partRuns) runningOn(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[id]
}

// endedOn counts the runs that ended on the peers in phase.
func (r *partRuns) endedOn(phase int, ids ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int
	for _, id := range ids {
		n += r.ended[id][phase]
	}
	return n
}

func (r *partRuns) cutOn(ids ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int
	for _, id := range ids {
		n += r.cut[id]
	}
	return n
}

func partValue(i int) int64 { return int64(i)*int64(i) + 7 }

// mockSwarm is k dray nodes over go-libp2p's in-memory network, every
// pair linked and connected, so a test can cut and restore links.
type mockSwarm struct {
	mn    mocknet.Mocknet
	nodes []*node.Node
	nets  []*p2p.Host
}

// newMockSwarm starts k nodes of one slot each, with the built-ins and
// square registered, and returns once every node has heard every other's
// beacon.
func newMockSwarm(t *testing.T, k int, runs *partRuns) *mockSwarm {
	t.Helper()
	ctx := ctxT(t)
	quiet := slog.New(slog.DiscardHandler)
	ms := &mockSwarm{mn: mocknet.New()}
	t.Cleanup(func() { _ = ms.mn.Close() }) // runs last: after the nodes and hosts
	for range k {
		h, err := ms.mn.GenPeer()
		require.NoError(t, err)
		net, err := p2p.New(ctx, p2p.Config{Host: h, Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { _ = net.Close() })
		reg := node.NewRegistry()
		require.NoError(t, builtin.Register(reg))
		reg.MustRegister("part.square", runs.square)
		cfg := node.DefaultConfig()
		cfg.Slots = 1
		cfg.Functions = reg
		cfg.Network = net
		cfg.Store.MemoryBudget = 64 << 20
		cfg.Logger = quiet
		n, err := node.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close() })
		ms.nodes = append(ms.nodes, n)
		ms.nets = append(ms.nets, net)
	}
	for a := range k {
		for b := a + 1; b < k; b++ {
			ms.link(t, a, b)
		}
	}
	ms.waitPeers(t, "every peer hears the others", k-1)
	return ms
}

// link links and connects peers a and b.
func (ms *mockSwarm) link(t *testing.T, a, b int) {
	t.Helper()
	pa, pb := ms.nets[a].ID(), ms.nets[b].ID()
	_, err := ms.mn.LinkPeers(pa, pb)
	require.NoError(t, err)
	_, err = ms.mn.ConnectPeers(pa, pb)
	require.NoError(t, err)
}

// split cuts every link between side a and side b (links first, so that
// nothing dials across the cut again) and closes the connections across.
func (ms *mockSwarm) split(t *testing.T, a, b []int) {
	t.Helper()
	for _, i := range a {
		for _, j := range b {
			pi, pj := ms.nets[i].ID(), ms.nets[j].ID()
			require.NoError(t, ms.mn.UnlinkPeers(pi, pj))
			require.NoError(t, ms.mn.DisconnectPeers(pi, pj))
		}
	}
}

// heal links and connects side a and side b again.
func (ms *mockSwarm) heal(t *testing.T, a, b []int) {
	t.Helper()
	for _, i := range a {
		for _, j := range b {
			ms.link(t, i, j)
		}
	}
}

// waitPeers waits until every node has a live beacon from exactly want
// peers.
func (ms *mockSwarm) waitPeers(t *testing.T, what string, want int) {
	t.Helper()
	eventually(t, what, 20*time.Second, func() bool {
		for _, n := range ms.nodes {
			if n.Stats().Sched.Peers != want {
				return false
			}
		}
		return true
	})
}

// eventually checks cond every 10 ms until it holds, failing the test
// with what when the deadline passes first. It logs how long it waited.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("waited %s until %s", time.Since(start).Round(time.Millisecond), what) }()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			require.FailNow(t, "timed out after "+within.String()+" waiting until "+what)
		case <-tick.C:
		}
	}
}

// TestSwarmPartitionHeals splits a swarm of four peers 2/2 while tasks
// submitted on peer 0 run on the far side, keeps it split while the near
// side carries on, and heals it: every task completes once with the right
// value, the tasks cut off are run again on the near side (the late
// completions from the far side are stale and ignored), and after the
// heal the far side takes work again.
func TestSwarmPartitionHeals(t *testing.T) {
	const (
		tasks = 40 // submitted before the partition
		after = 12 // submitted after the heal
		ms    = 200
	)
	runs := newPartRuns()
	sw := newMockSwarm(t, 4, runs)
	ctx := ctxT(t)
	id := func(i int) string { return sw.nodes[i].ID() }
	near, far := []int{0, 1}, []int{2, 3}
	nearIDs, farIDs := []string{id(0), id(1)}, []string{id(2), id(3)}

	type call struct {
		i    int
		refs []node.ObjectRef
	}
	var calls []call
	submit := func(from, to int) {
		for i := from; i < to; i++ {
			r, err := sw.nodes[0].Call(ctx, "part.square", i, ms)
			require.NoError(t, err)
			require.Len(t, r, 2)
			calls = append(calls, call{i, r})
		}
	}
	submit(0, tasks)

	// Split while both far peers run one of the tasks.
	eventually(t, "peers 2 and 3 run a task", 20*time.Second, func() bool {
		return runs.runningOn(id(2)) > 0 && runs.runningOn(id(3)) > 0
	})
	runs.phase.Store(phasePartitioned)
	sw.split(t, near, far)
	sw.waitPeers(t, "each side forgets the other", 1)

	// The near side carries on alone: the partition lasts until it has
	// finished a few tasks (bounded by the deadline).
	eventually(t, "the near side finishes tasks during the partition", 20*time.Second, func() bool {
		return runs.endedOn(phasePartitioned, nearIDs...) >= 4
	})
	require.Positive(t, runs.cutOn(farIDs...), "no task was running on the far side when it was cut off")

	runs.phase.Store(phaseHealed)
	sw.heal(t, near, far)
	sw.waitPeers(t, "every peer hears the others again", 3)
	submit(tasks, tasks+after)

	ranOn := map[string]int{}
	for _, c := range calls {
		v, err := node.As[int64](c.refs[0]).Get(ctx)
		require.NoError(t, err, "task %d", c.i)
		require.Equal(t, partValue(c.i), v, "task %d", c.i)
		who, err := node.As[string](c.refs[1]).Get(ctx)
		require.NoError(t, err, "task %d", c.i)
		ranOn[who]++
	}
	var nearRan, farRan, farAfter int
	for _, i := range near {
		nearRan += ranOn[id(i)]
	}
	for _, i := range far {
		farRan += ranOn[id(i)]
	}
	farAfter = runs.endedOn(phaseHealed, farIDs...)
	all := append(append([]string(nil), nearIDs...), farIDs...)
	t.Logf("results by side: near %d, far %d; runs: %d before the split, %d during it (%d of them cut off on the far side), %d after the heal, for %d tasks",
		nearRan, farRan, runs.endedOn(phaseJoined, all...), runs.endedOn(phasePartitioned, all...),
		runs.cutOn(farIDs...), runs.endedOn(phaseHealed, all...), tasks+after)
	assert.Equal(t, tasks+after, nearRan+farRan, "a result came from outside the swarm")
	assert.Positive(t, nearRan, "no result came from the near side")
	assert.Positive(t, farRan, "no result came from the far side")
	assert.Positive(t, farAfter, "the far side took no work after the heal")
	eventually(t, "no peer tracks a task any more", 20*time.Second, func() bool {
		for _, n := range sw.nodes {
			if n.Stats().Tasks != 0 {
				return false
			}
		}
		return true
	})
}
