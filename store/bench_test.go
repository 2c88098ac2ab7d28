package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// BenchmarkPutSmall puts distinct 64-byte values into a store whose budget
// holds about a million of them, so steady state includes evictions.
func BenchmarkPutSmall(b *testing.B) {
	for _, budget := range []int64{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("resident=%dKi", budget/64>>10), func(b *testing.B) { benchPutSmall(b, budget) })
	}
}

func benchPutSmall(b *testing.B, budget int64) {
	s := openStore(b, testConfig("", budget, 0))
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		v := make([]byte, 64)
		binary.LittleEndian.PutUint64(v, i)
		i++
		if _, err := s.Put(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutSmallParallel is BenchmarkPutSmall from GOMAXPROCS goroutines.
func BenchmarkPutSmallParallel(b *testing.B) {
	s := openStore(b, testConfig("", 64<<20, 0))
	b.ReportAllocs()
	var next atomic.Uint64
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := make([]byte, 64)
			binary.LittleEndian.PutUint64(v, next.Add(1))
			if _, err := s.Put(ctx, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
}

// BenchmarkGetSmall gets 64-byte values from a store holding 64Ki of them.
func BenchmarkGetSmall(b *testing.B) {
	s := openStore(b, testConfig("", 64<<20, 0))
	ids := make([]cid.Cid, 1<<16)
	for i := range ids {
		v := make([]byte, 64)
		binary.LittleEndian.PutUint64(v, uint64(i))
		c, err := s.Put(ctx, v)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = c
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, ids[i&(len(ids)-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkCIDSmall measures naming a 64-byte value alone: the store's
// sum versus go-cid's Prefix.Sum.
func BenchmarkCIDSmall(b *testing.B) {
	v := make([]byte, 64)
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = sum(v)
		}
	})
	b.Run("go-cid", func(b *testing.B) {
		p := cid.Prefix{Version: 1, Codec: 0x51, MhType: multihash.SHA2_256, MhLength: -1}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Sum(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const largeSize = 256 << 20

// BenchmarkPutLarge puts (and deletes) a 256 MiB value and compares the
// time with plain sha256 of the same bytes: Put must not copy, so the
// ratio should be about 1.
func BenchmarkPutLarge(b *testing.B) {
	s := openStore(b, testConfig("", 2*largeSize, 0))
	data := obj(1, largeSize)
	b.SetBytes(largeSize)
	var putTime, shaTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		c, err := s.Put(ctx, data)
		if err != nil {
			b.Fatal(err)
		}
		putTime += time.Since(t0)
		if err := s.Delete(c); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		_ = sha256.Sum256(data)
		shaTime += time.Since(t0)
	}
	b.ReportMetric(float64(b.N)*largeSize/putTime.Seconds()/1e9, "put-GB/s")
	b.ReportMetric(float64(b.N)*largeSize/shaTime.Seconds()/1e9, "sha256-GB/s")
	b.ReportMetric(putTime.Seconds()/shaTime.Seconds(), "put/sha256")
}

// BenchmarkPutStream streams 256 MiB through an io.Reader into memory
// (exact and unknown size hint) and straight to a spill file.
func BenchmarkPutStream(b *testing.B) {
	data := obj(1, largeSize)
	cases := []struct {
		name   string
		budget int64
		hint   int64
	}{
		{"memory/exact-hint", 2 * largeSize, largeSize},
		{"memory/no-hint", 2 * largeSize, -1},
		{"disk", 64 << 20, largeSize},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, testConfig(b.TempDir(), bc.budget, 0))
			b.SetBytes(largeSize)
			var elapsed time.Duration
			for b.Loop() {
				r := onlyReader{bytes.NewReader(data)} // hide WriterTo
				t0 := time.Now()
				c, _, err := s.PutStream(ctx, r, bc.hint)
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
				if err := s.Delete(c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*largeSize/elapsed.Seconds()/1e9, "GB/s")
		})
	}
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
