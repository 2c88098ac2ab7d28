package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/internal/bintest"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/p2p"
)

// peerProc is a `dray node` process started by a test.
type peerProc struct {
	cmd   *exec.Cmd
	peer  string
	addrs []string
	api   string
	stderrBuf
	exited chan struct{}
}

// stderrBuf collects a child process's stderr; the process writes it while
// the test reads it.
type stderrBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *stderrBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *stderrBuf) errText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPeer starts `dray node` on loopback with its own data directory and
// reads its start-up lines: peer, addr..., api. Later flags in args win
// over the defaults (--slots 2 --memory 64MiB).
func startPeer(t testing.TB, args ...string) *peerProc {
	t.Helper()
	all := append([]string{"node", "--data", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--api", "127.0.0.1:0", "--no-mdns", "--slots", "2", "--memory", "64MiB"}, args...)
	return startCmd(t, exec.Command(drayBin, all...))
}

// startCmd starts a prepared `dray node` command (see startPeer). The
// test's cleanup stops it with SIGTERM (and kills it if it does not exit in
// time), whether the test passed or not.
func startCmd(t testing.TB, cmd *exec.Cmd) *peerProc {
	t.Helper()
	p := &peerProc{cmd: cmd, exited: make(chan struct{})}
	p.cmd.Env = testEnv()
	p.cmd.Stderr = p
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	deadline := time.After(30 * time.Second)
	for p.api == "" {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "dray node exited before it was ready: %s", p.errText())
			key, val, _ := strings.Cut(line, " ")
			switch key {
			case "peer":
				p.peer = val
			case "addr":
				p.addrs = append(p.addrs, val)
			case "api":
				p.api = val
			default:
				t.Fatalf("unexpected start-up line %q", line)
			}
		case <-deadline:
			t.Fatalf("dray node not ready after 30s: %s", p.errText())
		}
	}
	go func() { // nothing more is expected on stdout; drain it anyway
		for range lines {
		}
	}()
	require.NotEmpty(t, p.peer)
	require.NotEmpty(t, p.addrs)
	return p
}

// stopGrace is how long a stopped process gets to exit before it is killed.
const stopGrace = 30 * time.Second

// stop sends SIGTERM and checks a clean exit.
func (p *peerProc) stop(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		t.Fatalf("dray node did not stop within %s of SIGTERM: %s", stopGrace, p.errText())
	}
	assert.Equal(t, 0, p.cmd.ProcessState.ExitCode(), "stderr: %s", p.errText())
}

// at runs a dray command against the node at api (through DRAY_API).
func at(t *testing.T, api string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(drayBin, args...)
	cmd.Env = append(testEnv(), "DRAY_API="+api, "DRAY_DATA="+t.TempDir())
	return bintest.Run(t, cmd)
}

// ok runs a command that must succeed with nothing on stderr.
func ok(t *testing.T, api string, args ...string) string {
	t.Helper()
	out, errOut, code := at(t, api, args...)
	require.Equal(t, 0, code, "dray %v: %s", args, errOut)
	assert.Empty(t, errOut, "dray %v", args)
	return out
}

// TestNodes starts three peers, the second and third bootstrapping from
// the first, and drives them through the command line only.
func TestNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three dray node processes")
	}
	p1 := startPeer(t)
	p2 := startPeer(t, "--bootstrap", p1.addrs[0])
	p3 := startPeer(t, "--bootstrap", p1.addrs[0])
	procs := []*peerProc{p1, p2, p3}

	t.Run("id", func(t *testing.T) {
		for _, p := range procs {
			var info struct {
				Peer  string   `json:"peer"`
				Addrs []string `json:"addrs"`
				API   string   `json:"api"`
			}
			dec := json.NewDecoder(strings.NewReader(ok(t, p.api, "id")))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&info))
			assert.Equal(t, p.peer, info.Peer)
			assert.Equal(t, p.addrs, info.Addrs)
			assert.Equal(t, p.api, info.API)
			// --api works as well as DRAY_API, and whoami is the peer ID.
			out, errOut, code := dray(t, "--api", p.api, "run", "whoami")
			require.Equal(t, 0, code, errOut)
			assert.Equal(t, `"`+p.peer+`"`+"\n", out)
		}
	})

	t.Run("peers", func(t *testing.T) {
		for _, p := range procs {
			var want []string
			for _, q := range procs {
				if q != p {
					want = append(want, q.peer)
				}
			}
			slices.Sort(want)
			var got []string
			require.Eventually(t, func() bool {
				got = nil
				for _, line := range strings.Split(strings.TrimSpace(ok(t, p.api, "peers")), "\n") {
					if f := strings.Fields(line); len(f) > 0 {
						got = append(got, f[0])
						assert.Greater(t, len(f), 1, "peer line without addresses: %q", line)
					}
				}
				slices.Sort(got)
				return slices.Equal(want, got)
			}, 30*time.Second, 100*time.Millisecond, "peers of %s", p.peer)
		}
	})

	t.Run("put and get", func(t *testing.T) {
		dir := t.TempDir()
		data := make([]byte, 5<<20+3)
		_, _ = rand.Read(data)
		in := filepath.Join(dir, "in.bin")
		require.NoError(t, os.WriteFile(in, data, 0o600))
		c := strings.TrimSpace(ok(t, p2.api, "put", in))
		require.NotEmpty(t, c)
		outFile := filepath.Join(dir, "out.bin")
		assert.Empty(t, ok(t, p2.api, "get", "--out", outFile, c))
		got, err := os.ReadFile(outFile)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, got), "bytes differ")

		// From stdin, and the value as an argument by ref.
		cmd := exec.Command(drayBin, "put", "-")
		cmd.Env = append(testEnv(), "DRAY_API="+p2.api)
		cmd.Stdin = io.MultiReader(strings.NewReader("abc")) // a pipe, not a file
		out, err := cmd.Output()
		require.NoError(t, err)
		small := strings.TrimSpace(string(out))
		assert.Equal(t, `{"/":{"bytes":"YWJj"}}`+"\n", ok(t, p2.api, "get", small))
		assert.Equal(t, `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`+"\n",
			ok(t, p2.api, "run", "sha256", `{"/":"`+small+`"}`))

		// Another node finds the value through the DHT, fetches it and
		// verifies it (the provider record may need a moment to spread).
		outFile3 := filepath.Join(dir, "out3.bin")
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, errOut, code := dray(t, "--api", p3.api, "get", "--out", outFile3, c)
			if code == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "node 3 never fetched %s: %s", c, errOut)
			time.Sleep(100 * time.Millisecond)
		}
		got3, err := os.ReadFile(outFile3)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, got3), "bytes fetched by node 3 differ")
	})

	t.Run("fetch and stats", func(t *testing.T) {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		in := filepath.Join(t.TempDir(), "in.bin")
		require.NoError(t, os.WriteFile(in, data, 0o600))
		c := strings.TrimSpace(ok(t, p1.api, "put", in))
		// Node 2 finds the value through the DHT (the provider record may
		// need a moment to spread), fetches and verifies it.
		var line string
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, errOut, code := at(t, p2.api, "fetch", c)
			if code == 0 {
				line = out
				break
			}
			require.Contains(t, errOut, "unknown ref", "only a missing provider record is worth a retry")
			require.True(t, time.Now().Before(deadline), "node 2 never fetched %s: %s", c, errOut)
			time.Sleep(100 * time.Millisecond)
		}
		f := strings.Fields(line)
		require.Len(t, f, 4, "CID SIZE SECONDS GB/s, got %q", line)
		assert.Equal(t, c, f[0])
		assert.Equal(t, fmt.Sprint(len(data)+5), f[1], "the bytes and a 5-byte CBOR head")
		secs, err := strconv.ParseFloat(f[2], 64)
		require.NoError(t, err)
		assert.Positive(t, secs)
		rate, err := strconv.ParseFloat(f[3], 64)
		require.NoError(t, err)
		assert.Positive(t, rate)
		// Fetched once: the value is local now, and so are its bytes.
		again := strings.Fields(ok(t, p2.api, "fetch", c))
		require.Len(t, again, 4)
		assert.Equal(t, []string{c, f[1], "-"}, []string{again[0], again[1], again[3]})
		outFile := filepath.Join(t.TempDir(), "out.bin")
		ok(t, p2.api, "get", "--out", outFile, c)
		got, err := os.ReadFile(outFile)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, got), "bytes fetched by node 2 differ")

		var st api.Stats
		dec := json.NewDecoder(strings.NewReader(ok(t, p2.api, "stats")))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&st))
		assert.GreaterOrEqual(t, st.Net.Fetches, uint64(1))
		assert.GreaterOrEqual(t, st.Net.BytesRecv, uint64(len(data)))
		assert.GreaterOrEqual(t, st.Store.Objects, 1)
		assert.Equal(t, 2, st.Sched.Slots)

		// The API kept a ref for the fetched value; free drops it, once.
		assert.Equal(t, c+" freed\n", ok(t, p2.api, "free", c))
		assert.Equal(t, c+" not kept\n", ok(t, p2.api, "free", c))
	})

	t.Run("placement with --on", func(t *testing.T) {
		for _, target := range []*peerProc{p3, p2, p1} {
			assert.Equal(t, `"`+target.peer+`"`+"\n", ok(t, p1.api, "run", "--on", target.peer, "whoami"))
		}
		out := ok(t, p2.api, "map", "--on", p3.peer, "sleep", "1", "1")
		assert.Equal(t, strings.Repeat(`"`+p3.peer+`"`+"\n", 2), out)
	})

	t.Run("tasks spread over the peers", func(t *testing.T) {
		args := []string{"map", "sleep"}
		for range 12 {
			args = append(args, "200")
		}
		out := ok(t, p1.api, args...)
		ran := map[string]int{}
		for _, line := range strings.Fields(out) {
			ran[strings.Trim(line, `"`)]++
		}
		t.Logf("sleep tasks per peer: %v", ran)
		assert.GreaterOrEqual(t, len(ran), 2, "tasks submitted on node 1 ran on other peers too")
	})

	t.Run("run", func(t *testing.T) {
		assert.Equal(t, "3\n", ok(t, p1.api, "run", "add", "1", "2"))
		assert.Equal(t, "-3\n", ok(t, p1.api, "run", "add", "-1", "-2"))
		assert.Equal(t, `{"dtype":"float64","shape":[1,1],"data":[11]}`+"\n", ok(t, p3.api, "run", "nd.matmul",
			`{"dtype":"float64","shape":[1,2],"data":[1,2]}`, `{"dtype":"float64","shape":[2,1],"data":[3,4]}`))
	})

	t.Run("map", func(t *testing.T) {
		assert.Equal(t, "55\n1\n6765\n0\n", ok(t, p3.api, "map", "fib", "10", "1", "20", "0"))
		assert.Equal(t, "3\n7\n", ok(t, p3.api, "map", "add", "[1,2]", "[3,4]"))
	})

	t.Run("submit then get", func(t *testing.T) {
		want := map[string]string{"25": "75025", "15": "610", "20": "6765"}
		cids := map[string]string{}
		for n := range want {
			out := strings.TrimSpace(ok(t, p2.api, "submit", "fib", n))
			require.NotContains(t, out, "\n", "one output, one CID")
			cids[n] = out
		}
		for n, c := range cids {
			assert.Equal(t, want[n]+"\n", ok(t, p2.api, "get", "--timeout", "30s", c), "fib %s", n)
		}
	})

	t.Run("functions", func(t *testing.T) {
		out := ok(t, p1.api, "functions")
		assert.Contains(t, out, "add(int64, int64) int64")
		assert.Contains(t, out, "nd.matmul(ndarray, ndarray) ndarray")
		// The three peers run this binary: each function is offered by
		// all three, the peers named.
		swarm := ok(t, p1.api, "functions", "--swarm")
		assert.Regexp(t, `add\(int64, int64\) int64\s+3 peer\(s\)`, swarm)
		for _, p := range procs {
			assert.Contains(t, swarm, p.peer)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"run", "ad", "1", "2"}, `unknown function "ad" (did you mean add`},
			{[]string{"run", "add", "1"}, "add takes 2 argument(s), got 1"},
			{[]string{"run", "add", "1", "{"}, "add: argument 2: invalid JSON"},
			{[]string{"run", "fib", "-1"}, "fib of negative -1"},
			{[]string{"map", "add", "1"}, "each ARG is a JSON list"},
			{[]string{"get", "notacid"}, `bad CID "notacid"`},
			{[]string{"get", "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "unknown ref"},
			{[]string{"put", "/nonexistent/file"}, "no such file"},
			{[]string{"submit", "add", "x", "1"}, "invalid JSON"},
			{[]string{"fetch", "notacid"}, `bad CID "notacid"`},
			{[]string{"free", "notacid"}, `bad CID "notacid"`},
			{[]string{"fetch", "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "no peer in the swarm holds it"},
		} {
			out, errOut, code := at(t, p1.api, tc.args...)
			assert.NotEqual(t, 0, code, "%v", tc.args)
			assert.Empty(t, out, "%v", tc.args)
			assert.Contains(t, errOut, tc.want, "%v", tc.args)
			assert.True(t, strings.HasPrefix(errOut, "dray: "), "got %q", errOut)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line, got %q", errOut)
		}
		// A non-byte value has no raw bytes, and --out leaves no file.
		c := strings.TrimSpace(ok(t, p1.api, "submit", "add", "1", "2"))
		outFile := filepath.Join(t.TempDir(), "x")
		_, errOut, code := at(t, p1.api, "get", "--out", outFile, c)
		assert.NotEqual(t, 0, code)
		assert.Contains(t, errOut, "not a byte string")
		assert.NoFileExists(t, outFile)
	})

	t.Run("second node on the same API address", func(t *testing.T) {
		_, errOut, code := dray(t, "node", "--api", p1.api, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
		assert.NotEqual(t, 0, code)
		assert.Contains(t, errOut, "is another dray node running?")
	})

	for _, p := range procs {
		p.stop(t)
	}
}

// TestNoNode checks the commands' answers when no node is there.
func TestNoNode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string // DRAY_API, if any
		want string
	}{
		{[]string{"peers"}, "", "no dray node at " + deadAPI + ": start one with `dray node`"},
		{[]string{"id"}, "", "no dray node at " + deadAPI},
		{[]string{"get", "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "", "no dray node at"},
		{[]string{"submit", "add", "1", "2"}, "", "no dray node at"},
		{[]string{"map", "fib", "1"}, "", "no dray node at"},
		{[]string{"put", "-"}, "", "no dray node at"},
		{[]string{"fetch", "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "", "no dray node at"},
		{[]string{"stats"}, "", "no dray node at"},
		// An explicit address must answer: no in-process fallback.
		{[]string{"run", "add", "1", "2"}, deadAPI, "no dray node at " + deadAPI + " (from DRAY_API)"},
		{[]string{"--api", deadAPI, "functions"}, "", "no dray node at " + deadAPI + " (from --api)"},
		// dray node refuses a public API address without a token.
		{[]string{"node", "--api", "0.0.0.0:0", "--no-mdns"}, "", "set one with --api-token or DRAY_API_TOKEN"},
		{[]string{"node", "--api", "nonsense", "--no-mdns"}, "", "want HOST:PORT"},
		{[]string{"node", "--listen", "not-a-multiaddr", "--api", "127.0.0.1:0", "--no-mdns"}, "", "not-a-multiaddr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(drayBin, tc.args...)
			cmd.Env = append(testEnv(), "DRAY_DATA="+t.TempDir())
			if tc.env != "" {
				cmd.Env = append(cmd.Env, "DRAY_API="+tc.env)
			}
			cmd.Stdin = strings.NewReader("x")
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			err := cmd.Run()
			require.Error(t, err)
			assert.Empty(t, o.String())
			assert.Contains(t, e.String(), tc.want)
			assert.True(t, strings.HasPrefix(e.String(), "dray: "), "got %q", e.String())
			assert.Equal(t, 1, strings.Count(e.String(), "\n"), "one line, got %q", e.String())
		})
	}
}

// swarmKey makes a new private-swarm key file with `dray swarm-key`, as a
// user does, and returns its path.
func swarmKey(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "swarm.key")
	out, errOut, code := dray(t, "swarm-key", path)
	require.Zero(t, code, "dray swarm-key: %s", errOut)
	require.Contains(t, out, "--swarm-key "+path)
	return path
}

// TestSwarmKeyCmd: dray swarm-key prints a key p2p reads, or writes one
// to a new file only its owner can read, and never overwrites a file.
func TestSwarmKeyCmd(t *testing.T) {
	out, _, code := dray(t, "swarm-key")
	require.Zero(t, code)
	printed := filepath.Join(t.TempDir(), "printed.key")
	require.NoError(t, os.WriteFile(printed, []byte(out), 0o600))
	_, err := p2p.LoadSwarmKey(printed)
	require.NoError(t, err, "the printed key does not load: %q", out)

	path := swarmKey(t)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = p2p.LoadSwarmKey(path)
	require.NoError(t, err)
	_, errOut, code := dray(t, "swarm-key", path)
	assert.NotZero(t, code)
	assert.Contains(t, errOut, "exists")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "an existing key file was overwritten")
}

// TestSwarmKeyDropsQUIC: a node told to listen on QUIC with a swarm key
// says at start-up that it drops those addresses (QUIC has no private
// networks) instead of losing them silently, and listens on TCP only.
func TestSwarmKeyDropsQUIC(t *testing.T) {
	p := startPeer(t, "--swarm-key", swarmKey(t), "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	for _, a := range p.addrs {
		assert.NotContains(t, a, "quic", "a private node listens on QUIC")
	}
	assert.Contains(t, p.errText(), "QUIC listen addresses dropped")
}

// peerIDs lists the peer IDs `dray peers` prints for the node at api.
func peerIDs(t *testing.T, api string) []string {
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(ok(t, api, "peers")), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// TestPrivateSwarm starts two nodes with one swarm key and a third with
// another key that bootstraps to the first: the first two see each other
// and run each other's tasks; the third never appears in `dray peers`.
// TestAPIToken serves the API on every interface with a token: clients
// without it, or with another, get one clear error line; with it (flag or
// environment), they work.
func TestAPIToken(t *testing.T) {
	p := startPeer(t, "--api", "0.0.0.0:0", "--api-token", "s3cret")
	for _, args := range [][]string{{"id"}, {"--api-token", "wrong", "id"}} {
		out, errOut, code := at(t, p.api, args...)
		assert.NotEqual(t, 0, code, "%v", args)
		assert.Empty(t, out)
		assert.Equal(t, "dray: missing or wrong API token: pass the node's token with --api-token or DRAY_API_TOKEN\n", errOut)
	}
	assert.Contains(t, ok(t, p.api, "--api-token", "s3cret", "id"), p.peer)
	cmd := exec.Command(drayBin, "run", "add", "2", "3")
	cmd.Env = append(testEnv(), "DRAY_API="+p.api, "DRAY_API_TOKEN=s3cret", "DRAY_DATA="+t.TempDir())
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "5\n", string(out))
	p.stop(t)
}

func TestPrivateSwarm(t *testing.T) {
	key, other := swarmKey(t), swarmKey(t)
	a := startPeer(t, "--swarm-key", key)
	b := startPeer(t, "--swarm-key", key, "--bootstrap", a.addrs[0])
	c := startPeer(t, "--swarm-key", other, "--bootstrap", a.addrs[0])

	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(peerIDs(t, a.api), b.peer) {
		require.True(t, time.Now().Before(deadline), "node b never joined node a's swarm")
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, `"`+b.peer+`"`+"\n", ok(t, a.api, "run", "--on", b.peer, "whoami"))
	// c keeps dialling a (bootstrap) for a while: it must never get in.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		assert.NotContains(t, peerIDs(t, a.api), c.peer)
		assert.NotContains(t, peerIDs(t, c.api), a.peer)
	}
	// A key file that is not one is a clear start-up error.
	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("not a key\n"), 0o600))
	_, errOut, code := dray(t, "node", "--data", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--api", "127.0.0.1:0", "--no-mdns", "--swarm-key", bad)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, bad)
	for _, p := range []*peerProc{a, b, c} {
		p.stop(t)
	}
}
