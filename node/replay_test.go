package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/sched"
)

// TestCoreReplay records every step the core of two real nodes takes while
// they share work (hand-offs, completions, beacons, ticks), then feeds the
// events to new schedulers with the same configuration: the actions are
// the same, step for step. The node is a shell around a deterministic
// core (sim's TestCoreReplayDES checks the simulator the same way).
func TestCoreReplay(t *testing.T) {
	var mu sync.Mutex
	recs := map[sched.PeerID]*sched.Recording{}
	schedHook = func(c *sched.Config) {
		r := &sched.Recording{}
		mu.Lock()
		recs[c.Self] = r
		mu.Unlock()
		c.Trace = r.Record() // called under the node's n.mu
	}
	defer func() { schedHook = nil }()
	a, _, b, _ := pair(t, napRegistry(t), nil, nil)
	waitHeard(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	remote := 0
	for _, r := range naps(t, ctx, a, 24, 20) {
		who, err := As[string](r).Get(ctx)
		require.NoError(t, err)
		if who == b.ID() {
			remote++
		}
	}
	require.Positive(t, remote, "no task ran on the other node: the recording shows no hand-off")
	for _, n := range []*Node{a, b} {
		n.mu.Lock() // a consistent prefix: the node steps its core under n.mu
		rec := &sched.Recording{Steps: append([]sched.RecordedStep(nil), recs[n.schedCfg.Self].Steps...)}
		cfg := n.schedCfg
		n.mu.Unlock()
		require.NotEmpty(t, rec.Steps)
		require.NoError(t, sched.Replay(cfg, rec), "node %s", n.ID())
		kinds := map[sched.EventKind]int{}
		for _, st := range rec.Steps {
			kinds[st.Event.Kind]++
		}
		t.Logf("node %s: %d steps replayed alike %v", n.ID(), len(rec.Steps), kinds)
	}
}
