package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
)

// EmuNondeterminism says which parts of an emulation run vary from run to
// run with the same scenario and seed. The task list (durations, sizes,
// dependencies, owners, submission times), the peer IDs, the link
// latencies and the churn plan are the same as the DES run's; everything
// below is not.
const EmuNondeterminism = "goroutine scheduling and real timers (task ends, ticks, beacons), " +
	"GossipSub mesh and delivery order, DHT routing tables and lookups, " +
	"the schedulers' random choices (seeded per node from crypto/rand), fib durations (hashed, not the DES draws)"

// EmuOptions tune an emulation run.
type EmuOptions struct {
	// Progress, if set, is called about every 100 ms of wall time with the
	// time since the workload started and the top-level tasks resolved.
	Progress func(elapsed time.Duration, resolved, total int)
	// Logger receives the nodes' and hosts' logs; nil discards them.
	Logger *slog.Logger
	// StoreBudget is each peer's object store memory budget (0: 64 MiB).
	StoreBudget int64
}

// EmuResult is what an emulation measured: the same figures as a DES
// Result where emu can measure them (see WriteSummary for those it
// cannot).
type EmuResult struct {
	*Result
	// Nondeterministic lists what varies between runs (EmuNondeterminism).
	Nondeterministic string
	// Wall is the wall time of the whole run, set-up and warm-up included.
	Wall time.Duration
	// ProtocolMsgs and ProtocolBytes count the node's swarm messages as
	// received (every session frame once, every gossip message once per
	// receiving peer: the way the DES counts them); DHTRecords counts the
	// provider records sent (p2p AnnounceStats.Records) and DHTLookups the
	// announcer's lookups (not messages: their queries are not visible).
	ProtocolMsgs, ProtocolBytes uint64
	DHTRecords, DHTLookups      uint64
}

// Errors of emulation runs.
var (
	// ErrEmu marks a scenario that the emulation cannot run.
	ErrEmu = errors.New("sim: emu")
)

// emuMaxPeers bounds the emulated swarm: every peer is a real node with a
// libp2p host, DHT and GossipSub in this process.
const emuMaxPeers = 1000

// emuPeer is one emulated node.
type emuPeer struct {
	idx   int
	slots int
	key   crypto.PrivKey
	h     host.Host
	net   *p2p.Host
	n     *node.Node
	alive atomic.Bool
	busy  atomic.Int64
	ran   atomic.Uint32
	// counters at the end of the warm-up, and when it stopped
	base, last emuCount
}

type emuCount struct {
	msgs, bytes, records, lookups uint64
}

func (c emuCount) sub(o emuCount) emuCount {
	return emuCount{c.msgs - o.msgs, c.bytes - o.bytes, c.records - o.records, c.lookups - o.lookups}
}

// emuTask is the emulation's record of a DES task: its output ref at the
// owner, and when it finished.
type emuTask struct {
	ref     node.ObjectRef
	started atomic.Int64 // ns after t0 of the first start, 0 none
	done    atomic.Int64 // ns after t0 when the owner had the output
	failed  atomic.Bool
}

// emu is one emulation run.
type emu struct {
	sc    Scenario
	opts  EmuOptions
	model *Sim // the DES model: the same task list, network draws and churn plan
	log   *slog.Logger
	mn    mocknet.Mocknet
	reg   *node.Registry
	peers []*emuPeer
	byID  map[string]int
	t0    time.Time
	tasks []emuTask

	ctx     context.Context // ends the workload
	cancel  context.CancelFunc
	closing sync.WaitGroup // peers stopped by churn

	mu         sync.Mutex
	latency    []int64
	schedDelay []int64
	side       []uint8
	series     []sampleRow
	queues     [][]int32
	completed  atomic.Uint64 // tasks finished, nested included
	resolved   atomic.Int64  // top-level tasks done or failed
	lastDone   atomic.Int64  // ns after t0 of the last completion
}

// RunEmu runs sc as an emulation: one real node.Node (with a real libp2p
// host, the Kademlia DHT and GossipSub) per peer, in this process, over
// go-libp2p's in-memory network (mocknet) whose links take the latency
// the scenario's network model draws for each pair and its uplink
// bandwidth. The workload is the DES task list of the same scenario and
// seed, run in real time: a task sleeps its drawn duration and returns a
// result of its output size. Every wait is bounded: tasks not resolved by
// the deadline are reported lost.
func RunEmu(ctx context.Context, sc Scenario, opts EmuOptions) (*EmuResult, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if sc.Peers > emuMaxPeers {
		return nil, fmt.Errorf("%w: %d peers: emulation runs up to %d (use --mode des)", ErrEmu, sc.Peers, emuMaxPeers)
	}
	if sc.Network.Loss > 0 {
		return nil, fmt.Errorf("%w: network.loss is not emulated (mocknet links do not drop): set it to 0 or use --mode des", ErrEmu)
	}
	if sc.BeaconScope > 0 {
		return nil, fmt.Errorf("%w: beacon_scope %d: the node beacons on load shards, not to a neighbourhood; emulation needs beacon_scope 0 (set shards instead)", ErrEmu, sc.BeaconScope)
	}
	model, err := New(sc, Options{})
	if err != nil {
		return nil, err
	}
	wallStart := time.Now()
	e := &emu{sc: sc, opts: opts, model: model, log: opts.Logger, mn: mocknet.New(), byID: make(map[string]int)}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.opts.StoreBudget <= 0 {
		e.opts.StoreBudget = 64 << 20
	}
	defer e.mn.Close()
	if e.reg, err = e.registry(); err != nil {
		return nil, err
	}
	e.tasks = make([]emuTask, len(model.tasks))
	e.side = make([]uint8, len(model.peers))
	defer e.shutdown()
	for i := range sc.Peers {
		if err := e.addPeer(ctx, i); err != nil {
			return nil, err
		}
	}
	if err := e.connect(sc.Peers); err != nil {
		return nil, err
	}
	if err := e.warmup(ctx); err != nil {
		return nil, err
	}
	res, err := e.run(ctx)
	if err != nil {
		return nil, err
	}
	res.Wall = time.Since(wallStart)
	return res, nil
}

// peerKey derives peer i's identity from the seed, so peer IDs are the
// same run to run.
func peerKey(seed uint64, i int) (crypto.PrivKey, error) {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(i))
	copy(s[16:], "dray-emu-peer-id")
	k, _, err := crypto.GenerateEd25519Key(rand.NewChaCha8(s))
	if err != nil {
		return nil, fmt.Errorf("sim: emu: peer %d key: %w", i, err)
	}
	return k, nil
}

// addPeer creates peer i: a mocknet host, a p2p.Host over it and a node.
func (e *emu) addPeer(ctx context.Context, i int) error {
	p := &emuPeer{idx: i, slots: e.model.peers[i].slots}
	var err error
	if p.key, err = peerKey(e.sc.Seed, i); err != nil {
		return err
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&0xff, i>>8&0xff, i&0xff))
	if err != nil {
		return fmt.Errorf("sim: emu: peer %d address: %w", i, err)
	}
	if p.h, err = e.mn.AddPeer(p.key, addr); err != nil {
		return fmt.Errorf("sim: emu: peer %d: %w", i, err)
	}
	p.net, err = p2p.New(ctx, p2p.Config{Host: p.h, MDNS: false, Logger: e.log})
	if err != nil {
		return fmt.Errorf("sim: emu: peer %d host: %w", i, err)
	}
	retries := e.sc.MaxRetries
	if retries < 0 {
		retries = math.MaxInt32 // no limit
	}
	p.n, err = node.New(node.Config{
		Network: p.net, Slots: p.slots, Functions: e.reg, Logger: e.log,
		Store:      store.Config{MemoryBudget: e.opts.StoreBudget, Logger: e.log},
		MaxRetries: retries,
		// The DES's shard count (auto: sched.Shards of the initial peers),
		// fixed from the start: the node's own estimate would start at one
		// shard while the mesh forms and move 20 s later.
		Shards:     e.model.shards,
		ProbeBatch: e.sc.ProbeBatch,
	})
	if err != nil {
		_ = p.net.Close()
		return fmt.Errorf("sim: emu: peer %d node: %w", i, err)
	}
	p.alive.Store(true)
	e.mu.Lock()
	e.peers = append(e.peers, p)
	e.byID[p.n.ID()] = i
	e.mu.Unlock()
	return nil
}

// linkOpts are the options of the link a–b: the model's latency for the
// pair and the uplink bandwidth.
func (e *emu) linkOpts(a, b int) mocknet.LinkOptions {
	return mocknet.LinkOptions{
		Latency:   time.Duration(e.model.net.latency(int32(a), int32(b))),
		Bandwidth: e.model.net.bps,
	}
}

// link links and connects peer a to every peer b < upTo that is alive and
// on its side (a LAN swarm: every peer sees every other).
func (e *emu) link(a, b int) error {
	pa, pb := e.peers[a], e.peers[b]
	l, err := e.mn.LinkPeers(pa.h.ID(), pb.h.ID())
	if err != nil {
		return fmt.Errorf("sim: emu: link %d-%d: %w", a, b, err)
	}
	l.SetOptions(e.linkOpts(a, b))
	if _, err := e.mn.ConnectPeers(pa.h.ID(), pb.h.ID()); err != nil {
		return fmt.Errorf("sim: emu: connect %d-%d: %w", a, b, err)
	}
	return nil
}

// connect links and connects the first n peers to each other.
func (e *emu) connect(n int) error {
	for a := range n {
		for b := a + 1; b < n; b++ {
			if err := e.link(a, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// warmup waits until every peer has heard the beacons of every peer on
// its two shards (every other peer, with one shard): at least the
// scenario's warm-up, at most 30 s more.
func (e *emu) warmup(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(time.Duration(e.sc.Warmup) + 30*time.Second)
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	want := e.hearers()
	for {
		heard := true
		for i, p := range e.peers {
			if p.n.Stats().Sched.Peers < want[i] {
				heard = false
				break
			}
		}
		if heard && time.Since(start) >= time.Duration(e.sc.Warmup) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: warm-up: the peers did not hear each other's beacons within %s", ErrEmu, time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sim: emu: warm-up: %w", ctx.Err())
		case <-tk.C:
		}
	}
}

// hearers returns how many other peers each peer hears: those whose home
// shard is its home or extra shard (sched.ShardOf of the libp2p peer ID,
// as the node computes it).
func (e *emu) hearers() []int {
	n := len(e.peers)
	want := make([]int, n)
	if e.model.shards <= 1 {
		for i := range want {
			want[i] = n - 1
		}
		return want
	}
	home := make([]int, n)
	extra := make([]int, n)
	for i, p := range e.peers {
		home[i], extra[i] = sched.ShardOf(sched.PeerID(p.h.ID().String()), e.model.shards)
	}
	for i := range e.peers {
		for j := range e.peers {
			if i != j && (home[j] == home[i] || home[j] == extra[i]) {
				want[i]++
			}
		}
	}
	return want
}

func (p *emuPeer) count() emuCount {
	st := p.n.Stats().Net
	as := p.net.AnnounceStats()
	return emuCount{msgs: st.MsgsRecv, bytes: st.BytesRecv, records: as.Records, lookups: as.Lookups}
}

// shutdown closes every node and host.
func (e *emu) shutdown() {
	e.closing.Wait()
	var wg sync.WaitGroup
	for _, p := range e.peers {
		wg.Go(func() { p.close() })
	}
	wg.Wait()
}

func (p *emuPeer) close() {
	if p.n != nil {
		_ = p.n.Close()
	}
	if p.net != nil {
		_ = p.net.Close()
	}
	if p.h != nil {
		_ = p.h.Close()
	}
}

// Workload functions. Every task is a call of emu.w<k>(idx, k byte
// arguments): it sleeps the task's drawn duration and returns its output
// size in bytes; fib trees call emu.fib.
const (
	emuWork = "emu.w"
	emuFib  = "emu.fib"
)

var bytesType = reflect.TypeFor[[]byte]()

// registry registers the functions the workload needs, with the same
// table on every peer.
func (e *emu) registry() (*node.Registry, error) {
	reg := node.NewRegistry()
	arities := map[int]bool{}
	for i := range e.model.tasks {
		t := &e.model.tasks[i]
		k := int(t.nDeps)
		if t.input > 0 {
			k++
		}
		arities[k] = true
	}
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for k := range arities {
		in := []reflect.Type{ctxType, reflect.TypeFor[int64]()}
		for range k {
			in = append(in, bytesType)
		}
		ft := reflect.FuncOf(in, []reflect.Type{bytesType, errType}, false)
		fn := reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
			ctx := args[0].Interface().(context.Context)
			out, err := e.work(ctx, args[1].Int())
			ev := reflect.Zero(errType)
			if err != nil {
				ev = reflect.ValueOf(&err).Elem()
			}
			return []reflect.Value{reflect.ValueOf(out), ev}
		})
		if err := reg.Register(emuWork+strconv.Itoa(k), fn.Interface()); err != nil {
			return nil, fmt.Errorf("sim: emu: %w", err)
		}
	}
	if err := reg.Register(emuFib, e.fib); err != nil {
		return nil, fmt.Errorf("sim: emu: %w", err)
	}
	return reg, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runner returns the peer running the task whose context ctx is.
func (e *emu) runner(ctx context.Context) *emuPeer {
	n := node.FromContext(ctx)
	if n == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if i, ok := e.byID[n.ID()]; ok {
		return e.peers[i]
	}
	return nil
}

// work runs top-level task idx: records its start, sleeps its duration,
// and returns its output.
func (e *emu) work(ctx context.Context, idx int64) ([]byte, error) {
	if idx < 0 || int(idx) >= len(e.model.tasks) {
		return nil, fmt.Errorf("sim: emu: no task %d", idx)
	}
	t := &e.model.tasks[idx]
	now := int64(time.Since(e.t0))
	if e.tasks[idx].started.CompareAndSwap(0, max(now, 1)) {
		ready := t.submitAt - e.model.t0
		for _, d := range e.model.depsOf(t) {
			ready = max(ready, e.tasks[d].done.Load())
		}
		e.mu.Lock()
		e.schedDelay = append(e.schedDelay, max(now-ready, 0))
		e.mu.Unlock()
	}
	if p := e.runner(ctx); p != nil {
		p.busy.Add(t.dur)
		p.ran.Add(1)
	}
	if err := sleep(ctx, time.Duration(t.dur)); err != nil {
		return nil, err
	}
	out := make([]byte, t.out)
	binary.LittleEndian.PutUint64(out[:min(8, len(out))], uint64(idx)) // distinct contents
	return out, nil
}

// fibKey numbers the calls of a fib tree: the root of job i is i<<34|1,
// the children of k are 2k and 2k+1.
func fibKey(job int64) int64 { return job<<34 | 1 }

// fib is the nested workload: half its work, fib(n-1) and fib(n-2) as
// nested tasks on the node running it (as builtin.Fib), waiting for both,
// then the other half. Durations are drawn from a hash of the seed and the
// call's key (the DES draws them in event order, which emu cannot follow).
func (e *emu) fib(ctx context.Context, n, key int64) (int64, error) {
	d := drawDist(e.sc.Workload.Duration, mix(e.sc.Seed^uint64(key)*0x9e3779b97f4a7c15))
	if p := e.runner(ctx); p != nil {
		p.busy.Add(d)
		p.ran.Add(1)
	}
	if n < 2 {
		if err := sleep(ctx, time.Duration(d)); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err := sleep(ctx, time.Duration(d/2)); err != nil {
		return 0, err
	}
	nd := node.FromContext(ctx)
	if nd == nil {
		return 0, errors.New("sim: emu: fib called outside a task")
	}
	var sum int64
	var refs [2]node.ObjectRef
	var called [2]time.Time
	for c := range 2 {
		r, err := nd.Call(ctx, emuFib, n-1-int64(c), 2*key+int64(c))
		if err != nil {
			return 0, err
		}
		refs[c], called[c] = r[0], time.Now()
	}
	for c := range 2 {
		v, err := node.As[int64](refs[c]).Get(ctx)
		if err != nil {
			return 0, err
		}
		e.mu.Lock()
		e.latency = append(e.latency, int64(time.Since(called[c])))
		e.mu.Unlock()
		e.completed.Add(1)
		sum += v
	}
	if err := sleep(ctx, time.Duration(d-d/2)); err != nil {
		return 0, err
	}
	return sum, nil
}

// run submits the workload in real time, runs the churn plan and the
// sampler, waits (bounded) for every top-level task and builds the result.
func (e *emu) run(ctx context.Context) (*EmuResult, error) {
	m := e.model
	perSlot, lastSub := m.workPerSlot()
	// The deadline: MaxTime, or generous room over the ideal.
	limit := time.Duration(lastSub) + 4*time.Duration(perSlot) + 60*time.Second
	if m.sc.Workload.Kind == "fib" {
		limit += 2 * time.Duration(float64(int64(1)<<min(m.sc.Workload.FibN, 30))*meanOf(m.sc.Workload.Duration)/float64(max(m.totalSlots, 1)))
	}
	if m.sc.MaxTime > 0 {
		limit = time.Duration(m.sc.MaxTime)
	}
	e.ctx, e.cancel = context.WithTimeout(ctx, limit)
	defer e.cancel()
	for _, p := range e.peers {
		p.base = p.count()
	}
	e.t0 = time.Now()
	every := time.Duration(m.sc.SampleEvery)
	if every <= 0 {
		every = time.Duration(m.estimateSample())
	}
	var bg sync.WaitGroup
	stopSampler := make(chan struct{})
	bg.Go(func() { e.sampler(every, stopSampler) })
	bg.Go(e.churn)
	var waiters sync.WaitGroup
	subErr := e.submitAll(&waiters)
	done := make(chan struct{})
	go func() { waiters.Wait(); close(done) }()
	select {
	case <-done:
	case <-e.ctx.Done():
	}
	e.cancel()
	waiters.Wait()
	close(stopSampler)
	bg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: emu: run stopped: %w", err)
	}
	if subErr != nil {
		return nil, subErr
	}
	// The DES counts an announcement's provider records when it is made;
	// the hosts send them in batches a little later, so let them finish
	// before counting (bounded: a busy machine must not hang the run).
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	for _, p := range e.peers {
		if p.alive.Load() {
			_ = p.net.Flush(fctx)
		}
	}
	cancel()
	for _, p := range e.peers {
		if p.alive.Load() {
			p.last = p.count()
		}
	}
	e.sample(time.Since(e.t0))
	return e.result(), nil
}

// submitAll submits the top-level tasks at their times, each from its
// owner, and starts a waiter per task.
func (e *emu) submitAll(waiters *sync.WaitGroup) error {
	m := e.model
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k, i := range m.subs {
		t := &m.tasks[i]
		at := time.Duration(t.submitAt - m.t0)
		if wait := at - time.Since(e.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-e.ctx.Done():
				return nil
			case <-timer.C:
			}
		}
		if e.opts.Progress != nil && k%256 == 0 {
			e.opts.Progress(time.Since(e.t0), int(e.resolved.Load()), m.topTasks)
		}
		owner := e.peers[t.owner]
		if !owner.alive.Load() {
			e.tasks[i].failed.Store(true)
			e.resolved.Add(1)
			continue
		}
		ref, err := e.call(owner, i)
		if err != nil {
			if e.ctx.Err() != nil || !owner.alive.Load() {
				e.tasks[i].failed.Store(true)
				e.resolved.Add(1)
				continue
			}
			return fmt.Errorf("sim: emu: submit task %d: %w", i, err)
		}
		e.tasks[i].ref = ref
		waiters.Go(func() { e.await(owner, i) })
	}
	return nil
}

// call submits task i on its owner.
func (e *emu) call(owner *emuPeer, i int32) (node.ObjectRef, error) {
	t := &e.model.tasks[i]
	if t.fibN > 0 || e.sc.Workload.Kind == "fib" {
		r, err := owner.n.Call(e.ctx, emuFib, int64(t.fibN), fibKey(int64(i)))
		if err != nil {
			return node.ObjectRef{}, err
		}
		return r[0], nil
	}
	args := []any{int64(i)}
	if t.input > 0 {
		in := make([]byte, t.input)
		binary.LittleEndian.PutUint64(in, uint64(i))
		r, err := owner.n.Put(e.ctx, in)
		if err != nil {
			return node.ObjectRef{}, err
		}
		args = append(args, r)
	}
	for _, d := range e.model.depsOf(t) {
		args = append(args, e.tasks[d].ref)
	}
	r, err := owner.n.Call(e.ctx, emuWork+strconv.Itoa(len(args)-1), args...)
	if err != nil {
		return node.ObjectRef{}, err
	}
	return r[0], nil
}

// await waits until task i is resolved at its owner; a final result is
// fetched with Get (as the user would), which also tells a failure.
func (e *emu) await(owner *emuPeer, i int32) {
	t := &e.model.tasks[i]
	et := &e.tasks[i]
	ready, _, err := owner.n.Wait(e.ctx, []node.ObjectRef{et.ref}, 1, 0)
	if err != nil || len(ready) == 0 {
		return // lost: the run ended first
	}
	if t.final {
		if _, err := et.ref.Get(e.ctx); err != nil {
			if e.ctx.Err() != nil {
				return
			}
			et.failed.Store(true)
			e.resolved.Add(1)
			return
		}
	}
	now := int64(time.Since(e.t0))
	et.done.Store(now)
	e.lastDone.Store(now)
	e.mu.Lock()
	e.latency = append(e.latency, now-(t.submitAt-e.model.t0))
	e.mu.Unlock()
	e.completed.Add(1)
	e.resolved.Add(1)
}

// churn carries out the DES model's churn plan and partitions in real
// time.
func (e *emu) churn() {
	type step struct {
		at   int64
		plan *plannedChurn
		part int // partition k+1 starts; -(k+1) heals
	}
	var steps []step
	for k := range e.model.plan {
		steps = append(steps, step{at: e.model.plan[k].at, plan: &e.model.plan[k]})
	}
	for k, p := range e.sc.Partitions {
		steps = append(steps, step{at: int64(p.At), part: k + 1}, step{at: int64(p.Heal), part: -(k + 1)})
	}
	slices.SortStableFunc(steps, func(a, b step) int { return int(min(max(a.at-b.at, -1), 1)) })
	rng := rand.New(rand.NewPCG(mix(e.sc.Seed^0xe3a1), e.sc.Seed))
	next := e.sc.Peers
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for _, s := range steps {
		if wait := time.Duration(s.at) - time.Since(e.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-e.ctx.Done():
				return
			case <-timer.C:
			}
		}
		switch {
		case s.part > 0:
			e.partition(s.part-1, rng)
		case s.part < 0:
			e.heal()
		case s.plan.act == actJoin:
			for range s.plan.count {
				if err := e.join(next); err != nil {
					e.log.Warn("emu: join", "err", err)
				}
				next++
			}
		default:
			e.disturb(s.plan, rng)
		}
	}
}

// victims picks count (or fraction of the live) peers, never a submitter
// unless the scenario allows it.
func (e *emu) victims(count int, fraction float64, rng *rand.Rand) []*emuPeer {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	var cands []*emuPeer
	live := 0
	for _, p := range peers {
		if !p.alive.Load() {
			continue
		}
		live++
		if e.model.peers[p.idx].submitter && !e.sc.Churn.CrashSubmitters {
			continue
		}
		cands = append(cands, p)
	}
	if count == 0 {
		count = int(math.Round(fraction * float64(live)))
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands[:min(count, len(cands))]
}

// disturb crashes or closes the victims of a churn step. A crash cuts the
// victim's links abruptly (its peers see the connections drop), then
// stops its node; a graceful leave closes the node first.
func (e *emu) disturb(c *plannedChurn, rng *rand.Rand) {
	for _, p := range e.victims(c.count, c.fraction, rng) {
		p.alive.Store(false)
		p.last = p.count()
		if c.act == actCrash {
			e.cut(p)
			e.closing.Go(p.close)
			continue
		}
		e.closing.Go(func() {
			_ = p.n.Close()
			e.cut(p)
			_ = p.net.Close()
			_ = p.h.Close()
		})
	}
}

// cut unlinks and disconnects p from every peer.
func (e *emu) cut(p *emuPeer) {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, q := range peers {
		if q != p {
			_ = e.mn.UnlinkPeers(p.h.ID(), q.h.ID())
			_ = e.mn.DisconnectPeers(p.h.ID(), q.h.ID())
		}
	}
}

// join adds peer i mid-run, linked and connected to every live peer.
func (e *emu) join(i int) error {
	if i >= len(e.model.peers) {
		return fmt.Errorf("sim: emu: join of peer %d beyond the plan", i)
	}
	if err := e.addPeer(e.ctx, i); err != nil {
		return err
	}
	for _, q := range e.peers[:i] {
		if q.alive.Load() && e.side[q.idx] == e.side[i] {
			if err := e.link(q.idx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition cuts a fraction of the live non-submitting peers off from
// the rest: links across are removed and connections closed.
func (e *emu) partition(k int, rng *rand.Rand) {
	minority := e.victims(0, e.sc.Partitions[k].Fraction, rng)
	e.mu.Lock()
	for _, p := range minority {
		e.side[p.idx] = 1
	}
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, p := range minority {
		for _, q := range peers {
			if e.side[q.idx] == 0 {
				_ = e.mn.UnlinkPeers(p.h.ID(), q.h.ID())
				_ = e.mn.DisconnectPeers(p.h.ID(), q.h.ID())
			}
		}
	}
}

// heal links the two sides again and reconnects the live peers.
func (e *emu) heal() {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, p := range peers {
		if e.side[p.idx] != 1 {
			continue
		}
		for _, q := range peers {
			if e.side[q.idx] == 0 && p.alive.Load() && q.alive.Load() {
				if err := e.link(p.idx, q.idx); err != nil {
					e.log.Warn("emu: heal", "err", err)
				}
			}
		}
	}
	e.mu.Lock()
	for i := range e.side {
		e.side[i] = 0
	}
	e.mu.Unlock()
}

// sampler records a time series row every period.
func (e *emu) sampler(every time.Duration, stop <-chan struct{}) {
	e.sample(0)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.sample(time.Since(e.t0))
			if e.opts.Progress != nil {
				e.opts.Progress(time.Since(e.t0), int(e.resolved.Load()), e.model.topTasks)
			}
		}
	}
}

func (e *emu) sample(at time.Duration) {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	row := sampleRow{t: int64(at), completed: e.completed.Load()}
	keep := len(e.model.peers) <= maxQueuePeers
	var per []int32
	if keep {
		per = make([]int32, len(e.model.peers))
	}
	qs := make([]int, 0, len(peers))
	for _, p := range peers {
		c := p.last
		if p.alive.Load() {
			st := p.n.Stats()
			row.live++
			row.running += st.Sched.Running
			row.queued += st.Sched.Queued
			qs = append(qs, st.Sched.Queued)
			if keep {
				per[p.idx] = int32(st.Sched.Queued)
			}
			c = p.count()
		}
		row.msgs += c.sub(p.base).msgs
	}
	if len(qs) > 0 {
		slices.Sort(qs)
		row.queueMax = qs[len(qs)-1]
		row.queueP50 = qs[len(qs)/2]
		row.queueP95 = qs[min(len(qs)-1, len(qs)*95/100)]
	}
	e.mu.Lock()
	e.series = append(e.series, row)
	if keep {
		e.queues = append(e.queues, per)
	}
	e.mu.Unlock()
}

// result fills a Result with what the emulation measured.
func (e *emu) result() *EmuResult {
	m := e.model
	r := &Result{
		Scenario: e.sc.Name, Seed: e.sc.Seed, Workload: e.sc.Workload.Kind, Peers: e.sc.Peers, Slots: m.totalSlots,
		BeaconScope: "all", Tasks: m.topTasks, TasksRun: int(e.completed.Load()),
		Shards: m.shards, ProbeBatch: e.sc.ProbeBatch, MaxRetries: e.sc.MaxRetries,
		series: e.series, queues: e.queues, sampleEvery: int64(time.Second),
	}
	if m.shards > 1 {
		r.BeaconScope = strconv.Itoa(m.shards) + " shards"
	}
	if len(e.series) > 1 {
		r.sampleEvery = e.series[1].t - e.series[0].t
	}
	var makespan, work int64
	for i := range m.tasks {
		t := &m.tasks[i]
		et := &e.tasks[i]
		switch {
		case et.failed.Load():
			r.FailedOwner++
		case et.done.Load() > 0:
			work += t.dur
			makespan = max(makespan, et.done.Load())
			// the DES criticalPath reads doneAt and state
			t.state, t.doneAt = tDone, m.t0+et.done.Load()
		default:
			r.Lost++
		}
	}
	r.Makespan = time.Duration(makespan)
	r.IdealWork = time.Duration(work / int64(max(m.totalSlots, 1)))
	r.CriticalPath = time.Duration(m.criticalPath())
	r.Ideal = max(r.IdealWork, r.CriticalPath)
	if r.Ideal > 0 {
		r.Ratio = float64(r.Makespan) / float64(r.Ideal)
	}
	slices.Sort(e.latency)
	slices.Sort(e.schedDelay)
	if work > 0 && e.sc.Workload.Kind == "bag" {
		var lat float64
		for _, l := range e.latency {
			lat += float64(l)
		}
		r.Stretch = lat / float64(work)
	}
	if makespan > 0 {
		r.Throughput = float64(r.TasksRun) / (float64(makespan) / 1e9)
	}
	r.latencies = e.latency
	r.LatencyP50, r.LatencyP95, r.LatencyP99 = time.Duration(pct(e.latency, .5)), time.Duration(pct(e.latency, .95)), time.Duration(pct(e.latency, .99))
	r.DelayP50, r.DelayP95, r.DelayP99 = time.Duration(pct(e.schedDelay, .5)), time.Duration(pct(e.schedDelay, .95)), time.Duration(pct(e.schedDelay, .99))
	res := &EmuResult{Result: r, Nondeterministic: EmuNondeterminism}
	var maxBusy, sumBusy int64
	for _, p := range e.peers {
		c := p.last.sub(p.base)
		res.ProtocolMsgs += c.msgs
		res.ProtocolBytes += c.bytes
		res.DHTRecords += c.records
		res.DHTLookups += c.lookups
		busy := p.busy.Load()
		r.peerRows = append(r.peerRows, peerRow{name: peerName(int32(p.idx)), slots: p.slots, busy: busy, ran: p.ran.Load(), alive: p.alive.Load()})
		if p.idx < e.sc.Peers {
			maxBusy = max(maxBusy, busy)
			sumBusy += busy
		}
		if !p.alive.Load() {
			r.Crashed++ // left and crashed alike: both stop the node
		}
	}
	if sumBusy > 0 {
		r.Imbalance = float64(maxBusy) / (float64(sumBusy) / float64(e.sc.Peers))
	}
	r.Joined = len(e.peers) - e.sc.Peers
	r.Partitions = len(e.sc.Partitions)
	r.Messages = res.ProtocolMsgs + res.DHTRecords
	r.Bytes = int64(res.ProtocolBytes)
	r.Lookups = res.DHTLookups
	r.ByKind = []KindCount{
		{Kind: "node (session+gossip)", Messages: res.ProtocolMsgs, Bytes: int64(res.ProtocolBytes)},
		{Kind: "dht-record", Messages: res.DHTRecords},
	}
	if r.TasksRun > 0 {
		r.MsgsPerTask = float64(r.Messages) / float64(r.TasksRun)
		r.BytesPerTask = float64(r.Bytes) / float64(r.TasksRun)
	}
	return res
}

// ProtocolMsgsPerTask is the node's session and gossip messages per
// finished task: the figure the calibration compares with the DES's
// messages other than DHT lookups, records and retransmissions.
func (r *EmuResult) ProtocolMsgsPerTask() float64 {
	if r.TasksRun == 0 {
		return 0
	}
	return float64(r.ProtocolMsgs) / float64(r.TasksRun)
}

// ProtocolMsgsPerTask is the DES's count of what the node's session and
// gossip protocols send (everything but DHT lookups, provider records and
// retransmissions) per finished task: the figure comparable with
// EmuResult.ProtocolMsgsPerTask.
func (r *Result) ProtocolMsgsPerTask() float64 {
	if r.TasksRun == 0 {
		return 0
	}
	var n uint64
	for _, k := range r.ByKind {
		switch k.Kind {
		case "dht-lookup", "dht-record", "retransmit":
		default:
			n += k.Messages
		}
	}
	return float64(n) / float64(r.TasksRun)
}

// WriteSummary writes the summary table of an emulation: the DES rows
// that emu measures, "n/a (emu)" for those it cannot (DHT hops, tasks
// re-run, outputs rebuilt), and what was nondeterministic.
func (r *EmuResult) WriteSummary(w io.Writer) error {
	var b []byte
	row := func(k, v string) { b = fmt.Appendf(b, "%-28s %s\n", k, v) }
	row("mode", fmt.Sprintf("emu: %d real nodes over mocknet, %s wall", r.Peers, r.Wall.Round(time.Millisecond)))
	row("scenario", fmt.Sprintf("%s (seed %d, %s)", r.Scenario, r.Seed, r.Workload))
	row("peers / slots", fmt.Sprintf("%d / %d (beacon scope %s)", r.Peers, r.Slots, r.BeaconScope))
	row("tasks", fmt.Sprintf("%d top-level, %d finished in all", r.Tasks, r.TasksRun))
	row("makespan", fmt.Sprintf("%s (%.3fx ideal)", ms(r.Makespan), r.Ratio))
	r.timingRows(row)
	row("messages per task", fmt.Sprintf("%.2f (%d in all: %d node session+gossip as received, %d DHT records)",
		r.MsgsPerTask, r.Messages, r.ProtocolMsgs, r.DHTRecords))
	row("bytes per task", fmt.Sprintf("%.0f (%d in all, node payloads)", r.BytesPerTask, r.Bytes))
	row("messages by kind", "n/a (emu): the node counts all its frames and gossip together")
	row("DHT lookup hops p50/p99", fmt.Sprintf("n/a (emu) (%d announcer lookups)", r.Lookups))
	row("load imbalance (max/mean)", fmt.Sprintf("%.3f", r.Imbalance))
	row("tasks re-run", "n/a (emu)")
	row("tasks failed", fmt.Sprintf("%d (owner died or failed)", r.FailedOwner))
	row("tasks lost", strconv.Itoa(r.Lost))
	if r.Crashed+r.Joined+r.Partitions > 0 {
		row("churn", fmt.Sprintf("%d crashed or left, %d joined, %d partitions", r.Crashed, r.Joined, r.Partitions))
	}
	row("nondeterministic", r.Nondeterministic)
	_, err := w.Write(b)
	if err != nil {
		return fmt.Errorf("sim: write summary: %w", err)
	}
	return nil
}
