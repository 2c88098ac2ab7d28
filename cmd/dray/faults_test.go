package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/node/builtin"
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

// TestHolderKilled submits bytes tasks on peer 1 of 3 whose results are
// too large to travel back with the completion (over 64 KiB): each stays on
// the peer that ran it, lent to peer 1. Once every task has finished and
// before anyone fetched a result, peer 2 is killed with SIGKILL; every Get
// on peer 1 still returns the right bytes, byte for byte, because peer 1
// finds the results peer 2 held lost and rebuilds them from their lineage
// (runs their tasks again).
func TestHolderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three dray node processes")
	}
	p1 := startPeer(t)
	p2 := startPeer(t, "--bootstrap", p1.addrs[0])
	startPeer(t, "--bootstrap", p1.addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c1, c2 := api.NewClient(p1.api), api.NewClient(p2.api)
	defer c1.CloseIdleConnections()
	defer c2.CloseIdleConnections()
	waitFor(t, 30*time.Second, "peer 1 hears both others' beacons", func() (bool, error) {
		st, err := c1.Stats(ctx)
		return st.Sched.Peers >= 2, err
	})

	const (
		batch = 40        // tasks a round
		size  = 128 << 10 // over the 64 KiB a completion carries inline
	)
	// Submit rounds of tasks until peer 2 has run some: peer 1 runs what
	// its own slots take and hands the rest to peers 2 and 3 by their
	// load, so a round almost always gives peer 2 a share.
	var calls []api.CallResult
	for round := 0; ; round++ {
		args := make([][]json.RawMessage, batch)
		for i := range args {
			// A seed per task: bytes is deterministic, so equal arguments
			// would be one task.
			args[i] = []json.RawMessage{json.RawMessage(strconv.Itoa(size)), json.RawMessage(strconv.Itoa(len(calls) + i + 1))}
		}
		res, err := c1.Map(ctx, api.MapRequest{Func: "bytes", Args: args})
		require.NoError(t, err)
		require.Len(t, res, batch)
		calls = append(calls, res...)
		waitFor(t, time.Minute, "every task finished", func() (bool, error) {
			st, err := c1.Stats(ctx)
			return st.Tasks == 0 && st.Sched.Forwarded == 0, err
		})
		st2, err := c2.Stats(ctx)
		require.NoError(t, err)
		if st2.Net.TasksIn > 0 {
			break
		}
		require.Less(t, round, 4, "peer 2 ran none of %d tasks: nothing to lose", len(calls))
	}
	st1, err := c1.Stats(ctx)
	require.NoError(t, err)
	st2, err := c2.Stats(ctx)
	require.NoError(t, err)
	t.Logf("%d tasks: peer 1 handed out %d; peer 2 ran %d", len(calls), st1.Net.TasksOut, st2.Net.TasksIn)
	require.Zero(t, st1.Net.Fetches, "peer 1 fetched results before any Get")
	require.Zero(t, st1.Net.Rebuilt)
	require.NoError(t, p2.cmd.Process.Kill())
	<-p2.exited

	for i, call := range calls {
		want, err := builtin.Bytes(size, uint64(i+1))
		require.NoError(t, err)
		v, err := c1.Get(ctx, call.Refs[0], time.Minute)
		require.NoError(t, err, "task %d", i+1)
		var val struct { // DAG-JSON bytes: {"/":{"bytes":"<unpadded base64>"}}
			Link struct {
				Bytes string `json:"bytes"`
			} `json:"/"`
		}
		require.NoError(t, json.Unmarshal(v, &val), "task %d", i+1)
		got, err := base64.RawStdEncoding.DecodeString(val.Link.Bytes)
		require.NoError(t, err, "task %d", i+1)
		require.True(t, bytes.Equal(want, got), "task %d: %d bytes, not those of bytes(%d, %d)", i+1, len(got), size, i+1)
	}
	st1, err = c1.Stats(ctx)
	require.NoError(t, err)
	t.Logf("peer 1 rebuilt %d results, fetched %d", st1.Net.Rebuilt, st1.Net.Fetches)
	assert.Positive(t, st1.Net.Rebuilt, "no result was rebuilt")
	assert.Equal(t, st2.Net.TasksIn, st1.Net.Rebuilt, "every result peer 2 held, and only those, is rebuilt")
}
