package api_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// BenchmarkCall measures one waited call of add through the API over a
// loopback socket: the cost `dray run` adds to a task.
func BenchmarkCall(b *testing.B) {
	f := start(b, api.Options{})
	ctx := context.Background()
	req := api.CallRequest{Func: "add", Args: raws("1", "2"), Wait: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.c.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutGetRaw measures streaming 64 MiB in with put and out with a
// raw get.
func BenchmarkPutGetRaw(b *testing.B) {
	f := start(b, api.Options{})
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	b.SetBytes(int64(len(data)) * 2)
	for b.Loop() {
		c, err := f.c.Put(ctx, bytes.NewReader(data), int64(len(data)))
		require.NoError(b, err)
		rc, _, err := f.c.OpenRaw(ctx, c, 0)
		require.NoError(b, err)
		_, err = io.Copy(io.Discard, rc)
		require.NoError(b, err)
		rc.Close()
	}
}
