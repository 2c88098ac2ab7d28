package sim

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/sched"
)

// TestShardCount: auto follows sched.Shards of the initial peers, forced
// counts stay, and a beacon scope replaces the shards.
func TestShardCount(t *testing.T) {
	for _, tc := range []struct {
		peers, shards, scope, want int
	}{
		{50, 0, 0, 1},
		{64, 0, 0, 1},
		{65, 0, 0, 2},
		{1000, 0, 0, 16},
		{10000, 0, 0, 256},
		{1000, 1, 0, 1},
		{100, 8, 0, 8},
		{1000, 0, 16, 0},
		{1000, 1, 16, 0},
	} {
		sc := DefaultScenario()
		sc.Peers, sc.Shards, sc.BeaconScope = tc.peers, tc.shards, tc.scope
		require.NoError(t, sc.Validate())
		assert.Equal(t, tc.want, sc.shardCount(), "%+v", tc)
		if tc.scope == 0 && tc.shards == 0 {
			assert.Equal(t, sched.Shards(tc.peers), sc.shardCount())
		}
	}
}

// TestShardDelivery: after a run without probes, every peer knows exactly
// the live peers whose home shard is its home or extra shard — the
// peers whose beacons it hears — and no other.
func TestShardDelivery(t *testing.T) {
	for _, shards := range []int{0, 1, 4} {
		sc := DefaultScenario()
		sc.Peers = 300
		sc.Shards = shards
		sc.ProbeBatch = 0
		sc.Workload.Tasks = 600
		// Tasks of 3 s: every peer ticks (and takes its beacons) after the
		// joiners' first beacons.
		sc.Workload.Duration = Dist{Kind: "constant", Mean: Duration(3 * time.Second)}
		sc.Submit.From = "all"
		sc.Churn.Events = []ChurnEvent{{At: Duration(100 * time.Millisecond), Action: "join", Count: 4}}
		s, err := New(sc, Options{})
		require.NoError(t, err)
		r, err := s.Run(t.Context())
		require.NoError(t, err)
		require.Zero(t, r.Lost)
		require.Zero(t, r.SchedErrors, r.FirstSchedError)
		want := sched.Shards(sc.Peers)
		if shards > 0 {
			want = shards
		}
		require.Equal(t, want, s.shards)
		require.Equal(t, want, r.Shards)
		if want > 1 {
			assert.Equal(t, strconv.Itoa(want)+" shards", r.BeaconScope)
		} else {
			assert.Equal(t, "all", r.BeaconScope)
		}
		for _, p := range s.peers {
			home, extra := sched.ShardOf(p.name, want)
			if want > 1 {
				require.Equal(t, int32(home), p.home)
				require.Equal(t, int32(extra), p.extra)
				require.NotEqual(t, p.home, p.extra)
			}
			for _, q := range s.peers {
				qh, _ := sched.ShardOf(q.name, want)
				hears := q != p && q.alive && (qh == home || qh == extra)
				require.Equal(t, hears, p.s.Knows(q.name), "shards %d: %s hears %s", want, p.name, q.name)
			}
		}
		// Every listener list holds each peer of its shard once, sorted.
		n := 0
		for _, ls := range s.listeners {
			require.True(t, slices.IsSorted(ls))
			n += len(ls)
		}
		if want > 1 {
			require.Equal(t, 2*len(s.peers), n)
		} else {
			require.Equal(t, len(s.peers), n)
		}
	}
}

// TestShardBeaconCount: one beacon costs one message per live listener of
// the publisher's home shard (on its side of a partition), itself not
// included, and lands in that shard's log only.
func TestShardBeaconCount(t *testing.T) {
	sc := DefaultScenario()
	sc.Peers = 500
	sc.Workload.Tasks = 10
	s, err := New(sc, Options{})
	require.NoError(t, err)
	s.buildNeighbours()
	for _, p := range s.peers {
		s.startPeer(p)
	}
	require.Equal(t, 8, s.shards)
	p := s.peers[7]
	listeners := s.listeners[p.home]
	require.Contains(t, listeners, p.idx)
	// A dead listener and one across a partition do not count.
	var dead, away int32 = -1, -1
	for _, r := range listeners {
		switch {
		case r == p.idx:
		case dead < 0:
			dead = r
		case away < 0:
			away = r
		}
	}
	s.down(s.peers[dead])
	s.side[away] = 1
	s.partition = 1
	before := s.m.msgs[mBeacon]
	s.publish(p, sched.Load{Slots: 4, Free: 4, Funcs: 1})
	assert.Equal(t, uint64(len(listeners)-3), s.m.msgs[mBeacon]-before)
	for h := range s.logs {
		if h == int(p.home) {
			require.Len(t, s.logs[h].msgs, 1)
		} else {
			require.Empty(t, s.logs[h].msgs)
		}
	}
}

// TestShardsBoundMessages: with the node's default shards, the messages a
// task costs besides the DHT (beacons, offers, hand-offs, probes) stay
// flat from 128 to 1,024 peers; with one topic, beacons grow with the
// swarm (512 peers on one topic already cost over 3 times 1,024 on
// shards).
func TestShardsBoundMessages(t *testing.T) {
	perTask := func(peers, shards int) (beacons, other float64, r *Result) {
		sc := DefaultScenario()
		sc.Peers = peers
		sc.Shards = shards
		sc.Workload.Tasks = 10 * peers
		sc.Workload.Load = 0.8
		sc.Submit.From = "all"
		r = run(t, sc)
		require.Zero(t, r.Lost)
		for _, k := range r.ByKind {
			if k.Kind == "beacon" {
				beacons = float64(k.Messages) / float64(r.TasksRun)
			}
			if !strings.HasPrefix(k.Kind, "dht-") {
				other += float64(k.Messages) / float64(r.TasksRun)
			}
		}
		return beacons, other, r
	}
	b1, o1, r1 := perTask(128, 0)
	b2, o2, r2 := perTask(1024, 0)
	t.Logf("shards auto: 128 peers (%d shards) %.2f beacons, %.2f non-DHT msgs a task, %.3fx; 1,024 peers (%d shards) %.2f, %.2f, %.3fx",
		r1.Shards, b1, o1, r1.Ratio, r2.Shards, b2, o2, r2.Ratio)
	assert.Less(t, o2, 1.5*o1, "non-DHT messages a task must not grow with the swarm")
	assert.LessOrEqual(t, r2.Ratio, 1.1)
	bAll, _, _ := perTask(512, 1)
	t.Logf("one topic, 512 peers: %.2f beacons a task", bAll)
	assert.Greater(t, bAll, 3*b2, "one topic: every peer hears every beacon")
}
