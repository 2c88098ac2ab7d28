package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/node/builtin"
)

type fixture struct {
	n    *node.Node
	srv  *api.Server
	c    *api.Client
	addr string
}

// start runs a real node with the built-in functions behind a Server on a
// real loopback listener.
func start(t testing.TB, opts api.Options) *fixture {
	t.Helper()
	reg := node.NewRegistry()
	require.NoError(t, builtin.Register(reg))
	cfg := node.DefaultConfig()
	cfg.Functions = reg
	cfg.Slots = 4
	cfg.Store.Dir = t.TempDir()
	cfg.Store.MemoryBudget = 64 << 20
	n, err := node.New(cfg)
	require.NoError(t, err)
	srv := api.NewServer(n, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c := api.NewClient(ln.Addr().String())
	t.Cleanup(func() {
		c.CloseIdleConnections()
		assert.NoError(t, srv.Close())
		assert.NoError(t, <-done)
		assert.NoError(t, n.Close())
	})
	return &fixture{n: n, srv: srv, c: c, addr: ln.Addr().String()}
}

func raws(args ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(args))
	for i, a := range args {
		out[i] = json.RawMessage(a)
	}
	return out
}

func strs(rs []json.RawMessage) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestInfo(t *testing.T) {
	f := start(t, api.Options{Network: func() api.NetInfo {
		return api.NetInfo{Peer: "12D3KooWtest", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWtest"},
			Peers: []api.Peer{{ID: "12D3KooWother", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}}}
	}})
	ctx := context.Background()
	info, err := f.c.ID(ctx)
	require.NoError(t, err)
	assert.Equal(t, api.Info{Peer: "12D3KooWtest", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWtest"}, API: f.addr}, info)
	peers, err := f.c.Peers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []api.Peer{{ID: "12D3KooWother", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}}, peers)

	// Without Network: the node's own ID, no addresses, no peers.
	g := start(t, api.Options{})
	info, err = g.c.ID(ctx)
	require.NoError(t, err)
	assert.Equal(t, g.n.ID(), info.Peer)
	assert.Empty(t, info.Addrs)
	peers, err = g.c.Peers(ctx)
	require.NoError(t, err)
	assert.Empty(t, peers)

	fns, err := g.c.Functions(ctx)
	require.NoError(t, err)
	var add *api.FunctionInfo
	for i := range fns {
		if fns[i].Name == "add" {
			add = &fns[i]
		}
	}
	require.NotNil(t, add)
	assert.Equal(t, api.FunctionInfo{Name: "add", Params: []string{"int64", "int64"}, Results: []string{"int64"},
		Signature: "add(int64, int64) int64", Deterministic: true, Doc: "a + b"}, *add)
}

func TestCall(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		req     api.CallRequest
		want    []string // results
		code    string   // error code, when it fails
		errPart string
	}{
		{"add", api.CallRequest{Func: "add", Args: raws("1", "2"), Wait: true}, []string{"3"}, "", ""},
		{"sum", api.CallRequest{Func: "sum", Args: raws("[1, 2, 3.5]"), Wait: true}, []string{"6.5"}, "", ""},
		{"html kept", api.CallRequest{Func: "len", Args: raws(`"<&>"`), Wait: true}, []string{"3"}, "", ""},
		{"bytes", api.CallRequest{Func: "bytes", Args: raws("3", "1"), Wait: true}, []string{`{"/":{"bytes":`}, "", ""},
		{"ndarray", api.CallRequest{Func: "nd.sum", Args: raws(`{"dtype":"int32","shape":[2,2],"data":[1,2,3,4]}`), Wait: true}, []string{"10"}, "", ""},
		{"no wait", api.CallRequest{Func: "fib", Args: raws("15")}, nil, "", ""},
		{"unknown function", api.CallRequest{Func: "ad", Args: raws("1", "2")}, nil, api.CodeUnknownFunction, `unknown function "ad" (did you mean add`},
		{"missing func", api.CallRequest{Args: raws("1")}, nil, api.CodeBadRequest, `missing "func"`},
		{"too few", api.CallRequest{Func: "add", Args: raws("1")}, nil, api.CodeArgCount, "add takes 2 argument(s), got 1 (usage: add(int64, int64) int64)"},
		{"too many", api.CallRequest{Func: "add", Args: raws("1", "2", "3")}, nil, api.CodeArgCount, "got 3"},
		{"wrong type", api.CallRequest{Func: "add", Args: raws("1", `"two"`)}, nil, api.CodeBadArgument, `add: argument 2: cannot use "two" (string) as int64`},
		{"not an integer", api.CallRequest{Func: "add", Args: raws("1.5", "2")}, nil, api.CodeBadArgument, "argument 1: cannot use 1.5 (number) as int64"},
		{"bad ref", api.CallRequest{Func: "add", Args: raws(`{"/":"bafynotacid"}`, "1")}, nil, api.CodeBadArgument, "bad ref"},
		{"unknown ref", api.CallRequest{Func: "add", Args: raws(`{"/":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}`, "1")}, nil, api.CodeBadArgument, "unknown ref"},
		{"task fails", api.CallRequest{Func: "fib", Args: raws("-1"), Wait: true}, nil, api.CodeTaskFailed, "fib of negative -1"},
		{"overflow", api.CallRequest{Func: "add", Args: raws("9223372036854775807", "1"), Wait: true}, nil, api.CodeTaskFailed, "overflows int64"},
		{"timeout", api.CallRequest{Func: "sleep", Args: raws("5000"), Wait: true, Timeout: api.Duration(20 * time.Millisecond)}, nil, api.CodeTimeout, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.c.Call(ctx, tc.req)
			if tc.code != "" {
				var re *api.RemoteError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tc.code, re.Code)
				assert.Contains(t, re.Message, tc.errPart)
				assert.NotContains(t, re.Message, "\n")
				return
			}
			require.NoError(t, err)
			require.Len(t, res.Refs, 1)
			assert.True(t, res.Refs[0].Defined())
			require.Len(t, res.Results, len(tc.want))
			for i, w := range tc.want {
				assert.True(t, strings.HasPrefix(string(res.Results[i]), w), "result %s, want prefix %s", res.Results[i], w)
			}
		})
	}
}

// TestRefsOutliveTheRequest submits without waiting, lets the garbage
// collector run, and fetches the results by CID: the server's table keeps
// them. A ref argument makes a dependency.
func TestRefsOutliveTheRequest(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	res, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("40", "2")})
	require.NoError(t, err)
	dep, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws(`{"/":"`+res.Refs[0].String()+`"}`, "100")})
	require.NoError(t, err)
	assert.Equal(t, 2, f.srv.Refs())
	for range 3 {
		runtime.GC()
	}
	for _, tc := range []struct {
		c    cid.Cid
		want string
	}{{res.Refs[0], "42"}, {dep.Refs[0], "142"}} {
		v, err := f.c.Get(ctx, tc.c, 10*time.Second)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(v))
	}
}

// TestToken requires the server's token of every request: none or a wrong
// one is a 401 with the unauthorized code; the right one works.
func TestToken(t *testing.T) {
	f := start(t, api.Options{Token: "s3cret"})
	ctx := context.Background()
	for _, c := range []*api.Client{api.NewClient(f.addr), api.NewClient(f.addr).WithToken("s3cre"), api.NewClient(f.addr).WithToken("s3cret!")} {
		_, err := c.ID(ctx)
		var re *api.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusUnauthorized, re.Status)
		assert.Equal(t, api.CodeUnauthorized, re.Code)
		assert.Contains(t, re.Message, "--api-token")
	}
	_, err := api.NewClient(f.addr).WithToken("s3cret").ID(ctx)
	require.NoError(t, err)
}

// TestFree forgets refs: a waited call with Free keeps none, DELETE
// /v1/refs/{cid} drops one the server kept (and says whether it did), and
// a ref handed out twice survives one Free.
func TestFree(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	base := f.srv.Refs()
	res, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("1", "2"), Wait: true, Free: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"3"}, strs(res.Results))
	assert.Equal(t, base, f.srv.Refs(), "a waited call with free kept its refs")
	calls, err := f.c.Map(ctx, api.MapRequest{Func: "add", Args: [][]json.RawMessage{raws("1", "3"), raws("2", "3")}, Wait: true, Free: true})
	require.NoError(t, err)
	require.Len(t, calls, 2)
	assert.Equal(t, base, f.srv.Refs(), "a waited map with free kept its refs")

	kept, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("5", "5")})
	require.NoError(t, err)
	_, err = f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("5", "5"), Wait: true, Free: true})
	require.NoError(t, err)
	assert.Equal(t, base+1, f.srv.Refs(), "a free of a ref handed out twice dropped it")
	ok, err := f.c.Free(ctx, kept.Refs[0])
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, base, f.srv.Refs())
	ok, err = f.c.Free(ctx, kept.Refs[0])
	require.NoError(t, err)
	assert.False(t, ok, "a second free found the ref still kept")
}

func TestMap(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	calls, err := f.c.Map(ctx, api.MapRequest{Func: "fib", Args: [][]json.RawMessage{raws("5"), raws("6"), raws("20")}, Wait: true})
	require.NoError(t, err)
	require.Len(t, calls, 3)
	var got []string
	for _, c := range calls {
		got = append(got, strs(c.Results)...)
	}
	assert.Equal(t, []string{"5", "8", "6765"}, got)

	// A bad argument in any call submits nothing.
	before := f.srv.Refs()
	_, err = f.c.Map(ctx, api.MapRequest{Func: "add", Args: [][]json.RawMessage{raws("1", "2"), raws("1", `"x"`)}})
	var re *api.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, api.CodeBadArgument, re.Code)
	assert.Contains(t, re.Message, "call 2: add: argument 2")
	assert.Equal(t, before, f.srv.Refs())

	_, err = f.c.Map(ctx, api.MapRequest{Func: "nope", Args: [][]json.RawMessage{raws("1")}})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, api.CodeUnknownFunction, re.Code)
}

func TestPutGet(t *testing.T) {
	f := start(t, api.Options{})
	ctx := context.Background()
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	c, err := f.c.Put(ctx, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)

	rc, size, err := f.c.OpenRaw(ctx, c, 0)
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), size)
	assert.True(t, bytes.Equal(data, got), "bytes differ")

	// A small put value as JSON, and used as an argument by ref.
	small, err := f.c.Put(ctx, strings.NewReader("abc"), 3)
	require.NoError(t, err)
	v, err := f.c.Get(ctx, small, 0)
	require.NoError(t, err)
	assert.Equal(t, `{"/":{"bytes":"YWJj"}}`, string(v))
	res, err := f.c.Call(ctx, api.CallRequest{Func: "sha256", Args: raws(`{"/":"` + small.String() + `"}`), Wait: true})
	require.NoError(t, err)
	assert.Equal(t, `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`, string(res.Results[0]))

	// Raw bytes of a value that is not a byte string.
	num, err := f.c.Call(ctx, api.CallRequest{Func: "add", Args: raws("1", "2"), Wait: true})
	require.NoError(t, err)
	_, _, err = f.c.OpenRaw(ctx, num.Refs[0], 0)
	var re *api.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, api.CodeNotBytes, re.Code)

	// A body shorter than announced is refused and stores nothing usable.
	_, err = f.c.Put(ctx, strings.NewReader("ab"), 3)
	require.Error(t, err)
}

// TestBadRequests sends malformed requests over plain HTTP.
func TestBadRequests(t *testing.T) {
	f := start(t, api.Options{MaxRequestBytes: 1 << 10})
	base := "http://" + f.addr
	for _, tc := range []struct {
		name, method, path, body string
		chunked                  bool
		status                   int
		code, errPart            string
	}{
		{"malformed JSON", "POST", "/v1/call", `{"func": "add", "args": [1, }`, false, 400, api.CodeBadRequest, "malformed request: bad JSON at byte"},
		{"unknown field", "POST", "/v1/call", `{"fn": "add"}`, false, 400, api.CodeBadRequest, `unknown field "fn"`},
		{"wrong field type", "POST", "/v1/call", `{"func": 1}`, false, 400, api.CodeBadRequest, `field "func": got number, want a string`},
		{"not an object", "POST", "/v1/call", `[1]`, false, 400, api.CodeBadRequest, "want a JSON object"},
		{"empty body", "POST", "/v1/call", ``, false, 400, api.CodeBadRequest, "empty body"},
		{"trailing data", "POST", "/v1/call", `{"func":"add","args":[1,2]} {}`, false, 400, api.CodeBadRequest, "data after the JSON object"},
		{"bad timeout", "POST", "/v1/call", `{"func":"add","args":[1,2],"timeout":"soon"}`, false, 400, api.CodeBadRequest, `bad duration "soon"`},
		{"oversized", "POST", "/v1/call", `{"func":"add","args":["` + strings.Repeat("x", 2<<10) + `"]}`, false, 413, api.CodeTooLarge, "request body larger than 1024 bytes"},
		{"map args not lists", "POST", "/v1/map", `{"func":"fib","args":[1,2]}`, false, 400, api.CodeBadRequest, "malformed request"},
		{"bad cid", "GET", "/v1/get/notacid", "", false, 400, api.CodeBadRequest, `bad CID "notacid"`},
		{"unknown cid", "GET", "/v1/get/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "", false, 404, api.CodeUnknownRef, "unknown ref"},
		{"unknown cid raw", "GET", "/v1/get/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/raw", "", false, 404, api.CodeUnknownRef, "unknown ref"},
		{"bad get timeout", "GET", "/v1/get/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy?timeout=-1s", "", false, 400, api.CodeBadRequest, "negative"},
		{"put without length", "POST", "/v1/put", "abc", true, 411, api.CodeBadRequest, "Content-Length"},
		{"wrong method", "GET", "/v1/call", "", false, 405, api.CodeBadRequest, "method not allowed (use POST)"},
		{"unknown endpoint", "GET", "/v2/id", "", false, 404, api.CodeNotFound, "no endpoint GET /v2/id"},
		{"fetch by GET", "GET", "/v1/fetch/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "", false, 405, api.CodeBadRequest, "method not allowed (use POST)"},
		{"stats by POST", "POST", "/v1/stats", "", false, 405, api.CodeBadRequest, "method not allowed (use GET)"},
		{"fetch bad cid", "POST", "/v1/fetch/notacid", "", false, 400, api.CodeBadRequest, `bad CID "notacid"`},
		{"fetch bad timeout", "POST", "/v1/fetch/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy?timeout=soon", "", false, 400, api.CodeBadRequest, "timeout: bad duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(strings.NewReader(tc.body)) // unknown length: chunked
			}
			req, err := http.NewRequest(tc.method, base+tc.path, body)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var eb struct{ Error, Code string }
			dec := json.NewDecoder(resp.Body)
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&eb))
			assert.Equal(t, tc.code, eb.Code)
			assert.Contains(t, eb.Error, tc.errPart)
		})
	}
}

func TestNoNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = api.NewClient(addr).ID(context.Background())
	require.ErrorIs(t, err, api.ErrNoNode)
	var ne *api.NoNodeError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, addr, ne.Addr)
}

// TestCloseEndsWaits checks that Close cancels a call waiting for a long
// task instead of waiting for it.
func TestCloseEndsWaits(t *testing.T) {
	f := start(t, api.Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := f.c.Call(context.Background(), api.CallRequest{Func: "sleep", Args: raws("60000"), Wait: true})
		errc <- err
	}()
	require.Eventually(t, func() bool { return f.n.Stats().Tasks == 1 }, 10*time.Second, time.Millisecond)
	begin := time.Now()
	require.NoError(t, f.srv.Close())
	err := <-errc
	require.Error(t, err)
	assert.Less(t, time.Since(begin), 5*time.Second)
	// Serving after Close is a no-op.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	assert.NoError(t, f.srv.Serve(ln))
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		raw, errPart string
	}{
		{"1", ""}, {" [1, 2] ", ""}, {`"x"`, ""},
		{"{", "invalid JSON"}, {"1 2", "more than one value"}, {"", "invalid JSON"},
	} {
		err := api.CheckJSON([]byte(tc.raw))
		if tc.errPart == "" {
			assert.NoError(t, err, tc.raw)
		} else {
			assert.ErrorContains(t, err, tc.errPart, tc.raw)
		}
	}
	var d api.Duration
	require.NoError(t, d.UnmarshalText([]byte("1.5s")))
	b, err := d.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "1.5s", string(b))
	assert.ErrorIs(t, (&api.ArgCountError{Func: "f"}), node.ErrArgCount)
}
