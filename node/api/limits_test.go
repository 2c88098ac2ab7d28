package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// TestDeepArgument: an argument nested past codec.MaxDepth is the caller's
// error (400 bad_argument) in one short line naming the limit, not a 500
// with a path as long as the value; one at the limit runs.
func TestDeepArgument(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	nest := func(depth int) json.RawMessage {
		return json.RawMessage(strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth))
	}
	for _, tt := range []struct {
		name  string
		depth int
		fails bool
	}{
		{"at the limit", 64, false},
		{"one past", 65, true},
		{"far past", 1000, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.c.Call(ctx, api.CallRequest{Func: "len", Args: []json.RawMessage{nest(tt.depth)}, Wait: true, Free: true})
			if !tt.fails {
				require.NoError(t, err)
				assert.Equal(t, []string{"1"}, strs(res.Results))
				return
			}
			var re *api.RemoteError
			require.True(t, errors.As(err, &re), "want a RemoteError, got %v", err)
			assert.Equal(t, http.StatusBadRequest, re.Status)
			assert.Equal(t, api.CodeBadArgument, re.Code)
			assert.Contains(t, re.Message, "64 levels")
			assert.NotContains(t, re.Message, "\n")
			assert.Less(t, len(re.Message), 200, "one short line: %q", re.Message)

			_, err = f.c.Map(ctx, api.MapRequest{Func: "len", Args: [][]json.RawMessage{{nest(tt.depth)}}, Wait: true, Free: true})
			require.True(t, errors.As(err, &re), "map: want a RemoteError, got %v", err)
			assert.Equal(t, http.StatusBadRequest, re.Status)
		})
	}
}
