package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node/api"
)

// post sends a raw JSON body and returns the status, Retry-After and the
// error body, if any.
func post(t *testing.T, addr, path, body string) (int, string, api.RemoteError) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var eb struct{ Error, Code string }
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), api.RemoteError{Code: eb.Code, Message: eb.Error}
}

// holdCall starts a waited call of sleep whose body is padded to size
// bytes and returns once the server has submitted it; release ends it.
func holdCall(t *testing.T, f *fixture, size int) (release func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	base := f.n.Stats().Tasks
	body := `{"func":"sleep","args":[60000],"wait":true}`
	body = body[:1] + strings.Repeat(" ", max(0, size-len(body))) + body[1:] // JSON allows white space
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.addr+"/v1/call", strings.NewReader(body))
	require.NoError(t, err)
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Submitted: the node tracks its task (a waited call's refs go in the
	// server's table only once it is answered).
	require.Eventually(t, func() bool { return f.n.Stats().Tasks == base+1 }, 10*time.Second, time.Millisecond)
	return func() { cancel(); <-done }
}

// TestInFlightBound: a server full of requests refuses more with 503,
// Retry-After and a line naming the bound, before applying any of them.
func TestInFlightBound(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		f := start(t, api.Options{MaxInFlight: 1})
		release := holdCall(t, f, 0)
		status, ra, eb := post(t, f.addr, "/v1/call", `{"func":"add","args":[1,2]}`)
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Equal(t, "1", ra)
		assert.Equal(t, api.CodeBusy, eb.Code)
		assert.Contains(t, eb.Message, "MaxInFlight")
		assert.Contains(t, eb.Message, "retry after 1s")
		assert.Equal(t, 1, f.n.Stats().Tasks, "a refused call was submitted")
		release()
		// Once the held request is gone, calls go through again.
		require.Eventually(t, func() bool {
			status, _, _ := post(t, f.addr, "/v1/call", `{"func":"add","args":[1,2]}`)
			return status == http.StatusOK
		}, 10*time.Second, time.Millisecond)
	})
	t.Run("bytes", func(t *testing.T) {
		f := start(t, api.Options{MaxRequestBytes: 1 << 10, MaxInFlightBytes: 1536})
		release := holdCall(t, f, 1000)
		defer release()
		big := `{"func":"add","args":[1,2` + strings.Repeat(" ", 600) + `]}`
		status, ra, eb := post(t, f.addr, "/v1/map", `{"func":"fib","args":[[1],[2]`+strings.Repeat(" ", 600)+`]}`)
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Equal(t, "1", ra)
		assert.Equal(t, api.CodeBusy, eb.Code)
		assert.Contains(t, eb.Message, "MaxInFlightBytes")
		status, _, _ = post(t, f.addr, "/v1/call", big)
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Equal(t, 1, f.n.Stats().Tasks, "a refused request was submitted")
		// A small request still fits, and requests without a JSON body
		// do not count.
		status, _, eb = post(t, f.addr, "/v1/call", `{"func":"add","args":[1,2]}`)
		assert.Equal(t, http.StatusOK, status, eb.Message)
		_, err := f.c.Stats(context.Background())
		assert.NoError(t, err)
	})
}

func TestOptionsValidate(t *testing.T) {
	assert.NoError(t, api.DefaultOptions().Validate())
	assert.NoError(t, api.Options{}.Validate())
	assert.ErrorContains(t, api.Options{MaxInFlight: -1}.Validate(), "MaxInFlight -1 is negative")
	assert.ErrorContains(t, api.Options{MaxInFlightBytes: -1}.Validate(), "negative")
	assert.ErrorContains(t, api.Options{MaxRequestBytes: -1}.Validate(), "negative")
	assert.ErrorContains(t, api.Options{MaxRequestBytes: 2 << 20, MaxInFlightBytes: 1 << 20}.Validate(), "below MaxRequestBytes")
	assert.ErrorContains(t, api.Options{MaxRequestBytes: 64 << 20}.Validate(), "below MaxRequestBytes")
}
