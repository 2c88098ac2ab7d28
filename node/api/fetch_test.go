package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
)

// TestFetch fetches values a single node has or computes (a node without a
// network resolves only those): a put value, task outputs of each kind, and
// the failures.
func TestFetch(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	put, err := f.c.Put(ctx, strings.NewReader(strings.Repeat("x", 300)), 300)
	require.NoError(t, err)
	call := func(fn string, args ...string) cid.Cid {
		res, err := f.c.Call(ctx, api.CallRequest{Func: fn, Args: raws(args...)})
		require.NoError(t, err)
		return res.Refs[0]
	}
	for _, tc := range []struct {
		name    string
		c       cid.Cid
		timeout time.Duration
		size    int64  // want, on success
		code    string // error code, when it fails
		errPart string
	}{
		{"put value", put, 0, 300 + 3, "", ""},
		{"byte-string output", call("bytes", "70000", "1"), 0, 70000 + 5, "", ""},
		{"small output", call("add", "1", "2"), 0, 1, "", ""},
		{"list output", call("nd.rand", "[2]", "1"), 0, -1, "", ""},
		{"output of a running task", call("sleep", "30"), 10 * time.Second, -1, "", ""},
		{"unknown", cid.MustParse("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"), 0, 0, api.CodeUnknownRef, "unknown ref"},
		{"failed task", call("fib", "-1"), 0, 0, api.CodeTaskFailed, "fib of negative -1"},
		{"timeout", call("sleep", "5000"), 20 * time.Millisecond, 0, api.CodeTimeout, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.c.Fetch(ctx, tc.c, tc.timeout)
			if tc.code != "" {
				var re *api.RemoteError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tc.code, re.Code)
				assert.Contains(t, re.Message, tc.errPart)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.c, res.CID)
			assert.True(t, res.Local, "a node without a network has everything it resolves")
			assert.GreaterOrEqual(t, res.Seconds, 0.0)
			if tc.size >= 0 {
				assert.Equal(t, tc.size, res.Size)
			} else {
				assert.Positive(t, res.Size)
			}
			// The value is readable afterwards.
			_, err = f.c.Get(ctx, tc.c, 10*time.Second)
			require.NoError(t, err)
		})
	}
}

// TestStats checks GET /v1/stats against the node's own figures and the
// JSON field names.
func TestStats(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	_, err := f.c.Map(ctx, api.MapRequest{Func: "fib", Args: [][]json.RawMessage{raws("5"), raws("6")}, Wait: true})
	require.NoError(t, err)
	st, err := f.c.Stats(ctx)
	require.NoError(t, err)
	ns := f.n.Stats()
	assert.Equal(t, 4, st.Sched.Slots)
	assert.Equal(t, int64(64<<20), st.Store.MemoryBudget)
	assert.Equal(t, ns.Objects, st.Objects)
	assert.Equal(t, 2, st.Refs)
	assert.GreaterOrEqual(t, st.Sched.Finished, uint64(2))
	assert.Zero(t, st.Net, "no network, no traffic")

	resp, err := http.Get("http://" + f.addr + "/v1/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	for _, k := range []string{"objects", "tasks", "refs", "sched", "store", "net"} {
		assert.Contains(t, m, k)
	}
	assert.Contains(t, m["net"], "msgs_sent")
	assert.Contains(t, m["sched"], "peers")
	assert.Contains(t, m["store"], "mem_bytes")
}

// TestStatsFrom checks that every figure of node.Stats reaches the API's
// form, under the same field name: a field added to node.Stats (or its
// parts) fails here until it is mapped.
func TestStatsFrom(t *testing.T) {
	var ns node.Stats
	next := int64(1)
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Struct:
				fill(f)
			case reflect.Int, reflect.Int64:
				f.SetInt(next)
			case reflect.Uint64:
				f.SetUint(uint64(next))
			default:
				t.Fatalf("node.Stats field %s has kind %s: extend this test", v.Type().Field(i).Name, f.Kind())
			}
			next++
		}
	}
	fill(reflect.ValueOf(&ns).Elem())
	got := api.StatsFrom(ns)
	var check func(path string, src, dst reflect.Value)
	check = func(path string, src, dst reflect.Value) {
		for i := range src.NumField() {
			name := src.Type().Field(i).Name
			d := dst.FieldByName(name)
			if !assert.True(t, d.IsValid(), "api form lacks %s%s", path, name) {
				continue
			}
			s := src.Field(i)
			if s.Kind() == reflect.Struct {
				check(path+name+".", s, d)
				continue
			}
			assert.Equal(t, fmt.Sprint(s.Interface()), fmt.Sprint(d.Interface()), "%s%s", path, name)
		}
	}
	check("", reflect.ValueOf(ns), reflect.ValueOf(got))
}
