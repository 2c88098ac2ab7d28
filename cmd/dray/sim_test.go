package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSim(t *testing.T) {
	out, errOut, code := dray(t, "sim", "--peers", "10", "--tasks", "300", "--seed", "4")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Empty(t, errOut, "no progress bar when stderr is not a terminal")
	for _, want := range []string{"makespan", "x ideal", "task latency p50/p95/p99", "messages per task",
		"DHT lookup hops p50/p99", "load imbalance", "tasks re-run", "tasks lost                   0", "peers / slots                10 /"} {
		require.Contains(t, out, want)
	}
	again, _, code := dray(t, "sim", "--peers", "10", "--tasks", "300", "--seed", "4")
	require.Equal(t, 0, code)
	require.Equal(t, out, again, "the same seed gives the same output")
}

// TestSimShards: the node's shards by default, one topic or a forced count
// by flag, as the summary says.
func TestSimShards(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "(beacon scope 4 shards)"},
		{[]string{"--shards", "1"}, "(beacon scope all)"},
		{[]string{"--shards", "8"}, "(beacon scope 8 shards)"},
	} {
		out, errOut, code := dray(t, append([]string{"sim", "--peers", "200", "--tasks", "2000", "--probe-batch", "8", "--max-retries", "1"}, tc.args...)...)
		require.Equal(t, 0, code, "stderr: %s", errOut)
		require.Contains(t, out, tc.want)
	}
}

func TestSimScenarioAndOut(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	require.NoError(t, os.WriteFile(sc, []byte("peers: 8\nworkload: {kind: chain, tasks: 200, length: 5, duration: {dist: constant, mean: 5ms}}\n"), 0o644))
	out, errOut, code := dray(t, "sim", "--scenario", sc, "--slots", "2", "--out", filepath.Join(dir, "out"), "--quiet")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out, "s (seed 1, chain)")
	require.Contains(t, out, "peers / slots                8 / 16")
	for _, f := range []string{"timeseries.csv", "latency_cdf.csv", "peers.csv", "messages.csv", "queues.csv",
		"throughput.svg", "queues.svg", "latency_cdf.svg"} {
		st, err := os.Stat(filepath.Join(dir, "out", f))
		require.NoError(t, err, f)
		require.Positive(t, st.Size(), f)
	}
}

func TestSimBaseline(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(sc, []byte("peers: 20\nworkload: {kind: bag, tasks: 2000, duration: {dist: constant, mean: 20ms}}\n"+
		"churn: {events: [{at: 100ms, action: crash, count: 4}]}\n"), 0o644))
	out, errOut, code := dray(t, "sim", "--scenario", sc, "--baseline")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out, "makespan penalty")
	require.Contains(t, out, "without churn and partitions")
	require.Contains(t, out, "4 crashed")
}

func TestSimErrors(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "u.yaml")
	require.NoError(t, os.WriteFile(unknown, []byte("peers: 3\nlatency: 5ms\n"), 0o644))
	badKind := filepath.Join(dir, "k.json")
	require.NoError(t, os.WriteFile(badKind, []byte(`{"workload": {"kind": "dag"}}`), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--mode", "emu", "--baseline"}, "dray: sim --mode emu: --baseline is for --mode des"},
		{[]string{"sim", "--mode", "emu", "--peers", "5000"}, "dray: sim: emu: 5000 peers: emulation runs up to 1000"},
		{[]string{"sim", "--mode", "emu", "--beacon-scope", "4"}, "dray: sim: emu: beacon_scope 4"},
		{[]string{"sim", "--mode", "emu", "--peers", "0"}, "dray: sim: bad scenario: peers is 0"},
		{[]string{"sim", "--mode", "fast"}, `dray: --mode "fast": want des or emu`},
		{[]string{"sim", "--scenario", filepath.Join(dir, "missing.yaml")}, "dray: sim: read scenario"},
		{[]string{"sim", "--scenario", unknown}, "field latency not found"},
		{[]string{"sim", "--scenario", badKind}, `workload.kind is "dag"`},
		{[]string{"sim", "--peers", "0"}, "dray: sim: bad scenario: peers is 0"},
		{[]string{"sim", "--shards", "3"}, "dray: sim: bad scenario: shards is 3"},
		{[]string{"sim", "--probe-batch", "-1"}, "probe_batch"},
		{[]string{"sim", "extra"}, "dray: unknown command"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			out, errOut, code := dray(t, tc.args...)
			require.NotEqual(t, 0, code)
			require.Empty(t, out)
			require.Contains(t, errOut, tc.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
		})
	}
}

func TestSimEmu(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := dray(t, "sim", "--mode", "emu", "--peers", "6", "--tasks", "300", "--seed", "3", "--out", dir)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Empty(t, errOut)
	for _, want := range []string{"emu: 6 real nodes over mocknet", "makespan", "x ideal", "task latency p50/p95/p99",
		"messages per task", "DHT lookup hops p50/p99      n/a (emu)", "tasks lost                   0",
		"peers / slots                6 /", "300 top-level, 300 finished", "nondeterministic", "GossipSub"} {
		require.Contains(t, out, want)
	}
	for _, f := range []string{"timeseries.csv", "latency_cdf.csv", "peers.csv", "messages.csv", "queues.csv",
		"throughput.svg", "queues.svg", "latency_cdf.svg"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		require.Positive(t, st.Size(), f)
	}
}
