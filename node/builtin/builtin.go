package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// FibCutoff is the n at and below which fib computes locally instead of
// calling itself remotely for n-1 and n-2.
const FibCutoff = 10

// MaxBytes bounds bytes(n, seed) and the size of nd.rand's result, so a
// typo cannot ask a peer for more memory than it has.
const MaxBytes = 1 << 30

// Register adds the built-in functions to r.
func Register(r *node.Registry) error {
	det, doc := node.Deterministic, node.Doc
	return errors.Join(
		r.Register("add", Add, det(), doc("a + b")),
		r.Register("sum", Sum, det(), doc("sum of a list of numbers")),
		r.Register("len", Len, det(), doc("length of a list, map, string, byte string or array (elements)")),
		r.Register("fib", Fib, doc(fmt.Sprintf("n-th Fibonacci number; above n=%d it calls fib remotely for n-1 and n-2 (nested tasks)", FibCutoff))),
		r.Register("sleep", Sleep, doc("sleeps ms milliseconds and returns the ID of the peer that ran it")),
		r.Register("whoami", Whoami, doc("the ID of the peer that ran it")),
		r.Register("sha256", SHA256, det(), doc("hex sha2-256 of a byte string")),
		r.Register("bytes", Bytes, det(), doc("n deterministic pseudo-random bytes from seed")),
		r.Register("nd.rand", NDRand, det(), doc("float64 array of the given shape, uniform in [0,1), from seed")),
		r.Register("nd.matmul", NDMatmul, det(), doc("matrix product of two 2-D float32/float64 arrays")),
		r.Register("nd.sum", NDSum, det(), doc("sum of all elements of a numeric array")),
	)
}

// Add returns a + b, or an error when the sum overflows int64.
func Add(a, b int64) (int64, error) {
	s := a + b
	if (s > a) != (b > 0) {
		return 0, fmt.Errorf("add: %d + %d overflows int64", a, b)
	}
	return s, nil
}

// Sum returns the sum of xs.
func Sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// Len returns the length of a list, map, string, byte string, or the
// number of elements of an array.
func Len(x any) (int, error) {
	switch v := x.(type) {
	case codec.Array:
		return v.Len(), nil
	case nil:
		return 0, errors.New("len of null")
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return rv.Len(), nil
	}
	return 0, fmt.Errorf("len of %T: want a list, map, string, byte string or array", x)
}

// Fib returns the n-th Fibonacci number. Above FibCutoff it calls fib on
// the node running it for n-1 and n-2 and waits for both: nested tasks.
func Fib(ctx context.Context, n int) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("fib of negative %d", n)
	}
	if n > 92 {
		return 0, fmt.Errorf("fib(%d) overflows int64 (largest is fib(92))", n)
	}
	if n <= FibCutoff {
		a, b := int64(0), int64(1)
		for range n {
			a, b = b, a+b
		}
		return a, nil
	}
	nd := node.FromContext(ctx)
	if nd == nil {
		return 0, errors.New("fib called outside a task")
	}
	r1, err := nd.Call(ctx, "fib", n-1)
	if err != nil {
		return 0, err
	}
	r2, err := nd.Call(ctx, "fib", n-2)
	if err != nil {
		return 0, err
	}
	a, err := node.As[int64](r1[0]).Get(ctx)
	if err != nil {
		return 0, err
	}
	b, err := node.As[int64](r2[0]).Get(ctx)
	if err != nil {
		return 0, err
	}
	return a + b, nil
}

// Sleep sleeps ms milliseconds (or until the task is cancelled) and returns
// the ID of the peer that ran it.
func Sleep(ctx context.Context, ms int) (string, error) {
	if ms < 0 {
		return "", fmt.Errorf("sleep of negative %d ms", ms)
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return Whoami(ctx)
}

// Whoami returns the ID of the peer running it.
func Whoami(ctx context.Context) (string, error) {
	nd := node.FromContext(ctx)
	if nd == nil {
		return "", errors.New("whoami called outside a task")
	}
	return nd.ID(), nil
}

// SHA256 returns the hex sha2-256 digest of b.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Bytes returns n pseudo-random bytes determined by seed (ChaCha8).
func Bytes(n int, seed uint64) ([]byte, error) {
	if n < 0 || n > MaxBytes {
		return nil, fmt.Errorf("bytes: n=%d out of range [0, %d]", n, MaxBytes)
	}
	var key [32]byte
	for i := range 4 {
		key[i*8] = byte(seed >> (8 * i))
		key[i*8+4] = byte(seed >> (32 + 8*i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b, nil
}

// NDRand returns a float64 array of the given shape, uniform in [0,1),
// determined by seed.
func NDRand(shape []int, seed uint64) (codec.Array, error) {
	count := 1
	for _, d := range shape {
		if d < 0 {
			return codec.Array{}, fmt.Errorf("nd.rand: negative dimension in shape %v", shape)
		}
		if d > 0 && count > MaxBytes/8/d {
			return codec.Array{}, fmt.Errorf("nd.rand: shape %v is too large", shape)
		}
		count *= d
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	vals := make([]float64, count)
	for i := range vals {
		vals[i] = r.Float64()
	}
	return codec.NewArray(shape, vals)
}

// NDMatmul returns the matrix product a·b of two 2-D float32 or float64
// arrays (float64 result unless both are float32).
func NDMatmul(a, b codec.Array) (codec.Array, error) {
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return codec.Array{}, fmt.Errorf("nd.matmul: want 2-D arrays, got shapes %v and %v", a.Shape, b.Shape)
	}
	if a.Shape[1] != b.Shape[0] {
		return codec.Array{}, fmt.Errorf("nd.matmul: shapes %v and %v do not align (%d != %d)", a.Shape, b.Shape, a.Shape[1], b.Shape[0])
	}
	am, err := dense(a)
	if err != nil {
		return codec.Array{}, fmt.Errorf("nd.matmul: first argument: %w", err)
	}
	bm, err := dense(b)
	if err != nil {
		return codec.Array{}, fmt.Errorf("nd.matmul: second argument: %w", err)
	}
	rows, cols := a.Shape[0], b.Shape[1]
	if rows == 0 || cols == 0 || a.Shape[1] == 0 {
		return codec.NewArray([]int{rows, cols}, make([]float64, rows*cols))
	}
	var c mat.Dense
	c.Mul(am, bm)
	out := c.RawMatrix().Data
	if a.DType == codec.Float32 && b.DType == codec.Float32 {
		f := make([]float32, len(out))
		for i, v := range out {
			f[i] = float32(v)
		}
		return codec.NewArray([]int{rows, cols}, f)
	}
	return codec.NewArray([]int{rows, cols}, out)
}

func dense(a codec.Array) (*mat.Dense, error) {
	var vals []float64
	switch a.DType {
	case codec.Float64:
		v, err := codec.Elems[float64](a)
		if err != nil {
			return nil, err
		}
		vals = v
	case codec.Float32:
		v, err := codec.Elems[float32](a)
		if err != nil {
			return nil, err
		}
		vals = make([]float64, len(v))
		for i, x := range v {
			vals[i] = float64(x)
		}
	default:
		return nil, fmt.Errorf("dtype %s: want float32 or float64", a.DType)
	}
	if a.Shape[0] == 0 || a.Shape[1] == 0 {
		return nil, nil
	}
	return mat.NewDense(a.Shape[0], a.Shape[1], vals), nil
}

// NDSum returns the sum of all elements of a numeric array as float64.
func NDSum(a codec.Array) (float64, error) {
	switch a.DType {
	case codec.Float64:
		return sumOf[float64](a)
	case codec.Float32:
		return sumOf[float32](a)
	case codec.Int64:
		return sumOf[int64](a)
	case codec.Int32:
		return sumOf[int32](a)
	case codec.Int8:
		return sumOf[int8](a)
	case codec.Uint8:
		return sumOf[uint8](a)
	case codec.Uint32:
		return sumOf[uint32](a)
	case codec.Uint64:
		return sumOf[uint64](a)
	case codec.Bool:
		var s float64
		for _, b := range a.Data {
			if b != 0 {
				s++
			}
		}
		return s, nil
	}
	return 0, fmt.Errorf("nd.sum: unsupported dtype %s", a.DType)
}

func sumOf[T codec.Number](a codec.Array) (float64, error) {
	v, err := codec.Elems[T](a)
	if err != nil {
		return 0, fmt.Errorf("nd.sum: %w", err)
	}
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s, nil
}
