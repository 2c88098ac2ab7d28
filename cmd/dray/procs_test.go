package main

// Helpers of the multi-process benchmarks (bench_test.go): child processes
// of the test binary itself that serve as baselines (roles), swarms of
// `dray node` processes driven through their API clients, and the waits
// that let a swarm settle before a measurement.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/p2p"
)

// benchRoleEnv, when set in the environment of the test binary, makes it
// run that role (see runBenchRole) instead of the tests.
const benchRoleEnv = "DRAY_BENCH_ROLE"

// The roles a child test binary can play.
const (
	// roleTCPSink accepts TCP connections on loopback, reads each to EOF
	// and answers the byte count.
	roleTCPSink = "tcp-sink"
	// roleLibp2pSink is a libp2p host configured as `dray node` configures
	// its own (TCP on loopback, no mDNS) that reads each stream of
	// sinkProtocol to EOF and answers the byte count.
	roleLibp2pSink = "libp2p-sink"
)

// sinkProtocol is the libp2p protocol of roleLibp2pSink.
const sinkProtocol = protocol.ID("/dray/bench/sink/1")

// copyChunk is the buffer size of the baselines' writers and readers.
const copyChunk = 1 << 20

// runBenchRole runs a role until its standard input closes (the parent
// went away) or it gets SIGTERM or SIGINT. Its first line on stdout is
// "addr ADDRESS". It returns the process exit code.
func runBenchRole(role string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	var err error
	switch role {
	case roleTCPSink:
		err = tcpSink(ctx)
	case roleLibp2pSink:
		err = libp2pSink(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

func tcpSink(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	fmt.Printf("addr %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			if n, err := drain(c); err == nil {
				fmt.Fprintf(c, "%d\n", n)
			}
		}()
	}
}

func libp2pSink(ctx context.Context) error {
	h, err := p2p.New(ctx, benchP2PConfig())
	if err != nil {
		return err
	}
	defer h.Close()
	h.Libp2p().SetStreamHandler(sinkProtocol, func(s network.Stream) {
		n, err := drain(s)
		if err != nil {
			_ = s.Reset()
			return
		}
		fmt.Fprintf(s, "%d\n", n)
		_ = s.Close()
	})
	addrs := h.Addrs()
	if len(addrs) == 0 {
		return errors.New("the host has no address")
	}
	fmt.Printf("addr %s\n", addrs[0])
	<-ctx.Done()
	return nil
}

// benchP2PConfig is the host configuration of `dray node --listen
// /ip4/127.0.0.1/tcp/0 --no-mdns` with an ephemeral identity.
func benchP2PConfig() p2p.Config {
	pc := p2p.DefaultConfig()
	pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	pc.MDNS = false
	pc.Logger = slog.New(slog.DiscardHandler)
	return pc
}

// drain reads r to EOF and returns the byte count.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, copyChunk)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// roleProc is a child test binary playing a role.
type roleProc struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.Closer
	stderrBuf
	exited chan struct{}
}

// startRole starts the test binary as a child playing role and reads its
// address. The test's cleanup closes its stdin and waits for it (killing
// it if it does not exit in time).
func startRole(t testing.TB, role string) *roleProc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &roleProc{cmd: exec.Command(exe, "-test.run=^$"), exited: make(chan struct{})}
	p.cmd.Env = append(testEnv(), benchRoleEnv+"="+role)
	p.cmd.Stderr = p
	stdin, err := p.cmd.StdinPipe()
	require.NoError(t, err)
	p.stdin = stdin
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() {
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "addr ")
		require.True(t, ok && found, "%s: no address line (got %q): %s", role, line, p.errText())
		p.addr = addr
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not ready after 30s: %s", role, p.errText())
	}
	return p
}

// sendAndCount writes size bytes to w in copyChunk writes, closes its
// write side with closeWrite, and reads the peer's byte count back from r;
// it fails unless the peer counted them all.
func sendAndCount(w io.Writer, closeWrite func() error, r io.Reader, size int64) error {
	buf := make([]byte, copyChunk)
	for i := range buf {
		buf[i] = byte(i*31 + i>>11)
	}
	for left := size; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := w.Write(buf[:k]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		left -= k
	}
	if err := closeWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	ans, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read count: %w", err)
	}
	got, err := strconv.ParseInt(strings.TrimSpace(string(ans)), 10, 64)
	if err != nil || got != size {
		return fmt.Errorf("the sink counted %q bytes, want %d", ans, size)
	}
	return nil
}

// tcpCopy sends size bytes to a tcp-sink over a new loopback connection
// and returns the rate in GB/s (10^9 bytes per second).
func tcpCopy(t testing.TB, addr string, size int64) float64 {
	t.Helper()
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	tc := c.(*net.TCPConn)
	require.NoError(t, sendAndCount(tc, tc.CloseWrite, tc, size))
	return float64(size) / time.Since(start).Seconds() / 1e9
}

// libp2pCopy sends size bytes to a libp2p-sink on one new stream over the
// host's existing connection and returns the rate in GB/s.
func libp2pCopy(t testing.TB, h *p2p.Host, to peer.ID, size int64) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := h.Libp2p().NewStream(ctx, to, sinkProtocol)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, sendAndCount(s, s.CloseWrite, s, size))
	return float64(size) / time.Since(start).Seconds() / 1e9
}

// genReader returns size deterministic pseudo-random bytes for seed,
// generated as they are read (never held in memory).
func genReader(seed uint64, size int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// sameStream reports whether a and b yield the same bytes, reading both in
// chunks.
func sameStream(a, b io.Reader) (bool, error) {
	ba, bb := make([]byte, copyChunk), make([]byte, copyChunk)
	for {
		na, errA := io.ReadFull(a, ba)
		nb, errB := io.ReadFull(b, bb)
		if na != nb || string(ba[:na]) != string(bb[:nb]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case errA != nil && !endA:
			return false, errA
		case errB != nil && !endB:
			return false, errB
		case endA || endB:
			return endA == endB, nil
		}
	}
}

// benchPeer is a `dray node` process with a client for its API.
type benchPeer struct {
	*peerProc
	c *api.Client
}

// startSwarm starts one `dray node` per entry of slots (its --slots), each
// after the first bootstrapping to the first, with extra flags; it returns
// once all have started (not once they see each other: see waitMesh).
func startSwarm(t testing.TB, slots []int, extra ...string) []*benchPeer {
	t.Helper()
	var peers []*benchPeer
	for i, s := range slots {
		args := append([]string{"--slots", strconv.Itoa(s)}, extra...)
		if i > 0 {
			args = append(args, "--bootstrap", peers[0].addrs[0])
		}
		p := startPeer(t, args...)
		c := api.NewClient(p.api)
		t.Cleanup(c.CloseIdleConnections)
		peers = append(peers, &benchPeer{peerProc: p, c: c})
	}
	return peers
}

// stopAll stops the peers (SIGTERM, clean exit).
func stopAll(t testing.TB, peers []*benchPeer) {
	t.Helper()
	for _, p := range peers {
		p.stop(t)
	}
}

// pollEvery is how often waitFor checks its condition.
const pollEvery = 50 * time.Millisecond

// waitFor polls cond until it holds, failing with what after timeout or on
// an error.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, err := cond()
		require.NoError(t, err, what)
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// waitMesh waits until every peer is connected to all the others and its
// scheduler has live load beacons from all of them.
func waitMesh(t testing.TB, peers []*benchPeer) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, 30*time.Second, "every node sees the others and hears their load beacons", func() (bool, error) {
		for _, p := range peers {
			conn, err := p.c.Peers(ctx)
			if err != nil {
				return false, err
			}
			ids := make([]string, len(conn))
			for i, q := range conn {
				ids[i] = q.ID
			}
			for _, q := range peers {
				if q != p && !slices.Contains(ids, q.peer) {
					return false, nil
				}
			}
			st, err := p.c.Stats(ctx)
			if err != nil {
				return false, err
			}
			if st.Sched.Peers < len(peers)-1 {
				return false, nil
			}
		}
		return true, nil
	})
}

// quiesce waits until no peer has work left and then until every peer has
// heard a fresh load beacon from each of the others (idle peers beacon on
// change and at least every 2 s), so every scheduler starts the next
// measurement knowing the others are idle.
func quiesce(t testing.TB, peers []*benchPeer) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, time.Minute, "every node is idle", func() (bool, error) {
		for _, p := range peers {
			st, err := p.c.Stats(ctx)
			if err != nil {
				return false, err
			}
			s := st.Sched
			if st.Tasks > 0 || s.Running > 0 || s.Queued > 0 || s.Waiting > 0 || s.Forwarded > 0 {
				return false, nil
			}
		}
		return true, nil
	})
	heard := make([]uint64, len(peers))
	for i, p := range peers {
		st, err := p.c.Stats(ctx)
		require.NoError(t, err)
		heard[i] = st.Net.MsgsRecv
	}
	waitFor(t, 30*time.Second, "every node heard the others' beacons", func() (bool, error) {
		for i, p := range peers {
			st, err := p.c.Stats(ctx)
			if err != nil {
				return false, err
			}
			if st.Net.MsgsRecv < heard[i]+uint64(len(peers)-1) {
				return false, nil
			}
		}
		return true, nil
	})
}

// msgsSent is the sum over the peers of the swarm messages they sent.
func msgsSent(t testing.TB, peers []*benchPeer) uint64 {
	t.Helper()
	var sum uint64
	for _, p := range peers {
		st, err := p.c.Stats(context.Background())
		require.NoError(t, err)
		sum += st.Net.MsgsSent
	}
	return sum
}

// medianOf returns the median of xs (the mean of the middle two for an
// even count); 0 for none.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
