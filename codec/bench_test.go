package codec

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"
)

type benchPoint struct {
	X, Y float64
	Name string
}

func init() { MustRegister[benchPoint]("bench.Point") }

var sink any

func BenchmarkMarshalInt(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		out, err := Marshal(i)
		if err != nil {
			b.Fatal(err)
		}
		sink = out
	}
}

func BenchmarkUnmarshalInt(b *testing.B) {
	data, _ := Marshal(123456)
	b.ReportAllocs()
	var x int
	for b.Loop() {
		if err := Unmarshal(data, &x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalAnyInt(b *testing.B) {
	data, _ := Marshal(123456)
	b.ReportAllocs()
	var x any
	for b.Loop() {
		if err := Unmarshal(data, &x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalStruct(b *testing.B) {
	p := benchPoint{X: 1.5, Y: -2.25, Name: "origin"}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		sink = out
	}
}

func BenchmarkUnmarshalStruct(b *testing.B) {
	data, _ := Marshal(benchPoint{X: 1.5, Y: -2.25, Name: "origin"})
	b.ReportAllocs()
	var p benchPoint
	for b.Loop() {
		if err := Unmarshal(data, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalStructAny(b *testing.B) {
	data, _ := Marshal(benchPoint{X: 1.5, Y: -2.25, Name: "origin"})
	b.ReportAllocs()
	var p any
	for b.Loop() {
		if err := Unmarshal(data, &p); err != nil {
			b.Fatal(err)
		}
	}
}

const bigSize = 256 << 20

func bigArray(b *testing.B) Array {
	data := make([]byte, bigSize)
	for i := range data {
		data[i] = byte(i)
	}
	return Array{DType: Float64, Shape: []int{bigSize / 8}, Data: data}
}

// BenchmarkMarshalArray256MiB times Marshal of a 256 MiB Array against a
// plain copy() of the payload, both into a preallocated buffer and into a
// freshly allocated one, in the same loop. Each timed step starts after a
// GC so that collecting the previous iteration's 256 MiB does not land in
// the next measurement, and a warm-up first makes the heap hold the memory
// the loop reuses, so the OS's first-touch page faults are not measured.
// marshal/copy and marshal/alloc+copy are the ratios.
func BenchmarkMarshalArray256MiB(b *testing.B) {
	a := bigArray(b)
	dst := make([]byte, bigSize)
	copy(dst, a.Data)
	// Warm up: let the heap obtain (and the OS fault in) the memory the
	// loop reuses, so first-touch page faults are not measured.
	for range 2 {
		out, _ := Marshal(a)
		sink = out
		sink = append([]byte(nil), a.Data...)
		sink = nil
		runtime.GC()
	}
	var tCopy, tAllocCopy, tMarshal time.Duration
	b.SetBytes(bigSize)
	for b.Loop() {
		runtime.GC()
		t0 := time.Now()
		copy(dst, a.Data)
		tCopy += time.Since(t0)

		runtime.GC()
		t0 = time.Now()
		out, err := Marshal(a)
		tMarshal += time.Since(t0)
		if err != nil || len(out) != bigSize+16 {
			b.Fatalf("Marshal: %d bytes, %v", len(out), err)
		}
		out = nil

		runtime.GC()
		t0 = time.Now()
		fresh := make([]byte, bigSize)
		copy(fresh, a.Data)
		tAllocCopy += time.Since(t0)
		sink = fresh
		sink = nil
	}
	n := float64(b.N)
	b.ReportMetric(float64(tMarshal)/float64(tCopy), "marshal/copy")
	b.ReportMetric(float64(tMarshal)/float64(tAllocCopy), "marshal/alloc+copy")
	b.ReportMetric(float64(tCopy.Nanoseconds())/n, "copy-ns/op")
	b.ReportMetric(float64(tAllocCopy.Nanoseconds())/n, "alloc+copy-ns/op")
	b.ReportMetric(float64(tMarshal.Nanoseconds())/n, "marshal-ns/op")
}

func BenchmarkSum256MiB(b *testing.B) {
	data := make([]byte, bigSize)
	var tRaw, tSum time.Duration
	b.SetBytes(bigSize)
	for b.Loop() {
		t0 := time.Now()
		d := sha256.Sum256(data)
		t1 := time.Now()
		c := Sum(data)
		t2 := time.Now()
		sink, sink = d, c
		tRaw += t1.Sub(t0)
		tSum += t2.Sub(t1)
	}
	b.ReportMetric(float64(tSum)/float64(tRaw), "sum/sha256")
}
