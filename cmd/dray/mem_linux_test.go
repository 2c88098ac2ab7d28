package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memSizeEnv sets the size of the value TestJSONMemoryBounded fetches
// ("256MiB", "1GiB"); the default, 32 MiB, keeps CI fast.
const memSizeEnv = "DRAY_TEST_JSON_SIZE"

// parseSize reads a byte size of memSizeEnv: "256MiB", "1GB", "1048576"
// (the sizes --memory takes, but no share of memory).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	} {
		if p, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(p), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 256MiB or 1GiB", s)
	}
	return int64(v * float64(mult)), nil
}

// TestJSONMemoryBounded fetches a large byte-string value as JSON from a
// `dray node` process — with `dray get` (no --out, piped) and with `dray
// run`, a call with wait — and checks that the node's peak RSS stays under
// its store budget + 64 MiB, and the CLI's under 64 MiB. Before the
// answers were streamed, a 256 MiB value took the node to 1.6 GB.
func TestJSONMemoryBounded(t *testing.T) {
	size := int64(32 << 20)
	if s := os.Getenv(memSizeEnv); s != "" {
		v, err := parseSize(s)
		require.NoError(t, err, memSizeEnv)
		size = v
	}
	const budget = 16 << 20
	const slack = 64 << 20
	p := startPeer(t, "--memory", strconv.Itoa(budget))
	pid := p.cmd.Process.Pid
	if err := resetPeak(pid); err != nil {
		t.Skipf("cannot reset the peak RSS of a child process: %v", err)
	}
	file := filepath.Join(t.TempDir(), "value")
	f, err := os.Create(file)
	require.NoError(t, err)
	_, err = io.Copy(f, genReader(7, size))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	c := strings.TrimSpace(ok(t, p.api, "put", file))
	want := int64(len(`{"/":{"bytes":"`)) + int64(base64.RawStdEncoding.EncodedLen(int(size))) + int64(len(`"}}`)) + 1

	// dray get, piped.
	require.NoError(t, resetPeak(pid))
	before := rss(t, pid, "VmRSS")
	cli := drayPiped(t, p.api, want, "get", c)
	peak := rss(t, pid, "VmHWM")
	t.Logf("get %d MiB as JSON: node RSS %d MiB before, peak %d MiB; CLI peak %d MiB", size>>20, before>>20, peak>>20, cli>>20)
	assert.Less(t, peak, int64(budget+slack), "node peak RSS")
	assert.Less(t, cli, int64(slack), "CLI peak RSS")

	// dray run: the same bytes made by a task, answered by a call with
	// wait. Making them takes their size in the worker, so the bound is on
	// what the answer adds once the task is done: submit it, wait for it,
	// then call it again (bytes is deterministic: the same output).
	arg := strconv.FormatInt(size, 10)
	out := strings.TrimSpace(ok(t, p.api, "submit", "bytes", arg, "7"))
	ok(t, p.api, "fetch", out)
	require.NoError(t, resetPeak(pid))
	before = rss(t, pid, "VmRSS")
	cli = drayPiped(t, p.api, want, "run", "bytes", arg, "7")
	peak = rss(t, pid, "VmHWM")
	t.Logf("run with a %d MiB result: node RSS %d MiB before, peak %d MiB; CLI peak %d MiB", size>>20, before>>20, peak>>20, cli>>20)
	assert.Less(t, peak-before, int64(slack), "node peak RSS above its RSS before the call")
	assert.Less(t, cli, int64(slack), "CLI peak RSS")
}

// resetPeak resets the peak RSS (VmHWM) of process pid to its RSS.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// rss reads a size field (VmRSS, VmHWM) of process pid, in bytes.
func rss(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err, line)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// drayPiped runs a dray command against api with stdout on a pipe, checks
// that it prints want bytes ending in a newline, and returns its peak RSS,
// read from /proc while it still has its last bytes to write (rusage's
// maxrss would count the test process's, which an exec'd child inherits).
func drayPiped(t *testing.T, api string, want int64, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(drayBin, args...)
	cmd.Env = append(testEnv(), "DRAY_API="+api, "DRAY_DATA="+t.TempDir())
	var errOut stderrBuf // written as the command runs
	cmd.Stderr = &errOut
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	const tail = 1 << 20 // well above a pipe's buffer: the command is still running
	n, err := io.CopyN(io.Discard, out, want-tail)
	require.NoError(t, err, "dray %v: %s", args, errOut.errText())
	peak := rss(t, cmd.Process.Pid, "VmHWM")
	rest, err := io.ReadAll(out)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait(), "dray %v: %s", args, errOut.errText())
	assert.Equal(t, want, n+int64(len(rest)), "bytes of JSON printed")
	assert.True(t, bytes.HasSuffix(rest, []byte("\n")))
	return peak
}
