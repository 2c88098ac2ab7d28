package node_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dray-project/dray/node"
)

// BenchmarkRemoteRoundTrip calls a trivial function pinned to another peer
// (two nodes over loopback TCP) and waits for the result, one at a time; it
// reports the median next to a raw libp2p stream echo of 64 bytes between
// the same two hosts, measured in the same run. Target: within 3x.
func BenchmarkRemoteRoundTrip(b *testing.B) {
	nodes := swarmB(b, 2)
	ctx := context.Background()
	target := nodes[1].ID()
	lat := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := nodes[0].CallWith(ctx, node.CallOptions{On: target}, "add", int64(i), int64(1))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r[0].Get(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	// Baseline: a 64-byte echo on one stream between the same hosts.
	h0, h1 := hosts[nodes[0]], hosts[nodes[1]]
	h1.Libp2p().SetStreamHandler("/bench/echo", func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})
	s, err := h0.Libp2p().NewStream(ctx, h1.ID(), "/bench/echo")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	base := make([]time.Duration, 0, len(lat))
	for range max(len(lat), 1000) {
		start := time.Now()
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}
	p50, e50 := median(lat), median(base)
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(e50.Nanoseconds())/1e3, "echo-p50-µs")
	b.ReportMetric(float64(p50)/float64(e50), "ratio-to-echo")
}

// BenchmarkLoadBalance submits 64 sleep(250 ms) tasks on one of 4 peers
// with 2 slots each and reports the makespan against the ideal
// (64 x 0.25 s / 8 slots = 2 s) and how many peers ran tasks. Target:
// every peer runs tasks, makespan within 1.3x of ideal.
func BenchmarkLoadBalance(b *testing.B) {
	nodes := swarmOf(b, 4, 2, false)
	ctx := context.Background()
	const tasks, ms, slots = 64, 250, 8
	ideal := time.Duration(tasks*ms/slots) * time.Millisecond
	var spans []time.Duration
	peers := 0
	for b.Loop() {
		start := time.Now()
		ran := sleeps(b, ctx, nodes[0], tasks, ms)
		spans = append(spans, time.Since(start))
		peers = len(ran)
	}
	span := median(spans)
	b.ReportMetric(span.Seconds(), "makespan-s")
	b.ReportMetric(float64(span)/float64(ideal), "ratio-to-ideal")
	b.ReportMetric(float64(peers), "peers-used")
}

// fetchSize is the object fetched by BenchmarkFetch (the figure is
// for 1 GiB).
const fetchSize = 1 << 30

// BenchmarkFetch has one node resolve (find through the DHT, fetch, verify
// and store) a 1 GiB value another node put, and reports GB/s next to two
// baselines in the same run: a raw TCP loopback copy and a plain libp2p
// stream copy between the same hosts. Targets: at least 50% of raw TCP and
// never below the plain libp2p stream.
func BenchmarkFetch(b *testing.B) {
	nodes := swarmB(b, 2)
	ctx := context.Background()
	data := make([]byte, fetchSize)
	for i := range data {
		data[i] = byte(i*31 + i>>16)
	}
	var fetch time.Duration
	for i := 0; b.Loop(); i++ {
		data[0] = byte(i) // a new value each round
		put, err := nodes[0].PutStream(ctx, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var got node.ObjectRef
		for {
			got, err = nodes[1].Resolve(ctx, put.CID())
			if err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // the provider record is on its way
		}
		fetch += time.Since(start)
		_ = got
	}
	fetchGBs := float64(b.N) * fetchSize / fetch.Seconds() / 1e9

	// Baseline 1: raw TCP over loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		b.Fatal(err)
	}
	c.Close()
	tcpGBs := fetchSize / time.Since(start).Seconds() / 1e9

	// Baseline 2: one plain libp2p stream between the same hosts.
	h0, h1 := hosts[nodes[0]], hosts[nodes[1]]
	done := make(chan struct{})
	h1.Libp2p().SetStreamHandler("/bench/sink", func(s network.Stream) {
		_, _ = io.Copy(io.Discard, s)
		s.Close()
		close(done)
	})
	s, err := h0.Libp2p().NewStream(ctx, h1.ID(), "/bench/sink")
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if _, err := s.Write(data); err != nil {
		b.Fatal(err)
	}
	_ = s.CloseWrite()
	<-done
	streamGBs := fetchSize / time.Since(start).Seconds() / 1e9
	s.Close()

	b.ReportMetric(fetchGBs, "fetch-GB/s")
	b.ReportMetric(tcpGBs, "tcp-GB/s")
	b.ReportMetric(streamGBs, "libp2p-GB/s")
	b.ReportMetric(fetchGBs/tcpGBs, "ratio-to-tcp")
	b.ReportMetric(fetchGBs/streamGBs, "ratio-to-libp2p")
}

// BenchmarkMixedBinaries runs the same work on two swarms of 4 peers with
// one slot each: one where every peer runs the same binary, one where two
// of the four offer a function more (other tables, fetched once), and
// reports the tasks/s of both, measured in turn in one run, and their
// ratio. Target: mixed within 10% of same (issue 10).
func BenchmarkMixedBinaries(b *testing.B) {
	extra := func(cfg *node.Config) {
		if err := cfg.Functions.Register("extra.one", func() int { return 1 }); err != nil {
			b.Fatal(err)
		}
	}
	same := swarmWith(b, 1, nil, nil, nil, nil)
	mixed := swarmWith(b, 1, nil, extra, nil, extra)
	ctx := context.Background()
	const tasks, ms = 400, 5
	run := func(nodes []*node.Node) (float64, int) {
		start := time.Now()
		ran := sleeps(b, ctx, nodes[0], tasks, ms)
		return tasks / time.Since(start).Seconds(), len(ran)
	}
	var sameRate, mixedRate []float64
	peers := 0
	for b.Loop() {
		r, _ := run(same)
		sameRate = append(sameRate, r)
		r, peers = run(mixed)
		mixedRate = append(mixedRate, r)
	}
	s, m := medianF(sameRate), medianF(mixedRate)
	b.ReportMetric(s, "same-tasks/s")
	b.ReportMetric(m, "mixed-tasks/s")
	b.ReportMetric(m/s, "ratio-to-same")
	b.ReportMetric(float64(peers), "mixed-peers-used")
}

// sleeps calls sleep(ms) tasks times on n, waits for every result and
// returns how many ran on each peer.
func sleeps(b *testing.B, ctx context.Context, n *node.Node, tasks, ms int) map[string]int {
	refs := make([]node.ObjectRef, tasks)
	for i := range refs {
		r, err := n.Call(ctx, "sleep", ms)
		if err != nil {
			b.Fatal(err)
		}
		refs[i] = r[0]
	}
	ran := map[string]int{}
	for _, r := range refs {
		who, err := node.As[string](r).Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ran[who]++
	}
	return ran
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
