package sim

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/sched"
)

// emuLAN is a small LAN bag scenario for the emulation tests.
func emuLAN(peers, tasks int) Scenario {
	sc := DefaultScenario()
	sc.Name = "emu-lan"
	sc.Peers = peers
	sc.Workload.Tasks = tasks
	sc.Workload.Duration = Dist{Kind: "exponential", Mean: Duration(20 * time.Millisecond)}
	sc.Warmup = Duration(300 * time.Millisecond)
	return sc
}

func TestEmuSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := RunEmu(ctx, emuLAN(8, 500), EmuOptions{})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, res.WriteSummary(&buf))
	t.Log("\n" + buf.String())
	require.Zero(t, res.Lost)
	require.Equal(t, 500, res.TasksRun)
}

// TestEmuShards runs real nodes on forced load shards, with probes and
// max retries passed through to node.Config: 12 peers on 4 shards each
// hear the peers of 2 shards (the warm-up waits for exactly those), and
// the lone submitter's probes find the others.
func TestEmuShards(t *testing.T) {
	sc := emuLAN(12, 400)
	sc.Shards = 4
	sc.ProbeBatch = 8
	sc.MaxRetries = -1
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := RunEmu(ctx, sc, EmuOptions{})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, res.WriteSummary(&buf))
	t.Log("\n" + buf.String())
	require.Zero(t, res.Lost)
	require.Equal(t, 400, res.TasksRun)
	require.Equal(t, 4, res.Shards)
	require.Equal(t, "4 shards", res.BeaconScope)
	require.Equal(t, 8, res.ProbeBatch)
	// Without probes, the submitter (peer 0) reaches the peers it hears
	// and those that hear its offers: 7 of 11 with seed 1.
	var home, extra [12]int
	for i := range 12 {
		k, err := peerKey(sc.Seed, i)
		require.NoError(t, err)
		id, err := peer.IDFromPrivateKey(k)
		require.NoError(t, err)
		home[i], extra[i] = sched.ShardOf(sched.PeerID(id.String()), 4)
	}
	reach := 1
	for q := 1; q < 12; q++ {
		if home[q] == home[0] || home[q] == extra[0] || extra[q] == home[0] {
			reach++
		}
	}
	busy := 0
	for _, p := range res.peerRows {
		if p.ran > 0 {
			busy++
		}
	}
	t.Logf("%d of 12 peers ran tasks; %d without probes at most", busy, reach)
	require.Less(t, reach, 12)
	require.Greater(t, busy, reach, "probes reach peers beyond the submitter's shards")
}

// BenchmarkEmu100x10k reaches the target size: 100 real nodes and 10,000
// tasks (the default bag: exponential, mean 100 ms, 4 slots, one
// submitter). It takes about a minute and 1.5 GB, so it is a benchmark:
//
//	go test ./sim -run - -bench Emu100x10k -benchtime 1x
func BenchmarkEmu100x10k(b *testing.B) {
	sc := DefaultScenario()
	sc.Peers = 100
	sc.Workload.Tasks = 10000
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		peak := watchHeap(b)
		res, err := RunEmu(ctx, sc, EmuOptions{})
		cancel()
		require.NoError(b, err)
		var buf bytes.Buffer
		require.NoError(b, res.WriteSummary(&buf))
		b.Logf("wall %s, peak heap %d MiB\n%s", res.Wall, peak()>>20, buf.String())
		require.Zero(b, res.Lost)
		require.Equal(b, 10000, res.TasksRun)
		b.ReportMetric(res.Makespan.Seconds(), "makespan-s")
		b.ReportMetric(res.MsgsPerTask, "msgs/task")
	}
}

// watchHeap samples the heap until the returned function is called, which
// reports the peak (and the peak goroutine count through t.Log).
func watchHeap(t testing.TB) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	var gor int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			gor = max(gor, runtime.NumGoroutine())
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		t.Logf("peak goroutines %d", gor)
		return peak
	}
}

func TestEmuPeerKeysStable(t *testing.T) {
	id := func(seed uint64, i int) peer.ID {
		k, err := peerKey(seed, i)
		require.NoError(t, err)
		p, err := peer.IDFromPrivateKey(k)
		require.NoError(t, err)
		return p
	}
	require.Equal(t, id(1, 0), id(1, 0), "same seed and index: same ID")
	require.NotEqual(t, id(1, 0), id(1, 1))
	require.NotEqual(t, id(1, 0), id(2, 0))
}

func TestEmuRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Scenario)
		want string
	}{
		{"too many peers", func(s *Scenario) { s.Peers = 5000 }, "emulation runs up to 1000"},
		{"loss", func(s *Scenario) { s.Network.Loss = 0.01 }, "network.loss is not emulated"},
		{"beacon scope", func(s *Scenario) { s.BeaconScope = 8 }, "beacon_scope 8"},
		{"invalid", func(s *Scenario) { s.Peers = 0 }, "peers is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := emuLAN(4, 10)
			tc.edit(&sc)
			_, err := RunEmu(context.Background(), sc, EmuOptions{})
			require.ErrorContains(t, err, tc.want)
		})
	}
}
