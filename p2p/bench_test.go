package p2p

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
)

var benchTransports = []struct {
	name   string
	listen string
}{
	{"tcp", "/ip4/127.0.0.1/tcp/0"},
	{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
}

// benchPair starts two hosts on loopback with the given listen address, connected, and
// a handler for /dray/bench/1 on the first; it returns a stream from the second.
func benchPair(b *testing.B, listen string, handler network.StreamHandler) network.Stream {
	b.Helper()
	srv := newTestHost(b, func(c *Config) { c.Listen = []string{listen} })
	cli := newTestHost(b, func(c *Config) { c.Listen = []string{listen} })
	srv.Libp2p().SetStreamHandler("/dray/bench/1", handler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(b, cli.Connect(ctx, srv.AddrInfo()))
	s, err := cli.Libp2p().NewStream(ctx, srv.ID(), "/dray/bench/1")
	require.NoError(b, err)
	b.Cleanup(func() { s.Reset() })
	return s
}

// BenchmarkEcho measures the round trip of a 64-byte message echoed on one stream
// between two hosts on loopback; it reports the median (p50-µs) and 99th percentile.
func BenchmarkEcho(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			s := benchPair(b, tr.listen, func(s network.Stream) {
				defer s.Close()
				_, _ = io.Copy(s, s)
			})
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			// Warm up the stream (protocol negotiation is lazy).
			_, err := s.Write(msg)
			require.NoError(b, err)
			_, err = io.ReadFull(s, buf)
			require.NoError(b, err)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkStreamCopy measures one-stream bulk throughput between two hosts on loopback:
// the client writes 1 MiB chunks, the server discards them and acknowledges the end.
func BenchmarkStreamCopy(b *testing.B) {
	const chunk = 1 << 20
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			s := benchPair(b, tr.listen, func(s network.Stream) {
				defer s.Close()
				if _, err := io.Copy(io.Discard, s); err != nil {
					_ = s.Reset()
					return
				}
				_, _ = s.Write([]byte{1})
			})
			data := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			require.NoError(b, s.CloseWrite())
			ack := make([]byte, 1)
			_, err := io.ReadFull(s, ack)
			require.NoError(b, err)
			b.StopTimer()
		})
	}
}

// BenchmarkAnnounce measures DHT announcements end to end on five hosts on loopback
// (one process, so the four receiving hosts share the CPU): each iteration announces
// 2,000 fresh CIDs from one host and waits for Flush (every CID's record sent to all
// four peers). After the loop the old way, Provide one CID at a time, runs for a
// fixed count on the same hosts. It reports both rates and their ratio.
func BenchmarkAnnounce(b *testing.B) {
	const perIter, oldCount = 2000, 300
	hosts := newMesh(b, 5, nil)
	a := hosts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	next := 0
	fresh := func(n int) []cid.Cid {
		out := cids(fmt.Sprintf("bench-%d", next), n)
		next++
		return out
	}
	announced := 0
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		cs := fresh(perIter)
		want := a.AnnounceStats().Records + 4*perIter
		b.StartTimer()
		t0 := time.Now()
		a.Announce(cs...)
		if err := a.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took += time.Since(t0)
		if got := a.AnnounceStats().Records; got < want {
			b.Fatalf("%d records sent after Flush, want %d", got, want)
		}
		announced += perIter
	}
	b.StopTimer()
	st := a.AnnounceStats()
	require.EqualValues(b, announced, st.Announced)
	require.Zero(b, st.Failed)

	old := fresh(oldCount)
	t0 := time.Now()
	for _, c := range old {
		require.NoError(b, a.Provide(ctx, c))
	}
	oldTook := time.Since(t0)

	newRate := float64(announced) / took.Seconds()
	oldRate := oldCount / oldTook.Seconds()
	b.ReportMetric(newRate, "announced/s")
	b.ReportMetric(oldRate, "provided/s")
	b.ReportMetric(newRate/oldRate, "speedup")
	b.ReportMetric(float64(st.Lookups)/float64(announced), "lookups/cid")
}

// BenchmarkAnnounceLatency measures how soon one CID announced on its own is
// findable (FindProviders on another of five hosts on loopback returns it), once the
// provider is online: "flush" calls Flush (which hands the CID over at once) and
// reports when it returned too; "linger" does not, so the CID waits in the queue for
// more (announceLinger) as it does in the node.
func BenchmarkAnnounceLatency(b *testing.B) {
	hosts := newMesh(b, 5, nil)
	a, finder := hosts[0], hosts[3]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a.Announce(testCID("latency warm-up"))
	require.NoError(b, a.Flush(ctx))
	i := 0
	for _, flush := range []bool{true, false} {
		name := map[bool]string{true: "flush", false: "linger"}[flush]
		b.Run(name, func(b *testing.B) {
			var out, found []time.Duration
			for b.Loop() {
				c := testCID(fmt.Sprintf("latency-%d", i))
				i++
				t0 := time.Now()
				a.Announce(c)
				if flush {
					if err := a.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					out = append(out, time.Since(t0))
				}
				for {
					provs, err := finder.FindProviders(ctx, c, 1)
					if err != nil {
						b.Fatal(err)
					}
					if len(provs) == 1 {
						break
					}
				}
				found = append(found, time.Since(t0))
			}
			b.StopTimer()
			ms := func(ds []time.Duration, q int) float64 {
				slices.Sort(ds)
				return float64(ds[len(ds)*q/100].Microseconds()) / 1e3
			}
			if flush {
				b.ReportMetric(ms(out, 50), "out-p50-ms")
			}
			b.ReportMetric(ms(found, 50), "findable-p50-ms")
			b.ReportMetric(ms(found, 99), "findable-p99-ms")
		})
	}
}

// BenchmarkKeystore measures the provider keystore, which keeps every CID announced
// (until a StartReprovider sync drops it): the heap it takes per CID and the time to
// add one.
func BenchmarkKeystore(b *testing.B) {
	const n = 100_000
	h := newTestHost(b, nil)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	batches := make([][]mh.Multihash, 0, n/1000)
	for i := range n / 1000 {
		batches = append(batches, hashes(cids(fmt.Sprintf("keystore-%d", i), 1000)))
	}
	t0 := time.Now()
	for b.Loop() {
		for _, batch := range batches {
			if _, err := h.ann.ks.Put(ctx, batch...); err != nil {
				b.Fatal(err)
			}
		}
	}
	took := time.Since(t0)
	b.StopTimer()
	batches = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	size, err := h.ann.ks.Size(ctx)
	require.NoError(b, err)
	require.Equal(b, n, size)
	// The keystore keeps the multihashes it is given: they count.
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/cid")
	b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*n), "ns/put")
}
