package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

func TestPutStreamOpenBytes(t *testing.T) {
	n := newNode(t, 2, nil)
	ctx := ctxT(t)
	for _, size := range []int{0, 1, 23, 24, 300, 70_000, 3 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		r, err := n.PutStream(ctx, bytes.NewReader(data), int64(size))
		require.NoError(t, err)
		// It is an ordinary []byte value...
		v, err := r.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(data), len(v))
		assert.True(t, bytes.Equal(data, v))
		same, err := n.Put(ctx, data)
		require.NoError(t, err)
		assert.Equal(t, same.CID(), r.CID(), "streamed and put values share a CID")
		// ...that streams back out.
		rc, got, err := n.OpenBytes(ctx, r.ObjectRef)
		require.NoError(t, err)
		assert.Equal(t, int64(size), got)
		back, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		assert.True(t, bytes.Equal(data, back), "size %d", size)
	}
	// A task's byte-string result streams too.
	refs, err := n.Call(ctx, "bytes", 100_000, uint64(3))
	require.NoError(t, err)
	rc, size, err := n.OpenBytes(ctx, refs[0])
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, int64(100_000), size)
	assert.Len(t, b, 100_000)
	fn, idx, ok := n.Describe(refs[0].CID())
	assert.True(t, ok)
	assert.Equal(t, "bytes", fn)
	assert.Equal(t, 0, idx)
}

func TestPutStreamErrors(t *testing.T) {
	n := newNode(t, 1, nil)
	ctx := ctxT(t)
	_, err := n.PutStream(ctx, bytes.NewReader([]byte("short")), 10)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, err = n.PutStream(ctx, bytes.NewReader(nil), -1)
	require.Error(t, err)

	notBytes, err := n.Put(ctx, int64(5))
	require.NoError(t, err)
	_, _, err = n.OpenBytes(ctx, notBytes)
	require.ErrorIs(t, err, node.ErrNotBytes)

	failing, err := n.Call(ctx, "fib", -1)
	require.NoError(t, err)
	_, _, err = n.OpenBytes(ctx, failing[0])
	var te *node.TaskError
	require.True(t, errors.As(err, &te))
	_, _, err = n.OpenBytes(context.Background(), node.ObjectRef{})
	require.Error(t, err)
}
