package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
)

// FuzzRequests sends arbitrary bodies to every endpoint that reads one,
// and arbitrary paths to the rest: the server never answers with a 5xx
// (a bad request is the client's error, named in a JSON error body) and
// never panics. The node offers only a fast function, so no input can
// make it work for long.
func FuzzRequests(f *testing.F) {
	reg := node.NewRegistry()
	require.NoError(f, reg.Register("add", func(a, b int64) int64 { return a + b }, node.Deterministic()))
	cfg := node.DefaultConfig()
	cfg.Functions = reg
	cfg.Slots = 2
	cfg.Store.Dir = f.TempDir()
	cfg.Store.MemoryBudget = 16 << 20
	n, err := node.New(cfg)
	require.NoError(f, err)
	f.Cleanup(func() { _ = n.Close() })
	srv := api.NewServer(n, api.Options{})
	f.Cleanup(func() { _ = srv.Close() })

	endpoints := []struct{ method, path string }{
		{"POST", "/v1/call"}, {"POST", "/v1/map"}, {"POST", "/v1/put"},
		{"GET", "/v1/get/"}, {"POST", "/v1/fetch/"}, {"DELETE", "/v1/refs/"},
		{"GET", "/v1/stats"}, {"GET", "/v1/nope"},
	}
	f.Add(uint8(0), "", []byte(`{"func":"add","args":[1,2],"wait":true}`))
	f.Add(uint8(0), "", []byte(`{"func":"add","args":[{"/":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},2]}`))
	f.Add(uint8(1), "", []byte(`{"func":"add","args":[[1,2],[3,4]],"wait":true,"free":true}`))
	f.Add(uint8(1), "", []byte(`{"func":"add","args":[[1]],"timeout":"1x"}`))
	f.Add(uint8(2), "", []byte("hello"))
	f.Add(uint8(3), "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy?timeout=1ms", []byte(nil))
	f.Add(uint8(4), "notacid", []byte(nil))
	f.Add(uint8(5), "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", []byte(nil))
	f.Fuzz(func(t *testing.T, which uint8, suffix string, body []byte) {
		e := endpoints[int(which)%len(endpoints)]
		req, err := http.NewRequest(e.method, "http://127.0.0.1"+e.path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path += suffix
		if e.path == "/v1/get/" || e.path == "/v1/fetch/" {
			q := req.URL.Query()
			q.Set("timeout", "1ms") // an unknown ref must not wait for the swarm
			req.URL.RawQuery = q.Encode()
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", e.method, req.URL.Path, body, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: error body is not JSON: %q", e.method, req.URL.Path, w.Body.Bytes())
		}
	})
}
