package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// TestFreeFrees: after DELETE /v1/refs/{cid} ("dray free") the node
// forgets the object at once — a get says the CID is unknown, the node
// tracks nothing more than before, nothing stays pinned — whatever handed
// the CID out, and even after gets of it (which hold the object only while
// they answer). A second free finds nothing kept.
func TestFreeFrees(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		make func(t *testing.T, f *fixture) cid.Cid
	}{
		{"put", func(t *testing.T, f *fixture) cid.Cid {
			c, err := f.c.Put(ctx, bytes.NewReader([]byte("to be freed")), 11)
			require.NoError(t, err)
			return c
		}},
		{"submit", func(t *testing.T, f *fixture) cid.Cid {
			res, err := f.c.Call(ctx, api.CallRequest{Func: "sleep", Args: raws("1")})
			require.NoError(t, err)
			return res.Refs[0]
		}},
		{"call waited, not freed", func(t *testing.T, f *fixture) cid.Cid {
			res, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("40", "2"), Wait: true})
			require.NoError(t, err)
			return res.Refs[0]
		}},
		{"put twice", func(t *testing.T, f *fixture) cid.Cid {
			c, err := f.c.Put(ctx, bytes.NewReader([]byte("twice")), 5)
			require.NoError(t, err)
			_, err = f.c.Put(ctx, bytes.NewReader([]byte("twice")), 5)
			require.NoError(t, err)
			return c
		}},
		{"fetch of a local value", func(t *testing.T, f *fixture) cid.Cid {
			c, err := f.c.Put(ctx, bytes.NewReader([]byte("fetched")), 7)
			require.NoError(t, err)
			_, err = f.c.Fetch(ctx, c, 0)
			require.NoError(t, err)
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, api.Options{})
			base := f.n.Stats()
			c := tc.make(t, f)
			for range 2 { // gets answer, and keep nothing themselves
				_, err := f.c.Get(ctx, c, 0)
				require.NoError(t, err)
			}
			kept, err := f.c.Free(ctx, c)
			require.NoError(t, err)
			require.True(t, kept)

			_, err = f.c.Get(ctx, c, 0)
			var re *api.RemoteError
			require.True(t, errors.As(err, &re), "get after free: want an error, got %v", err)
			assert.Equal(t, http.StatusNotFound, re.Status)
			assert.Equal(t, api.CodeUnknownRef, re.Code)
			assert.Contains(t, re.Message, c.String())
			st := f.n.Stats()
			assert.Equal(t, base.Objects, st.Objects, "objects tracked after free")
			assert.Equal(t, base.Store.Pinned, st.Store.Pinned, "objects pinned after free")
			assert.Equal(t, 0, f.srv.Refs())

			kept, err = f.c.Free(ctx, c)
			require.NoError(t, err)
			assert.False(t, kept, "a second free found the ref still kept")
		})
	}
}

// TestFreeWhileHeld: a freed CID stays available while something else
// holds it — here a task that takes it as an argument — and is forgotten
// once that is gone.
func TestFreeWhileHeld(t *testing.T) {
	ctx := context.Background()
	f := start(t, api.Options{})
	slow, err := f.c.Call(ctx, api.CallRequest{Func: "sleep", Args: raws("300")})
	require.NoError(t, err)
	link, err := json.Marshal(map[string]string{"/": slow.Refs[0].String()})
	require.NoError(t, err)
	dep, err := f.c.Call(ctx, api.CallRequest{Func: "len", Args: []json.RawMessage{link}})
	require.NoError(t, err)
	kept, err := f.c.Free(ctx, slow.Refs[0])
	require.NoError(t, err)
	require.True(t, kept)
	// The len task waits for it, so it is still known (and ready later).
	v, err := f.c.Get(ctx, slow.Refs[0], 0)
	require.NoError(t, err)
	assert.Equal(t, `"`+f.n.ID()+`"`, string(v))
	_, err = f.c.Get(ctx, dep.Refs[0], 0)
	require.NoError(t, err)
	// The task has run and let go: now it is gone.
	_, err = f.c.Get(ctx, slow.Refs[0], 0)
	var re *api.RemoteError
	require.True(t, errors.As(err, &re), "want an error, got %v", err)
	assert.Equal(t, api.CodeUnknownRef, re.Code)
}
