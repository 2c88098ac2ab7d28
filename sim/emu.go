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

// The emulation mode (RunEmu): its options and result, and the set-up of
// the real nodes: per peer a node.Node on a p2p.Host over a mocknet host,
// links with the model's latencies and bandwidth, the warm-up until every
// peer hears the beacons it should, and the shutdown. The workload is
// driven in emu_workload.go, churn and partitions in emu_churn.go, and
// what a run measured is reported in emu_report.go.

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
