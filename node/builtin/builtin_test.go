package builtin_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/builtin"
)

func Example() {
	reg := node.NewRegistry()
	if err := builtin.Register(reg); err != nil {
		panic(err)
	}
	cfg := node.DefaultConfig()
	cfg.Functions, cfg.Store.Dir = reg, ""
	n, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx := context.Background()
	refs, _ := n.Call(ctx, "fib", 20) // calls fib remotely for 19 and 18, and so on
	v, err := refs[0].Get(ctx)
	fmt.Println(v, err)
	// Output: 6765 <nil>
}

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		a, b, want int64
		err        bool
	}{
		{1, 2, 3, false}, {-5, 3, -2, false}, {math.MaxInt64, 0, math.MaxInt64, false},
		{math.MaxInt64, 1, 0, true}, {math.MinInt64, -1, 0, true}, {math.MinInt64, math.MaxInt64, -1, false},
	} {
		got, err := builtin.Add(tc.a, tc.b)
		if tc.err {
			require.Error(t, err, "%d+%d", tc.a, tc.b)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

func TestLen(t *testing.T) {
	arr, err := codec.NewArray([]int{2, 3}, make([]float32, 6))
	require.NoError(t, err)
	for _, tc := range []struct {
		in   any
		want int
	}{
		{[]any{1, 2, 3}, 3}, {"héllo", 6}, {[]byte{1, 2}, 2}, {map[string]any{"a": 1}, 1}, {arr, 6},
	} {
		got, err := builtin.Len(tc.in)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "%#v", tc.in)
	}
	_, err = builtin.Len(int64(3))
	assert.ErrorContains(t, err, "len of int64")
	_, err = builtin.Len(nil)
	assert.Error(t, err)
}

func TestBytesAndRandAreDeterministic(t *testing.T) {
	a, err := builtin.Bytes(1000, 7)
	require.NoError(t, err)
	b, err := builtin.Bytes(1000, 7)
	require.NoError(t, err)
	c, err := builtin.Bytes(1000, 8)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
	_, err = builtin.Bytes(-1, 0)
	assert.Error(t, err)
	_, err = builtin.Bytes(builtin.MaxBytes+1, 0)
	assert.Error(t, err)

	r1, err := builtin.NDRand([]int{3, 4}, 1)
	require.NoError(t, err)
	r2, err := builtin.NDRand([]int{3, 4}, 1)
	require.NoError(t, err)
	assert.Equal(t, r1, r2)
	vals, err := codec.Elems[float64](r1)
	require.NoError(t, err)
	for _, v := range vals {
		assert.True(t, v >= 0 && v < 1)
	}
	_, err = builtin.NDRand([]int{-1}, 1)
	assert.Error(t, err)
	_, err = builtin.NDRand([]int{1 << 20, 1 << 20}, 1)
	assert.ErrorContains(t, err, "too large")
}

func TestMatmulAndSum(t *testing.T) {
	a, err := codec.NewArray([]int{2, 3}, []float64{1, 2, 3, 4, 5, 6})
	require.NoError(t, err)
	b, err := codec.NewArray([]int{3, 2}, []float32{7, 8, 9, 10, 11, 12})
	require.NoError(t, err)
	c, err := builtin.NDMatmul(a, b)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 2}, c.Shape)
	vals, err := codec.Elems[float64](c)
	require.NoError(t, err)
	assert.Equal(t, []float64{58, 64, 139, 154}, vals)
	s, err := builtin.NDSum(c)
	require.NoError(t, err)
	assert.Equal(t, 415.0, s)

	_, err = builtin.NDMatmul(a, a)
	assert.ErrorContains(t, err, "do not align")
	ints, err := codec.NewArray([]int{1, 1}, []int32{1})
	require.NoError(t, err)
	_, err = builtin.NDMatmul(ints, ints)
	assert.ErrorContains(t, err, "want float32 or float64")
	empty, err := builtin.NDMatmul(mustArr(t, []int{0, 3}), mustArr(t, []int{3, 2}))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 2}, empty.Shape)

	for _, dt := range []func() (codec.Array, error){
		func() (codec.Array, error) { return codec.NewArray([]int{3}, []int64{1, 2, 3}) },
		func() (codec.Array, error) { return codec.NewArray([]int{3}, []uint8{1, 2, 3}) },
		func() (codec.Array, error) { return codec.NewArray([]int{3}, []int32{1, 2, 3}) },
	} {
		arr, err := dt()
		require.NoError(t, err)
		s, err := builtin.NDSum(arr)
		require.NoError(t, err)
		assert.Equal(t, 6.0, s, "%s", arr.DType)
	}
}

func mustArr(t *testing.T, shape []int) codec.Array {
	n := 1
	for _, d := range shape {
		n *= d
	}
	a, err := codec.NewArray(shape, make([]float64, n))
	require.NoError(t, err)
	return a
}
