package api

import (
	"bufio"
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
)

// TestStreamedJSONIsTheSame checks that the streamed encoding of values is
// byte for byte what encoding the whole tree at once gave.
func TestStreamedJSONIsTheSame(t *testing.T) {
	c, err := cid.Decode("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	require.NoError(t, err)
	arr, err := codec.NewArray([]int{2}, []float64{1.5, -2e30})
	require.NoError(t, err)
	for _, v := range []any{
		nil, true, int64(-3), uint64(math.MaxUint64), 2.5, 1e21, 1e-7, "<&> \u2028 é \x00",
		[]byte{}, []byte{1}, []byte{1, 2}, []byte{1, 2, 3}, bytes.Repeat([]byte{0xfb}, 100_000),
		[]any{int64(1), "x", []byte("abc"), nil, []any{}},
		map[string]any{"b": int64(1), "a": []any{c}, "<": map[string]any{}},
		map[int64]string{10: "ten", 2: "two"},
		c, arr, []any{arr, map[string]any{"arr": arr}},
	} {
		tree, err := codec.ToJSONValue(v)
		require.NoError(t, err, "%#v", v)
		want, err := marshal(tree)
		require.NoError(t, err)
		tree, err = marshalArrays(tree)
		require.NoError(t, err)
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		require.NoError(t, writeTree(bw, tree))
		require.NoError(t, bw.Flush())
		assert.Equal(t, string(want), buf.String(), "%#v", v)

		if b, ok := v.([]byte); ok {
			buf.Reset()
			require.NoError(t, writeBytes(&buf, bytes.NewReader(b), int64(len(b))))
			assert.Equal(t, string(want), buf.String())
		}
	}
	// A reader shorter than announced is an error.
	err = writeBytes(new(bytes.Buffer), strings.NewReader("ab"), 3)
	assert.ErrorContains(t, err, "after 2 of 3 bytes")
}
