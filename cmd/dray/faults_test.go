package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// TestExecutorKilled submits 60 sleep(100) tasks on peer 1 of 3 and kills
// peer 2 with SIGKILL while it runs some of them: every result still
// arrives — the owner hears the connection drop, takes back what it had
// handed to peer 2 and places it again — and each names a peer that ran
// it (peer 2 only for tasks it finished before it died).
func TestExecutorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three dray node processes")
	}
	p1 := startPeer(t)
	p2 := startPeer(t, "--bootstrap", p1.addrs[0])
	p3 := startPeer(t, "--bootstrap", p1.addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c1, c2 := api.NewClient(p1.api), api.NewClient(p2.api)
	defer c1.CloseIdleConnections()
	defer c2.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c1.Stats(ctx)
		require.NoError(t, err)
		if st.Sched.Peers >= 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "peer 1 never heard both others' beacons")
		time.Sleep(50 * time.Millisecond) // poll: beacons come every 250 ms
	}

	const tasks = 60
	args := make([][]json.RawMessage, tasks)
	for i := range args {
		args[i] = []json.RawMessage{json.RawMessage("100")}
	}
	calls, err := c1.Map(ctx, api.MapRequest{Func: "sleep", Args: args})
	require.NoError(t, err)
	require.Len(t, calls, tasks)
	for {
		st, err := c2.Stats(ctx)
		require.NoError(t, err)
		if st.Net.TasksIn > 0 && st.Sched.Running > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "peer 2 never ran a task")
		time.Sleep(10 * time.Millisecond) // poll: the hand-off is asynchronous
	}
	require.NoError(t, p2.cmd.Process.Kill())
	<-p2.exited

	ran := map[string]int{}
	for i, call := range calls {
		v, err := c1.Get(ctx, call.Refs[0], time.Minute)
		require.NoError(t, err, "task %d", i+1)
		var who string
		require.NoError(t, json.Unmarshal(v, &who))
		require.True(t, slices.Contains([]string{p1.peer, p2.peer, p3.peer}, who), "task %d ran on %q", i+1, who)
		ran[who]++
	}
	t.Logf("tasks by peer: 1: %d, 2 (killed): %d, 3: %d", ran[p1.peer], ran[p2.peer], ran[p3.peer])
	assert.Equal(t, tasks, ran[p1.peer]+ran[p2.peer]+ran[p3.peer])
	assert.Positive(t, ran[p3.peer], "peer 3 ran nothing")
}
