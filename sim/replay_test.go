package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/sched"
)

// TestCoreReplayDES records every step of every virtual peer's core in a
// run with churn (crashes, a graceful leave, joins), then feeds each
// peer's events to a new scheduler with the same configuration: the
// actions are the same, step for step. The simulator adds a network model
// and a virtual clock around the very core the node runs (node's
// TestCoreReplay checks the node the same way).
func TestCoreReplayDES(t *testing.T) {
	type rec struct {
		cfg sched.Config
		r   *sched.Recording
	}
	var recs []rec
	schedHook = func(c *sched.Config) {
		r := &sched.Recording{}
		c.Trace = r.Record()
		cp := *c
		// The simulator hands each peer a Rand of its own; the replay
		// needs an equal one, drawn from the same seed.
		cp.Rand = nil
		recs = append(recs, rec{cp, r})
	}
	defer func() { schedHook = nil }()
	sc := DefaultScenario()
	sc.Peers = 12
	sc.Workload.Tasks = 3000
	sc.Churn.Events = []ChurnEvent{
		{At: Duration(300 * time.Millisecond), Action: "crash", Count: 2},
		{At: Duration(500 * time.Millisecond), Action: "leave", Count: 1},
		{At: Duration(700 * time.Millisecond), Action: "join", Count: 2},
	}
	s, err := New(sc, Options{})
	require.NoError(t, err)
	res, err := s.Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, res.Lost)
	steps := 0
	for i, x := range recs {
		x.cfg.Rand = peerRand(sc.Seed, i)
		require.NoError(t, sched.Replay(x.cfg, x.r), "peer %s", x.cfg.Self)
		steps += len(x.r.Steps)
	}
	t.Logf("%d peers, %d steps replayed alike", len(recs), steps)
}
