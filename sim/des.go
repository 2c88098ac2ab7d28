package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/dray-project/dray/sched"
)

// Event kinds of the engine.
const (
	evSubmit      uint8 = iota + 1 // next top-level submissions are due
	evTick                         // p's scheduler tick (every second)
	evBeacon                       // p checks whether to publish a load beacon
	evFlush                        // p takes the beacons that arrived
	evHandoff                      // a hand-off of task t from q arrives at p
	evRefused                      // p (owner) hears q refused t
	evStart                        // t's inputs are at p: the work starts
	evFetchRetry                   // p retries fetching t's inputs
	evSpawn                        // fib t at p reaches its nested calls
	evResume                       // fib t at p: its children are done
	evRunEnd                       // t's work on p is done
	evCompletion                   // q's completion of t arrives at owner p
	evOffer                        // an offer of t by q arrives at p
	evClaim                        // q's claim of t arrives at owner p
	evGone                         // p notices that q is gone
	evCrash                        // p crashes
	evLeave                        // p starts leaving
	evJoin                         // p joins
	evPartition                    // partition k starts
	evHeal                         // partition k heals
	evSample                       // time series sample
	evChurn                        // t: churn action on q random peers
	evProbe                        // q's probe arrives at p
	evProbeReply                   // q's answer to p's probe arrives (load in s.probeLoads[t])
	evFailure                      // q's report that t failed arrives at owner p
	evChildFailed                  // a nested call of fib t at p failed: t fails
	evArgLost                      // q's hand-back of t (an input it could not fetch) arrives at owner p
	evFetched                      // owner p has fetched input t
	evRelease                      // owner q's release of t's lent output arrives at holder p
	evTake                         // leaving holder q's request to take t's lent output arrives at owner p
)

// event is one entry of the queue; (at, seq) orders it.
type event struct {
	at    int64
	seq   uint64
	kind  uint8
	epoch uint16
	p, q  int32
	t     int32
}

// eventHeap is a binary min-heap of events by (at, seq).
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// Options tune a run without changing its result.
type Options struct {
	// Progress, if set, is called about every 100 ms of wall time with the
	// virtual time and the top-level tasks resolved out of all.
	Progress func(virtual time.Duration, resolved, total int)
}

// The node's timings, in virtual nanoseconds, from their one source.
const (
	beaconEvery = int64(sched.BeaconEvery)
	beaconIdle  = int64(sched.BeaconIdle)
	tickEvery   = int64(sched.TickEvery)
	ackDelay    = int64(sched.AckDelay)
	inlineMax   = sched.InlineMax
	announceAge = int64(sched.AnnounceAge)
	stallLimit  = int64(10 * time.Minute) // no progress this long (plus 4 task lengths): stop
)

// Sim is one discrete-event simulation of a scenario. Create it with New
// and run it once with Run.
type Sim struct {
	sc   Scenario
	opts Options
	now  int64
	seq  uint64
	q    eventHeap
	rng  *rand.Rand // workload
	crng *rand.Rand // churn, partitions, neighbourhoods
	prng *rand.Rand // probe targets
	// probeLoads holds the loads probe answers carry, by event t; freed
	// slots are reused.
	probeLoads []sched.Load
	probeFree  []int32
	net        *network
	kad        *kad

	peers      []*vpeer
	live       int // peers alive
	totalSlots int // slots of the initial peers
	tasks      []taskRec
	deps       []int32
	subs       []int32 // top-level tasks by submission time
	subNext    int
	topTasks   int
	resolved   int // top-level tasks done or failed
	lastChange int64

	// Load shards (0 with a beacon scope): every peer's beacons and
	// offers go to the listeners of its home shard, and each shard's
	// beacons to a log its listeners read (see flush).
	shards    int
	listeners [][]int32   // by shard: the peers that hear it, by index
	logs      []beaconLog // by shard
	lowScr    []int       // trimLogs scratch
	nextTrim  int64
	queued    []int32 // peers whose schedulers have queued tasks
	qpos      []int32 // position in queued, -1 if absent
	gossip    int64   // gossip delivery delay (shards)

	partition int // active partition index+1, 0: none
	side      []uint8

	plan []plannedChurn
	t0   int64 // end of the warm-up: the workload starts
	ran  bool
	// stall is how long the run may go without a task finishing.
	stall  int64
	maxDur int64
	m      metrics
	// argLost holds, by task, the input an executor handed it back for
	// (see handBackArg).
	argLost map[int32]int32
	// scratch
	bscratch []beaconMsg
}

// New prepares a simulation of sc (validated first).
func New(sc Scenario, opts Options) (*Sim, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{sc: sc, opts: opts, rng: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0xd1e5)), t0: int64(sc.Warmup)}
	// One PCG stream per concern, all from the seed, so that churn does
	// not change the workload or the network (the baseline of a disturbed
	// run is the same run without the disturbances).
	s.crng = rand.New(rand.NewPCG(mix(sc.Seed^0xc4a2), sc.Seed))
	s.prng = rand.New(rand.NewPCG(mix(sc.Seed^0x9b0e), sc.Seed))
	s.net = newNetwork(sc.Network, sc.Seed, rand.New(rand.NewPCG(mix(sc.Seed^0x4e7), sc.Seed)))
	joins, err := s.planChurn()
	if err != nil {
		return nil, err
	}
	total := sc.Peers + joins
	names := make([]string, total)
	for i := range total {
		names[i] = peerName(int32(i))
	}
	s.side = make([]uint8, total)
	s.qpos = make([]int32, total)
	for i := range total {
		s.net.addPeer(i)
		s.qpos[i] = -1
		p := &vpeer{idx: int32(i), name: sched.PeerID(names[i]), slots: sc.slotsOf(i%sc.Peers, sc.Peers)}
		// The node's configuration (sched.SwarmConfig), the scenario's
		// probes and retries, and draws of each peer's own from the
		// run's seed (a node's come from a random seed and its peer ID).
		cfg := sched.SwarmConfig(p.slots, p.name)
		cfg.Funcs = 1
		cfg.Rand = peerRand(sc.Seed, i)
		cfg.ProbeBatch = sc.ProbeBatch
		if k := sc.shardCount(); k > 0 {
			cfg.ProbeBatch = sched.ProbeBatchFor(k, sc.ProbeBatch) // as the node
		}
		cfg.MaxRetries = sc.MaxRetries
		if sc.MaxRetries < 0 {
			cfg.MaxRetries = math.MaxInt32 // no limit
		}
		if schedHook != nil {
			schedHook(&cfg)
		}
		sch, err := sched.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("sim: peer %d: %w", i, err)
		}
		p.s = sch
		p.phase = int64(mix(sc.Seed^uint64(i)<<1) % uint64(tickEvery))
		p.bphase = p.phase % beaconEvery
		s.peers = append(s.peers, p)
		if i < sc.Peers {
			s.totalSlots += p.slots
		}
	}
	s.kad = newKad(names, sc.Seed)
	s.gossip = s.net.meanLatency(sc.Peers)
	s.buildShards()
	s.genWorkload()
	return s, nil
}

// peerRand is virtual peer i's placement draws in a run seeded with seed.
func peerRand(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(mix(seed^uint64(i)), uint64(i)))
}

// schedHook, when set (by tests), may change each virtual peer's scheduler
// configuration: to record its steps (sched.Config.Trace), say.
var schedHook func(*sched.Config)

func peerName(i int32) string { return "p" + strconv.FormatInt(int64(i), 36) }

// at schedules an event. A time before now can only be an overflow of
// absurd durations: it saturates, beyond any MaxTime.
func (s *Sim) at(t int64, e event) {
	if t < s.now {
		t = math.MaxInt64
	}
	e.at = t
	s.seq++
	e.seq = s.seq
	s.q.push(e)
}

// Run runs the simulation to the end (every top-level task resolved, a
// stall, MaxTime, or ctx cancelled) and returns its result.
func (s *Sim) Run(ctx context.Context) (*Result, error) {
	if s.ran {
		return nil, errors.New("sim: Run called twice: create a new Sim with New")
	}
	s.ran = true
	s.stall = stallLimit + 4*min(s.maxDur, math.MaxInt64/8)
	s.buildNeighbours()
	for i := range s.sc.Peers {
		s.startPeer(s.peers[i])
	}
	s.scheduleChurn()
	for k, p := range s.sc.Partitions {
		s.at(s.t0+int64(p.At), event{kind: evPartition, t: int32(k)})
		s.at(s.t0+int64(p.Heal), event{kind: evHeal, t: int32(k)})
	}
	every := int64(s.sc.SampleEvery)
	if every <= 0 {
		every = s.estimateSample()
	}
	s.m.sampleEvery = every
	// The first sample (which zeroes the warm-up's counters) goes before
	// the first submission.
	s.at(s.t0, event{kind: evSample})
	if len(s.subs) > 0 {
		s.at(s.tasks[s.subs[0]].submitAt, event{kind: evSubmit})
	}
	maxT := int64(s.sc.MaxTime)
	if maxT <= 0 {
		maxT = int64(24 * time.Hour)
	}
	wallStart := time.Now()
	lastProgress := wallStart
	var n uint64
	stalled := false
	for s.resolved < s.topTasks && len(s.q) > 0 {
		e := s.q.pop()
		s.now = e.at
		if s.now > maxT {
			break
		}
		if s.now-s.lastChange > s.stall {
			stalled = true
			break
		}
		s.dispatch(e)
		n++
		if n&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sim: run stopped at %s virtual: %w", time.Duration(s.now), err)
			}
			if s.opts.Progress != nil && time.Since(lastProgress) > 100*time.Millisecond {
				lastProgress = time.Now()
				s.opts.Progress(time.Duration(s.now), s.resolved, s.topTasks)
			}
		}
	}
	s.m.events = n
	s.sample() // the last row
	if s.opts.Progress != nil {
		s.opts.Progress(time.Duration(s.now), s.resolved, s.topTasks)
	}
	return s.result(stalled), nil
}

// workPerSlot returns the task list's total work over the slots, and when
// the last top-level task is submitted (ns after the start): the two
// bounds of a run's length.
func (s *Sim) workPerSlot() (perSlot, lastSubmit int64) {
	var work float64
	for i := range s.tasks {
		work += float64(s.tasks[i].dur)
	}
	if len(s.subs) > 0 {
		lastSubmit = s.tasks[s.subs[len(s.subs)-1]].submitAt - s.t0
	}
	return int64(work / float64(max(s.totalSlots, 1))), lastSubmit
}

// estimateSample picks a sampling period for about 200 rows.
func (s *Sim) estimateSample() int64 {
	est := max(s.workPerSlot())
	if s.sc.Workload.Kind == "fib" {
		est *= 4
	}
	return max(est/200, int64(10*time.Millisecond))
}

func (s *Sim) dispatch(e event) {
	if e.kind == evSubmit {
		s.submitDue()
		return
	}
	if e.kind == evSample {
		s.sample()
		s.at(s.now+s.m.sampleEvery, event{kind: evSample})
		return
	}
	if e.kind == evPartition || e.kind == evHeal {
		s.partitionEvent(e)
		return
	}
	if e.kind == evChurn {
		s.churn(e)
		return
	}
	p := s.peers[e.p]
	if e.kind == evJoin {
		s.join(p)
		return
	}
	if !p.alive {
		return
	}
	switch e.kind {
	case evTick:
		s.tick(p)
	case evBeacon:
		s.beaconCheck(p, e.at)
	case evFlush:
		if p.flushAt == e.at {
			p.flushAt = 0
		}
		s.flush(p)
		s.after(p)
	case evHandoff:
		s.handoffArrives(p, e.q, e.t, e.epoch)
	case evRefused:
		s.refusedArrives(p, e.q, e.t, e.epoch)
	case evStart:
		s.startWork(p, e.t, e.epoch)
	case evFetchRetry:
		s.fetchInputs(p, e.t, e.epoch)
	case evSpawn:
		s.spawn(p, e.t, e.epoch)
	case evResume:
		s.resume(p, e.t, e.epoch)
	case evRunEnd:
		s.runEnd(p, e.t, e.epoch, false)
	case evCompletion:
		s.completionArrives(p, e.q, e.t, e.epoch, false)
	case evFailure:
		s.completionArrives(p, e.q, e.t, e.epoch, true)
	case evChildFailed:
		s.childFailed(p, e.t, e.epoch)
	case evArgLost:
		s.argLostArrives(p, e.q, e.t, e.epoch)
	case evFetched:
		s.fetched(p, e.t)
	case evRelease:
		s.step(p, sched.Event{Kind: sched.Released, Object: sched.ObjectID(s.tasks[e.t].id), Peer: s.peers[e.q].name})
		s.maybeDepart(p)
	case evTake:
		s.takeArrives(p, e.q, e.t)
	case evOffer:
		s.offerArrives(p, e.q, e.t)
	case evClaim:
		s.step(p, sched.Event{Kind: sched.Claim, Task: s.tasks[e.t].id, Peer: s.peers[e.q].name})
	case evGone:
		s.gone(p, e.q)
	case evCrash:
		s.crash(p)
	case evLeave:
		s.leave(p)
	case evProbe:
		s.probeArrives(p, e.q)
	case evProbeReply:
		l := s.probeLoads[e.t]
		s.probeFree = append(s.probeFree, e.t)
		s.step(p, sched.Event{Kind: sched.ProbeReply, Peer: s.peers[e.q].name, Load: l})
	}
}

// submitDue submits the top-level tasks due now and schedules the next.
func (s *Sim) submitDue() {
	for s.subNext < len(s.subs) {
		i := s.subs[s.subNext]
		t := &s.tasks[i]
		if t.submitAt > s.now {
			s.at(t.submitAt, event{kind: evSubmit})
			return
		}
		s.subNext++
		o := s.peers[t.owner]
		if !o.alive {
			s.failTask(i, failOwner)
			continue
		}
		o.unresolved++
		s.submit(o, i)
	}
}

// reachable reports whether a message from a gets to b now.
func (s *Sim) reachable(a, b int32) bool {
	return s.peers[b].alive && s.side[a] == s.side[b]
}

// send models one message from a to b: it counts it and returns its
// delivery delay, or ok false if it is lost for good (b is down, or across
// a partition that outlasts the session: DetectionDelay from now). A
// message across a partition that heals sooner arrives after the heal.
// bulk marks object bytes, which queue on a's uplink.
func (s *Sim) send(kind msgKind, a, b int32, size int64, bulk bool) (int64, bool) {
	s.m.msgs[kind]++
	s.m.bytes[kind] += size
	var held int64 // across a partition that heals before the session times out
	if !s.reachable(a, b) {
		heal := s.healAt()
		if !s.peers[b].alive || heal < 0 || heal > s.now+int64(s.sc.DetectionDelay) {
			s.m.dropped++
			return 0, false
		}
		// TCP retransmits it: it goes through once the partition heals.
		held = heal - s.now
	}
	var d int64
	var retx int
	if bulk {
		d, retx = s.net.delay(s.now, a, b, size)
	} else {
		d, retx = s.net.delay(s.now, a, b, 0)
		d = satAdd(d, ns(float64(size)/s.net.bps*1e9))
	}
	if retx > 0 {
		s.m.msgs[mRetransmit] += uint64(retx)
		s.m.bytes[mRetransmit] += int64(retx) * size
	}
	return satAdd(held, d), true
}

// healAt is when the partition now in force heals (virtual ns), or -1.
func (s *Sim) healAt() int64 {
	if s.partition == 0 {
		return -1
	}
	return s.t0 + int64(s.sc.Partitions[s.partition-1].Heal)
}
