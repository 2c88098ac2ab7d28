package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
)

const (
	pending objState = iota
	ready
	failed
)

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
	on     peer.ID        // pinned to this peer (placement hint)
	needs  map[string]int // resources it needs where it runs
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
	funcs  uint64         // digest of the function table, beaconed
	table  []byte         // the function table, encoded (a wire.Table)
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
	tasks    map[string]*task       // by task CID KeyString
	runs     []*task                // tasks to start once mu is released
	fwds     []forward              // tasks to hand to peers once mu is released
	later    []func()               // frames to send once mu is released
	loans    map[cid.Cid]cid.Cid    // results lent to their owners: output ref → content (the scheduler keeps the loans)
	tables   map[peer.ID]*peerTable // other peers' function tables (see funcs.go)
	same     map[peer.ID]bool       // peers whose beacons name this node's table
	tablesUp chan struct{}          // closed and replaced when a table arrives
	lins     map[string]*lineage    // by task CID KeyString (see lineage)
	work     chan *task             // idle workers receive here
	// left is closed when the scheduler says Left: leaving, nothing of
	// other peers' is left here (see Leave).
	left     chan struct{}
	leftOnce sync.Once
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
	table, ids := reg.table()
	table.Resources = cfg.Resources
	table.Digest = withResources(table.Digest, cfg.Resources)
	if cfg.Network != nil {
		funcs = table.Digest
		self = peerKey(cfg.Network.ID())
		if cfg.ID == "" {
			cfg.ID = cfg.Network.ID().String()
		}
	}
	schedCfg := sched.SwarmConfig(cfg.Slots, self)
	schedCfg.Funcs, schedCfg.ProbeBatch, schedCfg.MaxRetries = funcs, cfg.ProbeBatch, cfg.MaxRetries
	schedCfg.MaxQueue, schedCfg.Check = cfg.maxQueue(), checkSched
	schedCfg.Resources = cfg.Resources
	if cfg.Network != nil {
		// Leases in ticks: LeaseTimeout rounded up to whole ticks.
		schedCfg.LeaseTicks = int((cfg.leaseTimeout() + sched.TickEvery - 1) / sched.TickEvery)
		schedCfg.SilenceTicks = sched.DefaultSilenceTicks
		schedCfg.FuncWait = int((cfg.funcWait() + sched.TickEvery - 1) / sched.TickEvery)
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
	// This peer runs its registered functions only.
	if err := s.Step(sched.Event{Kind: sched.Offers, Funcs: ids}); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	tableMsg, err := codec.Marshal(table)
	if err != nil {
		return nil, fmt.Errorf("node: function table: %w", err)
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
		table:    tableMsg,
		tables:   make(map[peer.ID]*peerTable),
		same:     make(map[peer.ID]bool),
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

// Stats is a snapshot of a node's tables.
type Stats struct {
	Objects int         // refs the node tracks
	Tasks   int         // tasks submitted and not finished
	Lent    int         // results this node keeps for the peers that own them
	Sched   sched.Stats // scheduler queues
	Store   store.Stats // object store
	Net     NetStats    // swarm traffic (zero without a network)
}

// Stats returns a snapshot of the node's tables.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := Stats{Objects: len(n.objects), Tasks: len(n.tasks), Lent: n.sched.Lending(), Sched: n.sched.Stats()}
	n.mu.Unlock()
	s.Store = n.store.Stats()
	s.Net = n.netc.snapshot()
	return s
}
