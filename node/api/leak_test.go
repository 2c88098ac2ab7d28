package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// TestFailedMapKeepsNothing: a map whose answer is an error never told
// the client its CIDs, so the server must not keep the refs it took for
// the calls that went through before the failure.
func TestFailedMapKeepsNothing(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	base := f.srv.Refs()
	_, err := f.c.Map(ctx, api.MapRequest{Func: "fib", Args: [][]json.RawMessage{raws("10"), raws("-1"), raws("12")}, Wait: true})
	var re *api.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, api.CodeTaskFailed, re.Code)
	assert.Contains(t, re.Message, "call 2:")
	assert.Equal(t, base, f.srv.Refs(), "a failed map left refs behind")

	// The same for a single waited call that fails.
	_, err = f.c.Call(ctx, api.CallRequest{Func: "fib", Args: raws("-1"), Wait: true})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, base, f.srv.Refs(), "a failed call left refs behind")

	// A submission cut short: the client is gone before the map is
	// submitted, so nothing may be kept.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.c.Map(cctx, api.MapRequest{Func: "fib", Args: [][]json.RawMessage{raws("10"), raws("11")}})
	require.Error(t, err)
	assert.Equal(t, base, f.srv.Refs())
}
