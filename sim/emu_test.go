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
		{"probes", func(s *Scenario) { s.ProbeBatch = 2 }, "probe_batch 2"},
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
