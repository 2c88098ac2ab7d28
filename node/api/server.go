package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// DefaultMaxRequestBytes bounds the JSON request bodies a Server reads when
// Options.MaxRequestBytes is zero. Put bodies are streamed and not bounded.
const DefaultMaxRequestBytes = 8 << 20

// Server timeouts. There is no write timeout: a call with wait or a raw get
// lasts as long as the task or the transfer, and ends when the client goes.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Defaults of the limits on requests in flight (see Options).
const (
	DefaultMaxInFlight      = 512
	DefaultMaxInFlightBytes = 32 << 20
)

// retryAfter is the Retry-After, in seconds, of a request refused because
// the server is full.
const retryAfter = 1

// DefaultOptions returns Options with every limit at its default.
func DefaultOptions() Options {
	return Options{
		MaxRequestBytes:  DefaultMaxRequestBytes,
		MaxInFlight:      DefaultMaxInFlight,
		MaxInFlightBytes: DefaultMaxInFlightBytes,
	}
}

// Validate reports limits that cannot work: negative ones, and a bound on
// request bytes in flight below the largest request accepted. Zero limits
// take their defaults.
func (o Options) Validate() error {
	switch {
	case o.MaxRequestBytes < 0:
		return fmt.Errorf("api: MaxRequestBytes %d is negative", o.MaxRequestBytes)
	case o.MaxInFlight < 0:
		return fmt.Errorf("api: MaxInFlight %d is negative", o.MaxInFlight)
	case o.MaxInFlightBytes < 0:
		return fmt.Errorf("api: MaxInFlightBytes %d is negative", o.MaxInFlightBytes)
	}
	o = o.withDefaults()
	if o.MaxInFlightBytes < o.MaxRequestBytes {
		return fmt.Errorf("api: MaxInFlightBytes %d is below MaxRequestBytes %d: a request of the largest size could never be served", o.MaxInFlightBytes, o.MaxRequestBytes)
	}
	return nil
}

// withDefaults fills the limits left zero (or negative) with defaults.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = d.MaxRequestBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = d.MaxInFlight
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = d.MaxInFlightBytes
	}
	return o
}

// Options configures a Server. Zero limits take their defaults
// (DefaultOptions).
type Options struct {
	// Network reports the peer's libp2p identity, addresses and connected
	// peers. Nil: the node's ID, no addresses and no peers.
	Network func() NetInfo
	// MaxRequestBytes bounds JSON request bodies (0: DefaultMaxRequestBytes).
	MaxRequestBytes int64
	// MaxInFlight bounds the requests served at once, waits included
	// (0: DefaultMaxInFlight).
	MaxInFlight int
	// MaxInFlightBytes bounds the JSON request bodies (call, map) served at
	// once, by their Content-Length or MaxRequestBytes when unknown, from
	// arrival to answer (0: DefaultMaxInFlightBytes). Put bodies stream
	// into the store and do not count.
	//
	// A request over either bound is refused before any of it is read or
	// applied: 503 with Retry-After and code CodeBusy.
	MaxInFlightBytes int64
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Token, when set, is required of every request, as the header
	// "Authorization: Bearer TOKEN" (Client.WithToken sends it). A server
	// on an address other than loopback must have one.
	Token string
}

// Server serves a node's control API over HTTP/JSON (see the package
// documentation for the endpoints). It keeps a ref for every CID it hands
// out — call and map outputs, put and fetched values — in a table, so a CID
// printed by the CLI can be fetched later; DELETE /v1/refs/{cid} releases
// one at once, and Close releases them all. It is safe for concurrent use.
type Server struct {
	n       *node.Node
	opts    Options
	log     *slog.Logger
	maxBody int64
	mux     *http.ServeMux
	hs      *http.Server
	ctx     context.Context
	cancel  context.CancelFunc

	mu       sync.Mutex
	refs     map[cid.Cid]*kept
	addr     string
	closed   bool
	inFlight int   // requests being served
	inBytes  int64 // their JSON bodies' bytes
}

// NewServer returns a Server for n. Serve starts it on a listener; it also
// is an http.Handler (for httptest, say).
//
// Options that do not Validate are made to work: negative limits take
// their defaults and MaxInFlightBytes is raised to MaxRequestBytes.
func NewServer(n *node.Node, opts Options) *Server {
	opts = opts.withDefaults()
	opts.MaxInFlightBytes = max(opts.MaxInFlightBytes, opts.MaxRequestBytes)
	s := &Server{
		n:       n,
		opts:    opts,
		log:     opts.Logger,
		maxBody: opts.MaxRequestBytes,
		refs:    make(map[cid.Cid]*kept),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/id", s.handleID)
	mux.HandleFunc("GET /v1/peers", s.handlePeers)
	mux.HandleFunc("GET /v1/functions", s.handleFunctions)
	mux.HandleFunc("POST /v1/call", s.handleCall)
	mux.HandleFunc("POST /v1/map", s.handleMap)
	mux.HandleFunc("GET /v1/get/{cid}", s.handleGet)
	mux.HandleFunc("GET /v1/get/{cid}/raw", s.handleRaw)
	mux.HandleFunc("POST /v1/put", s.handlePut)
	mux.HandleFunc("POST /v1/fetch/{cid}", s.handleFetch)
	mux.HandleFunc("GET /v1/stats", s.handleStats)
	mux.HandleFunc("DELETE /v1/refs/{cid}", s.handleFree)
	mux.HandleFunc("/", s.handleUnknown)
	s.mux = mux
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve answers requests on ln until Close; it returns nil after Close.
// GET /v1/id reports ln's address as the API address.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.addr == "" {
		s.addr = ln.Addr().String()
	}
	s.mu.Unlock()
	err := s.hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("api: serve: %w", err)
}

// Close stops the server: waits in progress are cancelled, connections are
// closed (after at most a few seconds of grace), and the refs the server
// kept are dropped, so the node can release their objects. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.hs.Close())
	}
	s.mu.Lock()
	for _, k := range s.refs {
		k.ref.Release()
	}
	clear(s.refs)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("api: close: %w", err)
	}
	return nil
}

// Refs returns how many refs the server keeps for the CIDs it handed out.
func (s *Server) Refs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.refs)
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dray"`)
		s.fail(w, &httpError{status: http.StatusUnauthorized, code: CodeUnauthorized,
			msg: "missing or wrong API token: pass the node's token with --api-token or DRAY_API_TOKEN"})
		return
	}
	cost := s.bodyCost(r)
	if err := s.admit(cost); err != nil {
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
		s.fail(w, err)
		return
	}
	defer s.leave(cost)
	// Requests end when the client goes or the server closes.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

// bodyCost is what r's body counts against MaxInFlightBytes: the
// Content-Length of a JSON request (MaxRequestBytes when unknown or
// larger: the most that will be read), 0 for others.
func (s *Server) bodyCost(r *http.Request) int64 {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/call" && r.URL.Path != "/v1/map" {
		return 0
	}
	if r.ContentLength < 0 || r.ContentLength > s.maxBody {
		return s.maxBody
	}
	return r.ContentLength
}

// admit counts a request in, or refuses it when the server is full.
func (s *Server) admit(cost int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var msg string
	switch {
	case s.inFlight >= s.opts.MaxInFlight:
		msg = fmt.Sprintf("node busy: %d requests in flight, the most it serves at once (MaxInFlight): retry after %ds", s.inFlight, retryAfter)
	case cost > 0 && s.inBytes+cost > s.opts.MaxInFlightBytes:
		msg = fmt.Sprintf("node busy: %d bytes of requests in flight, and this one's %d would pass the bound of %d (MaxInFlightBytes): retry after %ds",
			s.inBytes, cost, s.opts.MaxInFlightBytes, retryAfter)
	default:
		s.inFlight++
		s.inBytes += cost
		return nil
	}
	return &httpError{status: http.StatusServiceUnavailable, code: CodeBusy, msg: msg}
}

// leave counts a request out.
func (s *Server) leave(cost int64) {
	s.mu.Lock()
	s.inFlight--
	s.inBytes -= cost
	s.mu.Unlock()
}

// authorized reports whether r carries the server's token, compared in
// constant time.
func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// kept is a ref the server keeps for a CID it handed out.
type kept struct {
	ref node.ObjectRef
}

// keep records refs in the table so their CIDs stay valid. The table takes
// the refs over: the caller must not use them afterwards. The table holds
// one ref a CID, so a ref for a CID kept already is released at once, as
// is every ref once the server is closed.
func (s *Server) keep(refs ...node.ObjectRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range refs {
		switch k := s.refs[r.CID()]; {
		case s.closed:
			r.Release()
		case k != nil:
			if k.ref != r {
				r.Release()
			}
		default:
			s.refs[r.CID()] = &kept{ref: r}
		}
	}
}

// keepOrRelease keeps refs (see keep), or releases them when free is set:
// a waited call whose request asked to keep nothing.
func (s *Server) keepOrRelease(free bool, refs ...node.ObjectRef) {
	if !free {
		s.keep(refs...)
		return
	}
	for _, r := range refs {
		r.Release()
	}
}

// ref returns a new ref for c from the node (an object it tracks — those
// the table keeps among them — holds in its store, or finds in the swarm).
// The caller releases it, or keeps it.
func (s *Server) ref(ctx context.Context, c cid.Cid) (node.ObjectRef, error) {
	return s.n.Resolve(ctx, c)
}

func (s *Server) netInfo() NetInfo {
	if s.opts.Network != nil {
		return s.opts.Network()
	}
	return NetInfo{Peer: s.n.ID()}
}

func (s *Server) handleID(w http.ResponseWriter, r *http.Request) {
	ni := s.netInfo()
	s.mu.Lock()
	api := s.addr
	s.mu.Unlock()
	if api == "" {
		api = r.Host
	}
	s.reply(w, Info{Peer: ni.Peer, Addrs: nonNil(ni.Addrs), API: api})
}

func (s *Server) handlePeers(w http.ResponseWriter, _ *http.Request) {
	peers := s.netInfo().Peers
	if peers == nil {
		peers = []Peer{}
	}
	for i := range peers {
		peers[i].Addrs = nonNil(peers[i].Addrs)
	}
	s.reply(w, peers)
}

func (s *Server) handleFunctions(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("swarm") != "" {
		// Every function the swarm offers, from the tables this node
		// has, with the peers that offer it.
		var out []FunctionInfo
		for _, f := range s.n.SwarmFunctions() {
			out = append(out, FunctionInfo{Name: f.Name, Params: f.Params, Results: f.Results, Signature: f.Signature(),
				Deterministic: f.Deterministic, Doc: f.Doc, Peers: f.Peers})
		}
		s.reply(w, out)
		return
	}
	fns := s.n.Registry().Functions()
	out := make([]FunctionInfo, len(fns))
	for i, f := range fns {
		fi := FunctionInfo{
			Name:          f.Name,
			Params:        make([]string, len(f.Params)),
			Results:       make([]string, len(f.Results)),
			Signature:     f.Signature(),
			Deterministic: f.Deterministic,
			Doc:           f.Doc,
		}
		for j, p := range f.Params {
			fi.Params[j] = p.String()
		}
		for j, t := range f.Results {
			fi.Results[j] = t.String()
		}
		out[i] = fi
	}
	s.reply(w, out)
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	var req CallRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Func == "" {
		s.fail(w, badRequest(`missing "func": the name of the function to call`))
		return
	}
	ctx := r.Context()
	fn, refs, err := Call(ctx, s.n, req.Func, req.Args, node.CallOptions{On: req.On, MaxRetries: req.MaxRetries, RetryErrors: req.RetryErrors, Needs: req.Needs})
	if err != nil {
		s.fail(w, err)
		return
	}
	call, err := s.result(ctx, fn, refs, req.Wait, req.Timeout)
	// An error answer never tells the client the CIDs, and a waited call
	// with Free keeps nothing: their refs go once the answer is written.
	if err != nil || req.Free && req.Wait {
		defer s.keepOrRelease(true, refs...)
	} else {
		s.keep(refs...)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.stream(w, func(bw *bufio.Writer) error { return s.writeCall(ctx, bw, call) })
}

func (s *Server) handleMap(w http.ResponseWriter, r *http.Request) {
	var req MapRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Func == "" {
		s.fail(w, badRequest(`missing "func": the name of the function to map`))
		return
	}
	ctx := r.Context()
	fn, err := s.n.Registry().Lookup(req.Func)
	if err != nil {
		s.fail(w, err)
		return
	}
	// Every argument is checked before anything is submitted.
	calls := make([][]any, len(req.Args))
	defer func() { // the calls hold their arguments themselves
		for _, args := range calls {
			releaseArgs(args)
		}
	}()
	for i, raw := range req.Args {
		args, err := Args(ctx, s.n, fn, raw)
		if err != nil {
			s.fail(w, fmt.Errorf("call %d: %w", i+1, err))
			return
		}
		calls[i] = args
	}
	// The refs of every call submitted so far are kept once answered; an
	// error answer (a submission cut short, a failed or timed-out wait)
	// never tells the client their CIDs, so it releases them all, as does
	// a waited map with Free, once the answer is written.
	refs := make([][]node.ObjectRef, 0, len(calls))
	failed := true
	defer func() {
		for _, rs := range refs {
			s.keepOrRelease(failed || req.Free && req.Wait, rs...)
		}
	}()
	for i, args := range calls {
		rs, err := s.n.CallWith(ctx, node.CallOptions{On: req.On, MaxRetries: req.MaxRetries, RetryErrors: req.RetryErrors, Needs: req.Needs}, fn.Name, args...)
		if err != nil {
			s.fail(w, fmt.Errorf("call %d: %w", i+1, err))
			return
		}
		refs = append(refs, rs)
	}
	out := make([]preparedCall, len(refs))
	for i := range refs {
		if out[i], err = s.result(ctx, fn, refs[i], req.Wait, req.Timeout); err != nil {
			s.fail(w, fmt.Errorf("call %d: %w", i+1, err))
			return
		}
	}
	failed = false
	s.stream(w, func(bw *bufio.Writer) error {
		bw.WriteString(`{"calls":[`)
		for i, c := range out {
			if i > 0 {
				bw.WriteByte(',')
			}
			if err := s.writeCall(ctx, bw, c); err != nil {
				return fmt.Errorf("call %d: %w", i+1, err)
			}
		}
		_, err := bw.WriteString("]}")
		return err
	})
}

// result prepares the answer of one call, waiting for its results if
// asked.
func (s *Server) result(ctx context.Context, fn *node.Function, refs []node.ObjectRef, wait bool, timeout Duration) (preparedCall, error) {
	c := preparedCall{refs: cids(refs)}
	if !wait {
		return c, nil
	}
	vals, err := s.prepareResults(ctx, fn, refs, getOpts(timeout))
	if err != nil {
		return preparedCall{}, err
	}
	c.values = vals
	return c, nil
}

func getOpts(timeout Duration) []node.GetOption {
	if timeout <= 0 {
		return nil
	}
	return []node.GetOption{node.WithTimeout(time.Duration(timeout))}
}

// cidAndTimeout reads the {cid} path value and the timeout query
// parameter (0 when absent).
func (s *Server) cidAndTimeout(r *http.Request) (cid.Cid, Duration, error) {
	raw := r.PathValue("cid")
	c, err := cid.Decode(raw)
	if err != nil {
		return cid.Undef, 0, badRequest(fmt.Sprintf("bad CID %q: %v", raw, err))
	}
	var timeout Duration
	if q := r.URL.Query().Get("timeout"); q != "" {
		if err := timeout.UnmarshalText([]byte(q)); err != nil {
			return cid.Undef, 0, badRequest("timeout: " + err.Error())
		}
	}
	return c, timeout, nil
}

// target reads the {cid} path value and the timeout query parameter, and
// returns a new ref for the CID, which the caller releases.
func (s *Server) target(r *http.Request) (node.ObjectRef, []node.GetOption, error) {
	c, timeout, err := s.cidAndTimeout(r)
	if err != nil {
		return node.ObjectRef{}, nil, err
	}
	ref, err := s.ref(r.Context(), c)
	if err != nil {
		return node.ObjectRef{}, nil, err
	}
	return ref, getOpts(timeout), nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	ref, opts, err := s.target(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer ref.Release()
	// Decode into the producing function's result type when the node knows
	// it, so an int64 stays an int64 and a registered struct keeps its form.
	var t reflect.Type
	if name, i, ok := s.n.Describe(ref.CID()); ok && name != "" {
		if f, err := s.n.Registry().Lookup(name); err == nil && i >= 0 && i < len(f.Results) {
			t = f.Results[i]
		}
	}
	ctx := r.Context()
	v, err := s.prepare(ctx, ref, t, opts)
	if ce := (*convError)(nil); errors.As(err, &ce) {
		err = ce.err
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.stream(w, func(bw *bufio.Writer) error { return s.writeValue(ctx, bw, v) })
}

func (s *Server) handleRaw(w http.ResponseWriter, r *http.Request) {
	ref, opts, err := s.target(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer ref.Release()
	rc, size, err := s.n.OpenBytes(r.Context(), ref, opts...)
	if errors.Is(err, node.ErrNotBytes) {
		err = &httpError{status: http.StatusUnprocessableEntity, code: CodeNotBytes,
			msg: fmt.Sprintf("%s is not a byte string, so it has no raw bytes: get it as JSON instead", ref.CID())}
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", fmt.Sprint(size))
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, rc); err != nil {
		// The status is sent: the client sees a body shorter than its
		// Content-Length.
		s.log.Debug("api: raw get cut short", "cid", ref.CID(), "sent", n, "size", size, "err", err)
	}
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength < 0 {
		s.fail(w, &httpError{status: http.StatusLengthRequired, code: CodeBadRequest,
			msg: "put needs a Content-Length (the size of the value in bytes)"})
		return
	}
	ref, err := s.n.PutStream(r.Context(), r.Body, r.ContentLength)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = badRequest(fmt.Sprintf("put: body shorter than its Content-Length %d", r.ContentLength))
		}
		s.fail(w, err)
		return
	}
	s.keep(ref.ObjectRef)
	s.reply(w, PutResult{CID: ref.CID()})
}

// handleFree releases the ref the server keeps for a CID, however many
// times it was handed out, so the node forgets the object at once unless
// something else holds it.
func (s *Server) handleFree(w http.ResponseWriter, r *http.Request) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		s.fail(w, badRequest(fmt.Sprintf("bad CID %q: %v", r.PathValue("cid"), err)))
		return
	}
	s.mu.Lock()
	k, ok := s.refs[c]
	delete(s.refs, c)
	s.mu.Unlock()
	if ok {
		k.ref.Release()
	}
	s.reply(w, FreeResult{CID: c, Kept: ok})
}

func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	methods := map[string]string{
		"/v1/id": "GET", "/v1/peers": "GET", "/v1/functions": "GET",
		"/v1/call": "POST", "/v1/map": "POST", "/v1/put": "POST", "/v1/stats": "GET",
	}
	want, ok := methods[r.URL.Path]
	switch {
	case ok:
	case strings.HasPrefix(r.URL.Path, "/v1/get/"):
		want, ok = "GET", true
	case strings.HasPrefix(r.URL.Path, "/v1/fetch/"):
		want, ok = "POST", true
	case strings.HasPrefix(r.URL.Path, "/v1/refs/"):
		want, ok = "DELETE", true
	}
	if ok {
		w.Header().Set("Allow", want)
		s.fail(w, &httpError{status: http.StatusMethodNotAllowed, code: CodeBadRequest,
			msg: fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, want)})
		return
	}
	s.fail(w, &httpError{status: http.StatusNotFound, code: CodeNotFound,
		msg: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
}

// decode reads a JSON request body into v: strictly (unknown fields and
// trailing data are errors) and within the size limit.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return badRequest("malformed request: data after the JSON object")
		}
		return nil
	}
	var (
		mbe *http.MaxBytesError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &httpError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
			msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("malformed request: empty body, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed request: JSON ends early")
	case errors.As(err, &syn):
		return badRequest(fmt.Sprintf("malformed request: bad JSON at byte %d: %v", syn.Offset, err))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badRequest(fmt.Sprintf("malformed request: want a JSON object, got %s", typ.Value))
		}
		return badRequest(fmt.Sprintf("malformed request: field %q: got %s, want %s", field, typ.Value, jsonKind(typ.Type.String())))
	default:
		return badRequest("malformed request: " + strings.TrimPrefix(err.Error(), "json: "))
	}
}

// jsonKind names the JSON form of a request field's Go type.
func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[][]"):
		return "a list of argument lists"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return goType
}

// httpError is a request failure with its status and code.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error {
	return &httpError{status: http.StatusBadRequest, code: CodeBadRequest, msg: msg}
}

// classify maps an error to its HTTP status and code.
func classify(err error) (int, string) {
	var (
		he  *httpError
		ac  *ArgCountError
		ae  *ArgumentError
		te  *node.TaskError
		re  *ResultError
		ufe *node.UnknownFunctionError
	)
	switch {
	case errors.As(err, &he):
		return he.status, he.code
	case errors.As(err, &ufe):
		return http.StatusNotFound, CodeUnknownFunction
	case errors.As(err, &ac):
		return http.StatusBadRequest, CodeArgCount
	case errors.As(err, &ae):
		return http.StatusBadRequest, CodeBadArgument
	case errors.As(err, &te):
		return http.StatusUnprocessableEntity, CodeTaskFailed
	case errors.As(err, &re):
		return http.StatusUnprocessableEntity, CodeInternal
	case errors.Is(err, codec.ErrTooDeep):
		return http.StatusBadRequest, CodeBadArgument // an argument nested past codec.MaxDepth
	case errors.Is(err, node.ErrNotBytes):
		return http.StatusUnprocessableEntity, CodeNotBytes
	case errors.Is(err, node.ErrUnknownRef):
		return http.StatusNotFound, CodeUnknownRef
	case errors.Is(err, node.ErrNoSwarm):
		return http.StatusBadRequest, CodeNoSwarm
	case errors.Is(err, node.ErrClosed):
		return http.StatusServiceUnavailable, CodeClosed
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, CodeTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, CodeClosed
	}
	return http.StatusInternalServerError, CodeInternal
}

// fail writes err as an error answer: {"error": message, "code": code}.
// The message is the error's first line (a task's stack stays in the log).
func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := classify(err)
	msg, rest, _ := strings.Cut(err.Error(), "\n")
	if rest != "" || status == http.StatusInternalServerError {
		s.log.Debug("api: request failed", "err", err)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.write(w, status, errorBody{Error: msg, Code: code})
}

func (s *Server) reply(w http.ResponseWriter, v any) { s.write(w, http.StatusOK, v) }

func (s *Server) write(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = marshal(errorBody{Error: "api: encode answer: " + err.Error(), Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		s.log.Debug("api: write answer", "err", err)
	}
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
