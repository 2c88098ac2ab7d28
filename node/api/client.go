package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// DefaultAddr is the address a node's API listens on by default.
const DefaultAddr = "127.0.0.1:5050"

// maxAnswerBytes bounds JSON answers a Client reads (a large result of a
// call can be big; raw bytes are streamed instead).
const maxAnswerBytes = 1 << 30

// Client talks to a node's control API. Its methods are safe for
// concurrent use and end when their context does. A call fails with a
// *NoNodeError (errors.Is ErrNoNode) when nothing answers at the address and
// with a *RemoteError carrying the server's message when the server refuses
// the request.
type Client struct {
	addr  string
	base  string
	hc    *http.Client
	token string // sent as a bearer token when set
}

// NewClient returns a Client for the API at addr: "HOST:PORT" or an
// http:// URL.
func NewClient(addr string) *Client {
	base := addr
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	tr := &http.Transport{
		Proxy:                 nil, // the API is local: never through a proxy
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Client{addr: addr, base: strings.TrimSuffix(base, "/"), hc: &http.Client{Transport: tr}}
}

// WithToken makes the client send token with every request (see
// Options.Token) and returns it.
func (c *Client) WithToken(token string) *Client {
	c.token = token
	return c
}

// Addr returns the address the client talks to.
func (c *Client) Addr() string { return c.addr }

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ID returns the node's peer ID, multiaddrs and API address.
func (c *Client) ID(ctx context.Context) (Info, error) {
	var out Info
	return out, c.doJSON(ctx, http.MethodGet, "/v1/id", nil, &out)
}

// Peers returns the peers the node is connected to.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	return out, c.doJSON(ctx, http.MethodGet, "/v1/peers", nil, &out)
}

// Functions returns the functions the node runs, sorted by name.
func (c *Client) Functions(ctx context.Context) ([]FunctionInfo, error) {
	var out []FunctionInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/functions", nil, &out)
}

// SwarmFunctions lists every function the node's swarm offers, as the
// tables the node has say, with the peers that offer each.
func (c *Client) SwarmFunctions(ctx context.Context) ([]FunctionInfo, error) {
	var out []FunctionInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/functions?swarm=1", nil, &out)
}

// Call submits a call and returns its refs, and its results when req.Wait
// is set.
func (c *Client) Call(ctx context.Context, req CallRequest) (CallResult, error) {
	var out CallResult
	return out, c.doJSON(ctx, http.MethodPost, "/v1/call", req, &out)
}

// Map submits one call per argument list and returns the calls in order.
func (c *Client) Map(ctx context.Context, req MapRequest) ([]CallResult, error) {
	var out MapResult
	if err := c.doJSON(ctx, http.MethodPost, "/v1/map", req, &out); err != nil {
		return nil, err
	}
	return out.Calls, nil
}

// Get waits for the value of id (at most timeout; 0: no limit) and returns
// it as JSON, decoded into the producing function's result type when the
// node knows it.
func (c *Client) Get(ctx context.Context, id cid.Cid, timeout time.Duration) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.doJSON(ctx, http.MethodGet, getPath(id, "", timeout), nil, &out)
}

// OpenRaw waits for the value of id, which must be a byte string, and
// streams its bytes; it returns the reader and the number of bytes. The
// caller closes the reader. A reader that ends before size bytes reports
// io.ErrUnexpectedEOF.
func (c *Client) OpenRaw(ctx context.Context, id cid.Cid, timeout time.Duration) (io.ReadCloser, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, getPath(id, "/raw", timeout), nil, -1, "")
	if err != nil {
		return nil, 0, err
	}
	if resp.ContentLength < 0 {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("api: raw get %s: answer without a Content-Length", id)
	}
	return resp.Body, resp.ContentLength, nil
}

// Put stores size bytes read from r as a byte-string value and returns its
// CID. The bytes are streamed; size must be exact.
func (c *Client) Put(ctx context.Context, r io.Reader, size int64) (cid.Cid, error) {
	if size < 0 {
		return cid.Undef, fmt.Errorf("api: put: negative size %d", size)
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/put", r, size, "application/octet-stream")
	if err != nil {
		return cid.Undef, err
	}
	var out PutResult
	if err := readJSON(resp, &out); err != nil {
		return cid.Undef, fmt.Errorf("api: put: %w", err)
	}
	return out.CID, nil
}

// Fetch has the node get the object id into its store: one it already has
// (or is computing), else one it finds in the swarm (DHT), fetches and
// verifies. The node keeps it while it runs. timeout bounds the whole fetch
// (0: no limit).
func (c *Client) Fetch(ctx context.Context, id cid.Cid, timeout time.Duration) (FetchResult, error) {
	var out FetchResult
	return out, c.doJSON(ctx, http.MethodPost, cidPath("/v1/fetch/", id, "", timeout), nil, &out)
}

// Free tells the server to forget the ref it keeps for id, so the object is
// freed unless something else holds it. It reports whether the server kept
// one.
func (c *Client) Free(ctx context.Context, id cid.Cid) (bool, error) {
	var out FreeResult
	err := c.doJSON(ctx, http.MethodDelete, "/v1/refs/"+id.String(), nil, &out)
	return out.Kept, err
}

// Stats returns a snapshot of the node's tables: objects, tasks, scheduler
// queues, object store and swarm traffic.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	return out, c.doJSON(ctx, http.MethodGet, "/v1/stats", nil, &out)
}

func getPath(id cid.Cid, suffix string, timeout time.Duration) string {
	return cidPath("/v1/get/", id, suffix, timeout)
}

// cidPath is prefix + id + suffix, with ?timeout= when timeout is set.
func cidPath(prefix string, id cid.Cid, suffix string, timeout time.Duration) string {
	p := prefix + url.PathEscape(id.String()) + suffix
	if timeout > 0 {
		p += "?timeout=" + url.QueryEscape(timeout.String())
	}
	return p
}

// doJSON sends in (if not nil) as JSON and decodes the answer into out.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	size := int64(-1)
	ctype := ""
	if in != nil {
		b, err := marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode request %s: %w", path, err)
		}
		body, size, ctype = bytes.NewReader(b), int64(len(b)), "application/json"
	}
	resp, err := c.do(ctx, method, path, body, size, ctype)
	if err != nil {
		return err
	}
	if err := readJSON(resp, out); err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	return nil
}

// do sends a request and returns a 200 answer; any other status becomes a
// *RemoteError.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: bad address %q: %w", c.addr, err)
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &NoNodeError{Addr: c.addr, Err: op.Err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("api: %s %s: %w", method, path, ctx.Err())
		}
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, remoteError(resp)
	}
	return resp, nil
}

// remoteError reads an error answer.
func remoteError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		return &RemoteError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" || len(msg) > 200 || strings.ContainsAny(msg, "\n") {
		msg = resp.Status
	}
	return &RemoteError{Status: resp.StatusCode, Message: "api: server answered " + msg + " (is this a dray node?)"}
}

// readJSON decodes a 200 answer into out and closes it.
func readJSON(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("answer is %q, not JSON (is this a dray node?)", ct)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
