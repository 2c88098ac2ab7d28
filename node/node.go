package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"golang.org/x/time/rate"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
)

// specVersion starts every task spec, so the format can change later.
const specVersion = "dray.task/1"

type objState uint8

const (
	pending objState = iota
	ready
	failed
)

// object is the node's record of one ref: its state, where its bytes are,
// and how many holders (live handles, waiting tasks, containing objects)
// still need it. n.mu guards it.
type object struct {
	state   objState
	content cid.Cid // ready: CID of the bytes in the store
	err     error   // failed: why
	holds   int
	fn      string // producing function ("" for a put value), for messages
	task    cid.Cid
	index   int             // which result of task
	memo    bool            // output of a deterministic function: remember on release
	links   []cid.Cid       // refs inside the value, held while this object lives
	waiters []chan struct{} // each has room for one wake-up signal
	// holder is the peer that ran the task and keeps a large result for
	// us (it is released when the object is dropped); away says its bytes
	// are not in our store yet (a Get fetches them); size is known for
	// lent results.
	holder peer.ID
	away   bool
	size   int64
	fetch  chan struct{} // closed when a fetch in progress ends
	// lin is how to make a lent result again if its holder is lost: the
	// task that made it, whose arguments stay held while it may be needed.
	lin *lineage
	// lostErr says why it could not be had for a task an executor handed
	// back (see recoverObject).
	lostErr error
}

// lineage keeps a finished task that lent results to this node, so they
// can be rebuilt by running it again when the only peer holding them is
// gone (as Ray reconstructs lost objects from lineage). The scheduler
// decides when (Rebuild) and when the lineage may go (Forget, which
// releases the arguments it keeps held); the node keeps what it takes.
type lineage struct {
	t *task
}

// argument is one argument of a task: inline encoded bytes, a ref, or (on
// an executor) a value by content CID to fetch from its holders.
type argument struct {
	raw     []byte
	ref     cid.Cid   // defined when the argument is a ref (a dependency)
	content cid.Cid   // defined when the value must be fetched
	holders []peer.ID // who holds content
}

// task is a submitted task the node has not finished. n.mu guards it,
// except fields that never change after submission.
type task struct {
	id      cid.Cid
	fn      *Function
	args    []argument
	outputs []cid.Cid   // ref CIDs
	held    []cid.Cid   // refs held until the task finishes
	blocked int         // Gets in progress that gave the slot back
	nested  bool        // submitted by a task running on this node
	spec    []byte      // the encoded spec (its CID is id), sent on hand-off
	owner   peer.ID     // executor side: the peer that handed it to us
	sess    *session    // the session it was handed over on (either side)
	acked   atomic.Bool // executor side: acknowledged (or completed)
	// maxRetries is the task's retry budget, which the scheduler spends
	// on lost executors and, with retryErrors, the function's own
	// failures (where the task runs is the scheduler's record alone:
	// sched.Scheduler.HandedTo).
	maxRetries  int
	retryErrors bool
	// handed is when (unix ns) the task was handed over (owner side): its
	// executor's lease runs from then at the earliest.
	handed int64
	on     string // pinned to this peer (placement hint)
	// Executor side (n.mu): cancel stops the running function; orphaned
	// says its owner is gone (see OwnerDiedError).
	cancel   context.CancelCauseFunc
	orphaned bool
}

// Node is one dray peer: a scheduler, a worker pool and an object store.
// It is safe for concurrent use.
type Node struct {
	cfg   Config
	reg   *Registry
	store *store.Store
	log   *slog.Logger
	id    string
	salt  [8]byte
	seq   atomic.Uint64

	draining atomic.Bool // Shutdown was called: new calls are refused (shutdown.go)

	ctx    context.Context // cancelled by Close; parent of task contexts
	cancel context.CancelFunc
	wg     sync.WaitGroup // running tasks and hand-offs
	loops  sync.WaitGroup // swarm loops
	net    p2p.Network    // nil: a single peer
	funcs  uint64         // hash of the function table, beaconed
	amu    sync.Mutex     // guards anns
	anns   []annItem      // objects to announce in the DHT, oldest first
	netc   netCounters    // swarm traffic
	offerq chan []byte    // offers to gossip

	lmu      sync.Mutex                // guards limits
	limits   map[peer.ID]*rate.Limiter // hand-offs a second, by peer
	smu      sync.Mutex                // guards the session tables
	sclosed  bool
	sessions map[peer.ID]*session // sessions this node opened, by peer
	dialing  map[peer.ID]*dial
	live     map[*session]struct{} // every live session, either way

	shmu   sync.Mutex // guards the shard topics
	shards *shardSet  // the topics this node beacons on and hears
	old    *shardSet  // the previous set, still heard until oldUntil
	oldEnd time.Time
	probes int // probes the scheduler asked for, not sent yet (n.mu)
	// lastTick is when (unix ns) the tick loop last told the scheduler
	// which peers it heard (tickLoop only).
	lastTick int64
	// roomWait are the submitters waiting for the tasks tracked to fall
	// below MaxPending (n.mu); each channel is closed once.
	roomWait []chan struct{}

	mu     sync.Mutex
	closed bool
	sched  *sched.Scheduler
	// schedCfg is the configuration sched was made with (a replay of its
	// recording needs it).
	schedCfg sched.Config
	objects  map[cid.Cid]*object
	tasks    map[string]*task    // by task CID KeyString
	runs     []*task             // tasks to start once mu is released
	fwds     []forward           // tasks to hand to peers once mu is released
	later    []func()            // frames to send once mu is released
	loans    map[cid.Cid]loan    // results kept for their owners, by output ref
	lins     map[string]*lineage // by task CID KeyString (see lineage)
	work     chan *task          // idle workers receive here
	memo     *lru.Cache[cid.Cid, cid.Cid]
}

// New starts a node with cfg. Close releases it.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := cfg.Functions
	if reg == nil {
		reg = Default()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// The swarm peer's configuration, from its one source (the simulator
	// runs the same); placement draws from a seed of this node's own, so
	// nodes do not all choose alike.
	var self sched.PeerID
	var funcs uint64
	if cfg.Network != nil {
		funcs = funcsHash(reg)
		self = sched.PeerID(cfg.Network.ID().String())
		if cfg.ID == "" {
			cfg.ID = cfg.Network.ID().String()
		}
	}
	schedCfg := sched.SwarmConfig(cfg.Slots, self)
	schedCfg.Funcs, schedCfg.ProbeBatch, schedCfg.MaxRetries = funcs, cfg.ProbeBatch, cfg.MaxRetries
	schedCfg.MaxQueue, schedCfg.Check = cfg.maxQueue(), checkSched
	if cfg.Network != nil {
		// Leases in ticks: LeaseTimeout rounded up to whole ticks.
		schedCfg.LeaseTicks = int((cfg.leaseTimeout() + sched.TickEvery - 1) / sched.TickEvery)
		schedCfg.SilenceTicks = sched.DefaultSilenceTicks
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	schedCfg.Seed = binary.LittleEndian.Uint64(seed[:])
	if schedHook != nil {
		schedHook(&schedCfg)
	}
	s, err := sched.New(schedCfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	scfg := cfg.Store
	if scfg.Logger == nil {
		scfg.Logger = log
	}
	st, err := store.Open(scfg)
	if err != nil {
		return nil, fmt.Errorf("node: open store: %w", err)
	}
	n := &Node{
		cfg:      cfg,
		reg:      reg,
		store:    st,
		log:      log,
		sched:    s,
		schedCfg: schedCfg,
		objects:  make(map[cid.Cid]*object),
		lins:     make(map[string]*lineage),
		tasks:    make(map[string]*task),
		work:     make(chan *task),
	}
	if cfg.MemoEntries > 0 {
		n.memo, _ = lru.New[cid.Cid, cid.Cid](cfg.MemoEntries)
	}
	_, _ = rand.Read(n.salt[:])
	n.id = cfg.ID
	if n.id == "" {
		n.id = "peer-" + hex.EncodeToString(n.salt[:])
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if cfg.Network != nil {
		n.net, n.funcs = cfg.Network, funcs
		if err := n.startSwarm(); err != nil {
			n.cancel()
			_ = st.Close()
			return nil, err
		}
	}
	return n, nil
}

// Close stops the node at once: queued tasks fail with ErrClosed without
// running, running tasks see their context cancelled, pending Gets return
// ErrClosed, and Close waits for running tasks to return, releases every
// object and closes the store. It must not be called from inside a task.
// Shutdown stops it gracefully instead.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, o := range n.objects {
		n.wake(o)
	}
	for _, w := range n.roomWait {
		close(w) // waiting submitters see the node closed
	}
	n.roomWait = nil
	n.mu.Unlock()
	if n.net != nil {
		n.stopSwarm()
	}
	n.cancel()
	n.loops.Wait()
	n.wg.Wait()
	// Refs do not outlive their node: give every object's bytes back, so
	// spill files of this run do not pile up in the data directory.
	// Memoizable results stay, unpinned, as a cache the store may evict.
	n.mu.Lock()
	for id, o := range n.objects {
		if o.state == ready && !o.away {
			if o.memo && len(o.links) == 0 {
				_ = n.store.Unpin(o.content)
			} else {
				_, _ = n.store.Release(o.content)
			}
		}
		delete(n.objects, id)
	}
	n.mu.Unlock()
	return n.store.Close()
}

// ID returns the peer's ID.
func (n *Node) ID() string { return n.id }

// Registry returns the functions this node runs.
func (n *Node) Registry() *Registry { return n.reg }

// Store returns the node's object store.
func (n *Node) Store() *store.Store { return n.store }

type ctxKey struct{}

// taskCtx is the context a task runs with: the node's context plus the
// task, so Get inside the task can give the slot back and FromContext
// finds the node. It lives inside the task, so making it costs nothing.
type taskCtx struct {
	context.Context
	n *Node
	t *task
}

// Value answers ctxKey{} with the taskCtx itself.
func (c *taskCtx) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// FromContext returns the node running the task whose context ctx is, or
// nil. Remote functions use it to call other remote functions.
func FromContext(ctx context.Context) *Node {
	if tc, ok := ctx.Value(ctxKey{}).(*taskCtx); ok {
		return tc.n
	}
	return nil
}

// Call submits a call of the function registered as name and returns at
// once one ref per result. An argument that is a ref (ObjectRef or Ref[T])
// is a dependency: the task runs once its value exists and receives the
// value. Any other argument is encoded as a value; refs nested inside it
// arrive as refs.
func (n *Node) Call(ctx context.Context, name string, args ...any) ([]ObjectRef, error) {
	return n.call(ctx, name, args, false)
}

// CallOptions change where and how a call runs.
type CallOptions struct {
	// On pins the task to the peer with this ID (this node's own ID runs
	// it here). The task fails if that peer refuses it or cannot be
	// reached. Empty: the scheduler places it.
	On string
	// MaxRetries replaces the function's or the node's MaxRetries for this
	// call when positive; negative means no retries; 0 keeps the default.
	MaxRetries int
	// RetryErrors runs the call again, up to its MaxRetries times, when
	// the function itself fails (returns an error or panics); without it
	// (or the function's RetryErrors option) such failures are final.
	RetryErrors bool
}

// CallWith is Call with options.
func (n *Node) CallWith(ctx context.Context, opts CallOptions, name string, args ...any) ([]ObjectRef, error) {
	if opts.On != "" && opts.On != n.id && n.net == nil {
		return nil, fmt.Errorf("%w: cannot call %s on peer %s (start the node with a network, or drop the peer)", ErrNoSwarm, name, opts.On)
	}
	return n.callOn(ctx, name, args, false, opts)
}

func (n *Node) call(ctx context.Context, name string, args []any, typedArgs bool) ([]ObjectRef, error) {
	return n.callOn(ctx, name, args, typedArgs, CallOptions{})
}

func (n *Node) callOn(ctx context.Context, name string, args []any, typedArgs bool, opts CallOptions) ([]ObjectRef, error) {
	on := opts.On
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("node: call %s: %w", name, err)
	}
	if err := n.admitCall(ctx, name); err != nil {
		return nil, err
	}
	fn, err := n.reg.Lookup(name)
	if err != nil {
		return nil, err
	}
	if len(args) != len(fn.Params) {
		return nil, fmt.Errorf("%w: %s takes %d, got %d (signature: %s)", ErrArgCount, fn.Name, len(fn.Params), len(args), fn.Signature())
	}
	targs := make([]argument, len(args))
	for i, a := range args {
		if r, ok := a.(refArg); ok {
			id := r.objectRef().CID()
			if !id.Defined() {
				return nil, fmt.Errorf("node: call %s: argument %d is a zero ref", fn.Name, i+1)
			}
			if r.objectRef().Released() {
				return nil, &ReleasedError{Op: fmt.Sprintf("call %s: argument %d", fn.Name, i+1), Ref: id}
			}
			targs[i].ref = id
			continue
		}
		raw, err := codec.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("node: call %s: argument %d: %w", fn.Name, i+1, err)
		}
		if !typedArgs && reflect.TypeOf(a) != fn.Params[i] {
			// Check now that the value fits the parameter, so a wrong
			// type is the caller's error and not a task failure later.
			if err := codec.Unmarshal(raw, reflect.New(fn.Params[i]).Interface()); err != nil {
				return nil, fmt.Errorf("node: call %s: %w", fn.Name, &ArgumentError{Index: i, Want: fn.Params[i], Err: err})
			}
		}
		targs[i].raw = raw
	}
	spec, err := n.encodeSpec(fn, targs)
	if err != nil {
		return nil, fmt.Errorf("node: call %s: %w", fn.Name, err)
	}
	t := &task{id: codec.Sum(spec), fn: fn, args: targs, outputs: make([]cid.Cid, len(fn.Results)), spec: spec}
	if tc, ok := ctx.Value(ctxKey{}).(*taskCtx); ok && tc.n == n {
		t.nested = true
	}
	if on != "" && on != n.id {
		t.on = on
	}
	t.retryErrors = fn.RetryErrors || opts.RetryErrors
	t.maxRetries = n.cfg.MaxRetries
	if fn.MaxRetries >= 0 {
		t.maxRetries = fn.MaxRetries
	}
	switch {
	case opts.MaxRetries > 0:
		t.maxRetries = opts.MaxRetries
	case opts.MaxRetries < 0:
		t.maxRetries = 0
	}
	for i := range t.outputs {
		if t.outputs[i], err = outputID(t.id, i); err != nil {
			return nil, fmt.Errorf("node: call %s: %w", fn.Name, err)
		}
	}

	n.mu.Lock()
	if !t.nested {
		// Backpressure: a submitter waits while the node tracks MaxPending
		// unfinished tasks (nested calls never wait: their parents hold
		// slots the waiting would deadlock).
		if err := n.waitRoomLocked(ctx, fn.Name); err != nil {
			n.mu.Unlock()
			return nil, err
		}
	}
	refs, err := n.submitLocked(t)
	n.unlockAndAct()
	// The caller's refs must stay reachable until submitLocked has taken
	// the task's holds on them, or their cleanups could release them first.
	runtime.KeepAlive(args)
	return refs, err
}

// encodeSpec encodes the task spec; its CID is the task ID. Calls of
// deterministic functions carry no nonce, so equal calls get equal IDs. The
// spec is the canonical encoding of
//
//	["dray.task/1", func, [[0, value] | [1, ref link], ...], results, nonce | null]
func (n *Node) encodeSpec(fn *Function, args []argument) ([]byte, error) {
	size := 64 + len(fn.Name)
	for _, a := range args {
		size += 48 + len(a.raw)
	}
	b := codec.NewBuilder(size)
	b.Array(5)
	b.Text(specVersion)
	b.Text(fn.Name)
	b.Array(len(args))
	for _, a := range args {
		b.Array(2)
		if a.ref.Defined() {
			b.Uint(1)
			b.Link(a.ref)
		} else {
			b.Uint(0)
			b.Raw(a.raw)
		}
	}
	b.Uint(uint64(len(fn.Results)))
	if fn.Deterministic {
		b.Null()
	} else {
		var nonce [16]byte
		copy(nonce[:], n.salt[:])
		binary.BigEndian.PutUint64(nonce[8:], n.seq.Add(1))
		b.ByteString(nonce[:])
	}
	return b.Bytes(), nil
}

// outputID is the ref of output i of task: the CID of the descriptor
// [task link, i], known before the task runs. The descriptor is DAG-CBOR,
// and its CID says so (multicodec 0x71), which tells output refs from put
// refs (content CIDs, multicodec 0x51) wherever a ref travels.
func outputID(task cid.Cid, i int) (cid.Cid, error) {
	var buf [64]byte
	b := codec.NewBuilderOn(buf[:0])
	b.Array(2)
	b.Link(task)
	b.Uint(uint64(i))
	d := sha256.Sum256(b.Bytes())
	var raw [4 + sha256.Size]byte // CIDv1, dag-cbor, sha2-256, 32 bytes
	raw[0], raw[1], raw[2], raw[3] = 1, cid.DagCBOR, multihash.SHA2_256, sha256.Size
	copy(raw[4:], d[:])
	return cid.Cast(raw[:])
}

// submitLocked records t and hands it to the scheduler. n.mu is held.
func (n *Node) submitLocked(t *task) ([]ObjectRef, error) {
	if n.closed {
		return nil, fmt.Errorf("%w: cannot call %s", ErrClosed, t.fn.Name)
	}
	key := t.id.KeyString()
	if t.fn.Deterministic {
		if _, inFlight := n.tasks[key]; inFlight {
			// An equal call is running: share its outputs, which exist
			// (pending) for as long as it runs.
			return n.outputRefsLocked(t), nil
		}
		if refs, ok := n.memoLocked(t); ok {
			return refs, nil
		}
	}
	var deps []sched.ObjectID
	var inputs []sched.Input
	var failedDep *DependencyError
	for i, a := range t.args {
		if !a.ref.Defined() {
			for _, l := range linksOf(a.raw) {
				if o := n.objects[l]; o != nil {
					o.holds++
					t.held = append(t.held, l)
				}
			}
			continue
		}
		o := n.objects[a.ref]
		if o == nil {
			n.releaseAllLocked(t.held)
			return nil, &UnknownRefError{Op: fmt.Sprintf("call %s: argument %d", t.fn.Name, i+1), Ref: a.ref}
		}
		o.holds++
		t.held = append(t.held, a.ref)
		switch o.state {
		case pending:
			deps = append(deps, sched.ObjectID(a.ref.KeyString()))
		case ready:
			if n.net != nil {
				inputs = append(inputs, n.inputLocked(a.ref, o))
			}
		case failed:
			if failedDep == nil {
				failedDep = &DependencyError{Arg: i, Ref: a.ref, Err: o.err}
			}
		}
	}
	for i, id := range t.outputs {
		if n.objects[id] == nil {
			n.objects[id] = &object{memo: t.fn.Deterministic, fn: t.fn.Name, task: t.id, index: i}
		}
	}
	refs := n.outputRefsLocked(t)
	n.tasks[key] = t
	if failedDep != nil {
		n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: failedDep})
		return refs, nil
	}
	if err := n.sched.Step(sched.Event{Kind: sched.Submit, Task: sched.TaskID(key), Deps: deps, Nested: t.nested,
		On: sched.PeerID(t.on), Inputs: inputs, MaxRetries: retriesEvent(t.maxRetries), RetryErrors: t.retryErrors}); err != nil {
		// Equal task IDs only arise for deterministic calls, which join
		// the running task above; anything else is a bug worth surfacing.
		n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: err})
		return refs, nil
	}
	n.actLocked()
	return refs, nil
}

// inputLocked describes a ready object for locality: its size and holder.
func (n *Node) inputLocked(id cid.Cid, o *object) sched.Input {
	in := sched.Input{Object: sched.ObjectID(id.KeyString()), Size: o.size}
	if o.holder != "" {
		in.Holders = append(in.Holders, sched.PeerID(o.holder.String()))
	}
	if !o.away {
		in.Size, _ = n.store.Size(o.content)
		in.Holders = append(in.Holders, sched.PeerID(n.net.ID().String()))
	}
	return in
}

// outputRefsLocked returns a new counted ref to each of t's outputs, whose
// records exist.
func (n *Node) outputRefsLocked(t *task) []ObjectRef {
	refs := make([]ObjectRef, len(t.outputs))
	for i, id := range t.outputs {
		n.objects[id].holds++
		refs[i] = ObjectRef{newHandle(n, id)}
	}
	return refs
}

// memoLocked answers a deterministic call whose task is not running when
// every output is still known to the node or remembered in the memo table
// with its bytes still in the store. Otherwise the task runs again; outputs
// still known keep their records (see finishLocked).
func (n *Node) memoLocked(t *task) ([]ObjectRef, bool) {
	if len(t.outputs) == 0 {
		return nil, false
	}
	contents := make([]cid.Cid, len(t.outputs)) // defined: pinned from the memo table
	undo := func() {
		for _, c := range contents {
			if c.Defined() {
				_ = n.store.Unpin(c)
			}
		}
	}
	for i, id := range t.outputs {
		if n.objects[id] != nil {
			continue
		}
		var c cid.Cid
		ok := false
		if n.memo != nil {
			c, ok = n.memo.Get(id)
		}
		if !ok || n.store.Pin(c) != nil { // never made, forgotten, or evicted since
			undo()
			return nil, false
		}
		contents[i] = c
	}
	for i, id := range t.outputs {
		if contents[i].Defined() {
			n.objects[id] = &object{state: ready, content: contents[i], memo: true, fn: t.fn.Name, task: t.id, index: i}
		}
	}
	return n.outputRefsLocked(t), true
}

// actLocked performs the scheduler's actions: runs, hand-offs and frames
// are queued for once n.mu is released (unlockAndAct); failures are
// applied now (and may cascade).
func (n *Node) actLocked() {
	var buf [8]sched.Action
	for n.sched.HasActions() {
		// Our own buffer: handling an action steps the scheduler again.
		for _, a := range n.sched.TakeActions(buf[:0]) {
			if a.Kind == sched.Probe {
				n.probes += a.Count
				continue
			}
			switch a.Kind {
			case sched.Ping, sched.Drop:
				n.leaseLocked(a)
				continue
			case sched.Rebuild:
				n.rebuildLocked(string(a.Task))
				continue
			case sched.Forget:
				n.forgetLineageLocked(string(a.Task))
				continue
			case sched.Fetch:
				if ref, err := cid.Cast([]byte(a.Object)); err == nil {
					n.wg.Add(1)
					go n.recoverObject(ref, string(a.Peer))
				}
				continue
			}
			t := n.tasks[string(a.Task)]
			if t == nil {
				if a.Kind == sched.ClaimOffer {
					n.claimLocked(a)
					continue
				}
				n.log.Error("scheduler named an unknown task", "action", a.Kind, "task", fmt.Sprintf("%x", a.Task))
				continue
			}
			switch a.Kind {
			case sched.Run:
				n.wg.Add(1)
				n.runs = append(n.runs, t)
			case sched.Forward:
				n.forwardLocked(t, a.Peer)
			case sched.Offer:
				n.offerLocked(t)
			case sched.Fail:
				n.finishLocked(t, nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: n.failCauseLocked(t, a)})
			case sched.Retry:
				t.sess = nil
				n.log.Info("the function failed; running it again", "func", t.fn.Name, "task", t.id, "attempt", a.Count, "of", t.maxRetries+1)
			case sched.Refuse:
				n.refuseLocked(t, a.Reason)
			case sched.Cancel:
				n.cancelLocked(t)
			}
		}
	}
}

// failCauseLocked says why the scheduler failed t (a Fail action).
func (n *Node) failCauseLocked(t *task, a sched.Action) error {
	switch a.Reason {
	case sched.FailLost:
		return &ExecutorLostError{Peer: string(a.Peer), Runs: a.Count, MaxRetries: t.maxRetries}
	case sched.FailPinned:
		return fmt.Errorf("cannot run on peer %s: it refused the task or cannot be reached", t.on)
	}
	dep, _ := cid.Cast([]byte(a.Object))
	if a.Reason == sched.FailArg {
		return &DependencyError{Arg: argIndex(t, dep), Ref: dep,
			Err: fmt.Errorf("executors could not fetch it %d times although this node could", a.Count)}
	}
	arg := argIndex(t, dep)
	if o := n.objects[dep]; o != nil {
		err := o.err
		if err == nil {
			err = o.lostErr
		}
		return &DependencyError{Arg: arg, Ref: dep, Err: err}
	}
	return &DependencyError{Arg: arg, Ref: dep}
}

// argIndex is the index of t's argument that is the ref dep (0 if none).
func argIndex(t *task, dep cid.Cid) int {
	for i, x := range t.args {
		if x.ref == dep {
			return i
		}
	}
	return 0
}

// retriesEvent is a task's retry budget as sched.Event.MaxRetries says it.
func retriesEvent(r int) int {
	if r <= 0 {
		return -1
	}
	return r
}

// unlockAndAct releases n.mu, then starts the runs, sends the hand-offs,
// probes and frames the scheduler's actions called for.
func (n *Node) unlockAndAct() {
	runs, fwds, later := n.takeRuns(), n.takeForwards(), n.later
	n.later = nil
	probes := n.probeTargetsLocked()
	n.mu.Unlock()
	n.start(runs)
	n.sendForwards(fwds)
	n.sendProbes(probes)
	for _, f := range later {
		f()
	}
}

func (n *Node) takeRuns() []*task {
	r := n.runs
	n.runs = nil
	return r
}

// start hands tasks to idle workers, and starts a worker for each task no
// idle worker takes. Workers outlive their task and wait a while for the
// next, so a busy node reuses goroutines (and their grown stacks) instead
// of starting one per task; the pool grows past Slots only while tasks are
// blocked in Get, and shrinks back when idle.
func (n *Node) start(runs []*task) {
	for _, t := range runs {
		select {
		case n.work <- t:
		default:
			go n.worker(t)
		}
	}
}

// workerIdle is how long a worker without a task waits before it exits.
const workerIdle = 5 * time.Second

func (n *Node) worker(t *task) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		n.execute(t)
		idle.Reset(workerIdle)
		select {
		case t = <-n.work:
		case <-idle.C:
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// execute runs t on this goroutine and records its outcome.
func (n *Node) execute(t *task) {
	defer n.wg.Done()
	outs, results, err := n.run(t)
	key := t.id.KeyString()
	n.mu.Lock()
	// The function's own failure may run the task again (the scheduler
	// keeps it, with a Retry action); a task handed to us is the owner's
	// to retry.
	n.stepLocked(sched.Event{Kind: sched.Done, Task: sched.TaskID(key), Retryable: t.owner == "" && fromFunc(err)})
	switch {
	case t.owner != "":
		// Handed to us by its owner, which keeps the outputs' records.
		if n.tasks[key] == t {
			n.forgetTaskLocked(key)
		}
		n.actLocked()
	case n.sched.Tracks(sched.TaskID(key)):
		n.actLocked() // runs again: its outputs stay pending
	default:
		n.finishLocked(t, outs, err)
	}
	n.unlockAndAct()
	if t.owner != "" {
		n.report(t, outs, err)
	} else if err == nil {
		n.announceOutputs(t, outs)
	}
	// Refs inside the results stay reachable until finishLocked has held
	// them for the output objects.
	runtime.KeepAlive(results)
}

// announceOutputs provides a finished task's refs and contents in the DHT.
func (n *Node) announceOutputs(t *task, outs []output) {
	if n.net == nil {
		return
	}
	for i, o := range outs {
		n.announce(t.outputs[i], o.content)
	}
}

// output is a result: its content CID and the refs inside it, and, for a
// result another peer keeps for us, that peer and the size.
type output struct {
	content cid.Cid
	links   []cid.Cid
	holder  peer.ID
	size    int64
}

// run resolves t's arguments, calls the function and stores its results.
// It returns the results too, which the caller keeps alive until the refs
// inside them are held.
func (n *Node) run(t *task) (outs []output, results []any, err error) {
	fail := func(cause error) error { return &TaskError{Func: t.fn.Name, Task: t.id, Cause: cause} }
	if n.ctx.Err() != nil { // closing: queued tasks do not start
		return nil, nil, fail(ErrClosed)
	}
	fctx := n.ctx
	if t.owner != "" {
		var cancel context.CancelCauseFunc
		fctx, cancel = context.WithCancelCause(n.ctx)
		defer cancel(nil)
		n.mu.Lock()
		orphaned := t.orphaned
		t.cancel = cancel
		n.mu.Unlock()
		if orphaned {
			return nil, nil, fail(&OwnerDiedError{Owner: t.owner.String()})
		}
	}
	args := make([][]byte, len(t.args))
	for i, a := range t.args {
		if a.content.Defined() {
			data, err := n.fetchArg(fctx, a)
			if err != nil {
				if t.owner != "" && n.ctx.Err() == nil && !errors.Is(err, store.ErrFull) {
					return nil, nil, &argLostError{arg: i, err: err}
				}
				return nil, nil, fail(fmt.Errorf("argument %d: %w", i+1, err))
			}
			args[i] = data
			continue
		}
		if !a.ref.Defined() {
			args[i] = a.raw
			continue
		}
		data, err := n.getBytes(n.ctx, a.ref, nil)
		if err != nil {
			return nil, nil, fail(&DependencyError{Arg: i, Ref: a.ref, Err: err})
		}
		args[i] = data
	}
	// A context per run: goroutines a failed run left behind keep theirs
	// when the task is run again (RetryErrors).
	ctx := &taskCtx{Context: fctx, n: n, t: t}
	results, err = n.invoke(ctx, t, args)
	if err != nil {
		return nil, nil, err
	}
	if len(results) != len(t.outputs) {
		return nil, nil, fail(fmt.Errorf("function returned %d results, want %d", len(results), len(t.outputs)))
	}
	outs = make([]output, len(results))
	for i, r := range results {
		data, err := codec.Marshal(r)
		if err == nil {
			outs[i].links = linksOf(data)
			outs[i].content, err = n.store.PutPinned(n.ctx, data)
		}
		if err != nil {
			for _, o := range outs[:i] {
				_, _ = n.store.Release(o.content)
			}
			return nil, nil, fail(fmt.Errorf("result %d: %w", i+1, err))
		}
	}
	return outs, results, nil
}

// invoke calls the function, turning a panic into a TaskError with the stack.
func (n *Node) invoke(ctx context.Context, t *task, args [][]byte) (res []any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &PanicError{Value: p}, Panic: p, Stack: string(debug.Stack()), FromFunc: true}
		}
	}()
	res, err = t.fn.invoke(ctx, args)
	if err != nil {
		var te *TaskError
		var ae *ArgumentError
		if !errors.As(err, &te) || te.Task != t.id {
			err = &TaskError{Func: t.fn.Name, Task: t.id, Cause: err, FromFunc: !errors.As(err, &ae)}
		}
	}
	return res, err
}

// finishLocked resolves t's outputs (ready with contents, or failed with
// err), tells the scheduler, and drops the task.
func (n *Node) finishLocked(t *task, outs []output, err error) {
	var lin *lineage
	if err == nil && len(lentOutputsLocked(n, t, outs)) > 0 {
		// The scheduler keeps the lineage (it was told with Done's Lent).
		lin = &lineage{t: t}
		n.lins[t.id.KeyString()] = lin
	}
	for i, id := range t.outputs {
		o := n.objects[id]
		if o.state != pending {
			// Kept from an earlier run of this deterministic task: the
			// record stands; give back this run's copy of equal bytes.
			if err == nil {
				n.dropOutputLocked(id, outs[i])
			}
			continue
		}
		ev := sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(id.KeyString())}
		if err == nil {
			out := outs[i]
			o.state, o.content = ready, out.content
			o.holder, o.away, o.size = out.holder, out.holder != "", out.size
			if out.holder != "" {
				o.lin = lin
			}
			n.holdLinksLocked(o, out.links)
			if n.net != nil {
				ev.Holder, ev.Size = sched.PeerID(n.net.ID().String()), out.size
				if out.holder != "" {
					ev.Holder = sched.PeerID(out.holder.String())
				} else {
					ev.Size, _ = n.store.Size(out.content)
				}
			}
		} else {
			o.state, o.err = failed, err
			ev.Kind = sched.ObjectFailed
		}
		n.wake(o)
		n.stepLocked(ev)
		n.maybeDropLocked(id, o)
	}
	if key := t.id.KeyString(); n.tasks[key] == t {
		n.forgetTaskLocked(key)
	}
	if lin == nil {
		// (A lineage keeps the arguments held until it is forgotten.)
		n.releaseAllLocked(t.held)
		t.held = nil
	}
	n.actLocked()
}

// lentOutputsLocked lists t's outputs that outs says another peer keeps
// for this node, still pending here (so this run's copy is the one kept):
// the results lent to it, as Done's Lent tells the scheduler.
func lentOutputsLocked(n *Node, t *task, outs []output) []sched.ObjectID {
	var lent []sched.ObjectID
	for i, id := range t.outputs {
		if i < len(outs) && outs[i].holder != "" {
			if o := n.objects[id]; o != nil && o.state == pending {
				lent = append(lent, sched.ObjectID(id.KeyString()))
			}
		}
	}
	return lent
}

// dropLineageLocked detaches o from its lineage: this node no longer
// needs the holder's copy — it has the bytes (here: fetched, or handed
// them) or dropped the object — and the scheduler hears so (Settled).
func (n *Node) dropLineageLocked(id cid.Cid, o *object, here bool) {
	if o.lin == nil {
		return
	}
	o.lin = nil
	n.stepLocked(sched.Event{Kind: sched.Settled, Object: sched.ObjectID(id.KeyString()), Here: here})
}

// forgetLineageLocked lets go of a lineage the scheduler no longer needs
// (a Forget action): the arguments it kept held are released.
func (n *Node) forgetLineageLocked(key string) {
	lin := n.lins[key]
	if lin == nil {
		return
	}
	delete(n.lins, key)
	for _, id := range lin.t.outputs {
		if o := n.objects[id]; o != nil && o.lin == lin {
			o.lin = nil
		}
	}
	held := lin.t.held
	lin.t.held = nil
	n.releaseAllLocked(held)
}

// errRebuilding tells a Get that the object it wanted is being made again
// (its holder is lost): it waits for it as for any pending object.
var errRebuilding = errors.New("node: rebuilding from lineage")

// rebuildLocked makes the task of lineage key run again (a Rebuild
// action: the scheduler has submitted it): the outputs it lent go back to
// pending, and the task is tracked again (same spec, so the same task and
// output IDs).
func (n *Node) rebuildLocked(key string) {
	lin := n.lins[key]
	if lin == nil || n.tasks[key] != nil {
		n.log.Error("scheduler rebuilds a task the node cannot", "task", fmt.Sprintf("%x", key))
		return
	}
	old := lin.t
	t := &task{id: old.id, fn: old.fn, args: old.args, outputs: old.outputs, spec: old.spec, held: old.held,
		nested: old.nested, maxRetries: old.maxRetries, retryErrors: old.retryErrors} // not pinned: see sched
	old.held = nil
	lin.t = t // a later rebuild starts from this run
	for i, id := range t.outputs {
		p := n.objects[id]
		if p == nil {
			// Dropped since: a record to finish, dropped again then.
			n.objects[id] = &object{memo: t.fn.Deterministic, fn: t.fn.Name, task: t.id, index: i}
			continue
		}
		if p.lin != lin {
			continue // kept from another run, or here: it stands
		}
		p.lin = nil
		p.state, p.content, p.away, p.holder, p.size = pending, cid.Undef, false, "", 0
		links := p.links
		p.links = nil
		n.releaseAllLocked(links)
	}
	n.tasks[key] = t
	n.netc.rebuilt.Add(1)
	n.log.Warn("rebuilding a result whose holder is gone", "func", t.fn.Name, "task", t.id)
}

// dropOutputLocked gives back a result not kept (output id of a task that
// ran twice): local bytes leave the store, lent ones go back to their
// holder.
func (n *Node) dropOutputLocked(id cid.Cid, out output) {
	if out.holder == "" {
		_, _ = n.store.Release(out.content)
		return
	}
	n.wg.Add(1)
	go n.sendRelease(out.holder, id)
}

// holdLinksLocked holds the refs inside a ready object's value for as long
// as the object lives, so a ref returned inside a result stays valid.
func (n *Node) holdLinksLocked(o *object, links []cid.Cid) {
	for _, l := range links {
		if lo := n.objects[l]; lo != nil {
			lo.holds++
			o.links = append(o.links, l)
		}
	}
}

// linksOf returns the CID links in an encoded value. Most values hold none;
// the tag-42 byte pair is looked for first so they cost one scan.
func linksOf(data []byte) []cid.Cid {
	if !mayHaveLinks(data) {
		return nil
	}
	ls, err := codec.Links(data)
	if err != nil {
		return nil
	}
	return ls
}

func mayHaveLinks(data []byte) bool {
	for i := 0; i+1 < len(data); i++ {
		if data[i] == 0xd8 && data[i+1] == 0x2a {
			return true
		}
	}
	return false
}

// describe names what made o, for messages.
func (o *object) describe() string {
	if o.fn == "" {
		return "a put value"
	}
	return fmt.Sprintf("result %d of %s, task %s", o.index+1, o.fn, o.task)
}

// wake notifies everyone waiting on o. Waiter channels have room for one
// signal; a waiter watching several objects may be signalled already.
func (n *Node) wake(o *object) {
	for _, w := range o.waiters {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	o.waiters = nil
}

// release gives back one hold on id (a ref handle was collected).
func (n *Node) release(id cid.Cid) {
	n.mu.Lock()
	n.releaseLocked(id)
	n.mu.Unlock()
}

func (n *Node) releaseAllLocked(ids []cid.Cid) {
	for _, id := range ids {
		n.releaseLocked(id)
	}
}

func (n *Node) releaseLocked(id cid.Cid) {
	o := n.objects[id]
	if o == nil {
		return
	}
	o.holds--
	n.maybeDropLocked(id, o)
}

// maybeDropLocked forgets an object nobody holds once it is resolved; its
// bytes leave the store unless a deterministic function made them, in which
// case they stay, unpinned, as a memo the store may evict.
func (n *Node) maybeDropLocked(id cid.Cid, o *object) {
	if o.holds > 0 || o.state == pending || n.closed {
		return
	}
	delete(n.objects, id)
	if o.state != ready {
		return
	}
	if o.holder != "" {
		n.wg.Add(1)
		go n.sendRelease(o.holder, id)
	}
	n.dropLineageLocked(id, o, false)
	switch {
	case o.away: // never fetched: no bytes here
	case o.memo && n.memo != nil && len(o.links) == 0:
		// A memoized value must not name objects that are released
		// now, so only values without refs inside are remembered.
		n.memo.Add(id, o.content)
		_ = n.store.Unpin(o.content)
	default:
		_, _ = n.store.Release(o.content)
	}
	links := o.links
	o.links = nil
	n.releaseAllLocked(links)
}

// Put stores v and returns its ref, whose CID is the CID of v's encoding.
func (n *Node) Put(ctx context.Context, v any) (ObjectRef, error) {
	data, err := codec.Marshal(v)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("node: put: %w", err)
	}
	r, err := n.PutEncoded(ctx, data)
	runtime.KeepAlive(v) // refs inside v stay alive until the put holds them
	return r, err
}

// Put stores v on n and returns its typed ref.
func Put[T any](ctx context.Context, n *Node, v T) (Ref[T], error) {
	r, err := n.Put(ctx, v)
	return Ref[T]{r}, err
}

// PutEncoded stores bytes that are already a canonical codec encoding and
// returns their ref. The node takes ownership of data.
func (n *Node) PutEncoded(ctx context.Context, data []byte) (ObjectRef, error) {
	c, err := n.store.PutPinned(ctx, data)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("node: put: %w", err)
	}
	links := linksOf(data)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_, _ = n.store.Release(c)
		return ObjectRef{}, fmt.Errorf("%w: cannot put", ErrClosed)
	}
	if o, ok := n.objects[c]; ok && o.state == ready {
		o.holds++
		_, _ = n.store.Release(c) // the existing record already pins it
		return ObjectRef{newHandle(n, c)}, nil
	}
	o := &object{state: ready, content: c, holds: 1}
	n.holdLinksLocked(o, links)
	n.objects[c] = o
	r := ObjectRef{newHandle(n, c)}
	if n.net != nil {
		n.mu.Unlock()
		n.announce(c)
		n.mu.Lock() // for the deferred unlock
	}
	return r, nil
}

// Ref returns a new counted ref to the object with ID c: one this node
// tracks (made by a call or a put and still held), or a value whose bytes
// are in this node's store under the content CID c (spilled by an earlier
// run, say), which is then adopted like a put value.
func (n *Node) Ref(c cid.Cid) (ObjectRef, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ObjectRef{}, fmt.Errorf("%w: cannot resolve ref %s", ErrClosed, c)
	}
	o := n.objects[c]
	if o == nil {
		if n.store.Pin(c) != nil {
			return ObjectRef{}, &UnknownRefError{Op: "ref", Ref: c}
		}
		o = &object{state: ready, content: c}
		n.objects[c] = o
	}
	o.holds++
	return ObjectRef{newHandle(n, c)}, nil
}

// getBytes waits until id is resolved and returns its encoded value.
func (n *Node) getBytes(ctx context.Context, id cid.Cid, opts []GetOption) ([]byte, error) {
	content, release, err := n.resolve(ctx, id, opts, false)
	if err != nil {
		return nil, err
	}
	defer release()
	data, err := n.store.Get(ctx, content)
	if err != nil {
		return nil, fmt.Errorf("node: get %s: %w", id, err)
	}
	return data, nil
}

// resolve waits until id is resolved and returns the CID of its bytes, or
// the task's error. The object cannot be dropped before release is called
// when hold is set, or when resolve had to wait (the caller's ref may be
// gone by then); otherwise the caller's ref keeps it. A WithTimeout option
// bounds the whole resolve, however often the object is rebuilt meanwhile.
func (n *Node) resolve(ctx context.Context, id cid.Cid, opts []GetOption, hold bool) (content cid.Cid, release func(), err error) {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	for {
		content, release, err = n.resolveOnce(ctx, id, hold)
		if !errors.Is(err, errRebuilding) {
			return content, release, err
		}
		// Its holder is gone and its task runs again: wait for it.
	}
}

func (n *Node) resolveOnce(ctx context.Context, id cid.Cid, hold bool) (content cid.Cid, release func(), err error) {
	release = func() {}
	n.mu.Lock()
	obj := n.objects[id]
	if obj == nil {
		n.mu.Unlock()
		return cid.Undef, release, &UnknownRefError{Op: "get", Ref: id}
	}
	if obj.state == pending {
		obj.holds++ // keep the record while we wait
		w := make(chan struct{}, 1)
		obj.waiters = append(obj.waiters, w)
		tc := n.blockLocked(ctx)
		n.unlockAndAct()

		var werr error
		select {
		case <-w:
		case <-ctx.Done():
			werr = ctx.Err()
		case <-n.ctx.Done():
			werr = ErrClosed
		}
		n.mu.Lock()
		n.unblockLocked(tc)
		if werr != nil {
			obj.waiters = removeWaiter(obj.waiters, w)
			obj.holds--
			what := obj.describe()
			n.maybeDropLocked(id, obj)
			n.mu.Unlock()
			return cid.Undef, release, fmt.Errorf("node: get %s (%s): %w", id, what, werr)
		}
		hold = false // we hold it already
		release = func() { n.release(id) }
	}
	if hold {
		obj.holds++
		release = func() { n.release(id) }
	}
	if n.closed {
		n.mu.Unlock()
		release()
		return cid.Undef, func() {}, fmt.Errorf("%w: cannot get %s", ErrClosed, id)
	}
	state, content, oerr, away := obj.state, obj.content, obj.err, obj.away
	n.mu.Unlock()
	if state == failed {
		release()
		return cid.Undef, func() {}, oerr
	}
	if away {
		if err := n.localize(ctx, id); err != nil {
			release()
			return cid.Undef, func() {}, err
		}
		n.mu.Lock()
		content = obj.content // the same unless it was rebuilt meanwhile
		n.mu.Unlock()
	}
	return content, release, nil
}

// blockLocked tells the scheduler that the task running on ctx, if any,
// waits in Get and gives its slot back (so nested tasks cannot deadlock the
// pool). unblockLocked takes the slot again.
func (n *Node) blockLocked(ctx context.Context) *task {
	tc, ok := ctx.Value(ctxKey{}).(*taskCtx)
	if !ok || tc.n != n || n.tasks[tc.t.id.KeyString()] != tc.t {
		return nil
	}
	t := tc.t
	t.blocked++
	if t.blocked == 1 {
		n.stepLocked(sched.Event{Kind: sched.Blocked, Task: sched.TaskID(t.id.KeyString())})
		n.actLocked()
	}
	return t
}

func (n *Node) unblockLocked(t *task) {
	if t == nil {
		return
	}
	t.blocked--
	if t.blocked == 0 && n.tasks[t.id.KeyString()] == t {
		n.stepLocked(sched.Event{Kind: sched.Unblocked, Task: sched.TaskID(t.id.KeyString())})
	}
}

// Stats is a snapshot of a node's tables.
type Stats struct {
	Objects int         // refs the node tracks
	Tasks   int         // tasks submitted and not finished
	Sched   sched.Stats // scheduler queues
	Store   store.Stats // object store
	Net     NetStats    // swarm traffic (zero without a network)
}

// Stats returns a snapshot of the node's tables.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := Stats{Objects: len(n.objects), Tasks: len(n.tasks), Sched: n.sched.Stats()}
	n.mu.Unlock()
	s.Store = n.store.Stats()
	s.Net = n.netc.snapshot()
	return s
}

// forgetTaskLocked drops a finished task's record and wakes submitters
// waiting for room.
func (n *Node) forgetTaskLocked(key string) {
	delete(n.tasks, key)
	if len(n.roomWait) > 0 && len(n.tasks) < n.cfg.maxPending() {
		for _, w := range n.roomWait {
			close(w)
		}
		n.roomWait = n.roomWait[:0]
	}
}

// waitRoomLocked waits, with n.mu released meanwhile, until the node
// tracks fewer than MaxPending unfinished tasks, or fails when ctx ends.
func (n *Node) waitRoomLocked(ctx context.Context, fn string) error {
	limit := n.cfg.maxPending()
	for len(n.tasks) >= limit {
		if n.closed {
			return fmt.Errorf("%w: cannot call %s", ErrClosed, fn)
		}
		w := make(chan struct{})
		n.roomWait = append(n.roomWait, w)
		n.mu.Unlock()
		select {
		case <-w:
			n.mu.Lock()
		case <-ctx.Done():
			n.mu.Lock()
			if i := slices.Index(n.roomWait, w); i >= 0 {
				n.roomWait = slices.Delete(n.roomWait, i, i+1)
			}
			return fmt.Errorf("node: call %s: waited for room: %d tasks pending, the limit (Config.MaxPending); get or drop results, or raise it: %w", fn, len(n.tasks), ctx.Err())
		}
	}
	return nil
}

// fromFunc reports whether err is the function's own failure (an error
// it returned, a panic), which a task that retries errors runs again for.
func fromFunc(err error) bool {
	var te *TaskError
	return errors.As(err, &te) && te.FromFunc
}

// stepLocked applies one event the node's state says fits the
// scheduler's. An error is a bug: logged, and a panic in tests.
func (n *Node) stepLocked(ev sched.Event) {
	if err := n.sched.Step(ev); err != nil {
		if checkSched {
			panic(fmt.Errorf("node: %w", err))
		}
		n.log.Error("scheduler refused an event (a bug)", "event", ev.Kind, "err", err)
	}
}

// schedHook, when set (by tests), may change each new node's scheduler
// configuration: to record its steps (sched.Config.Trace), say.
var schedHook func(*sched.Config)

// checkSched makes every node check the scheduler's invariants after each
// event and panic on an event it refuses: the package's tests set it.
var checkSched = false
