package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// TaskID names a task. The node uses the task CID's binary form; the
// scheduler only compares IDs.
type TaskID string

// ObjectID names an object (a task output or a put value).
type ObjectID string

// PeerID names a peer. The node uses the libp2p peer ID's string form.
type PeerID string

// Config configures a Scheduler. A Config handed to New is not changed
// afterwards.
type Config struct {
	// Slots is the number of tasks that may run at once on this peer.
	Slots int
	// Self is this peer's ID (placement hints naming it run here).
	Self PeerID
	// Funcs identifies this peer's function table (a hash of it): only
	// peers that beacon the same value are chosen for unpinned tasks.
	Funcs uint64
	// Rand drives power-of-two choices. Seed it for reproducible runs; nil
	// means a fixed seed.
	Rand *rand.Rand
	// OfferAfter is how many ticks a task may wait in the queue, with no
	// peer known to have room, before it is offered on the gossip topic.
	OfferAfter int
	// BeaconTTL is how many ticks a peer's load beacon stays valid.
	BeaconTTL int
	// NestedWait is how many ticks a nested task (submitted by a running
	// task) waits for a local slot before it may go to another peer:
	// fine-grained nested work is cheaper here than a network hop away.
	NestedWait int
	// ProbeBatch bounds the probes in flight: when queued work finds no
	// known peer with room, the scheduler asks (Probe actions) for random
	// peers it does not know to report their load (ProbeReply), up to
	// this many at once. A reply frees its probe for another, but replies
	// that found no room free at most 64 batches a tick, so a saturated
	// swarm costs at most 65 x ProbeBatch probes a tick; a tick ends the
	// probes still unanswered. 0: no probes — a peer places work only on
	// the peers whose beacons it hears.
	ProbeBatch int
}

// DefaultConfig returns a Config with one slot; callers normally set Slots
// to the number of CPUs.
func DefaultConfig() Config { return Config{Slots: 1, OfferAfter: 1, BeaconTTL: 10, NestedWait: 1} }

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Slots < 1 {
		return fmt.Errorf("sched: Slots is %d: must be at least 1", c.Slots)
	}
	if c.OfferAfter < 0 {
		return fmt.Errorf("sched: OfferAfter is %d: must not be negative", c.OfferAfter)
	}
	if c.BeaconTTL < 0 {
		return fmt.Errorf("sched: BeaconTTL is %d: must not be negative", c.BeaconTTL)
	}
	if c.NestedWait < 0 {
		return fmt.Errorf("sched: NestedWait is %d: must not be negative", c.NestedWait)
	}
	if c.ProbeBatch < 0 {
		return fmt.Errorf("sched: ProbeBatch is %d: must not be negative", c.ProbeBatch)
	}
	return nil
}

// EventKind says what happened.
type EventKind uint8

// The events a Scheduler understands.
const (
	// Submit: Task was submitted. Deps lists the objects it still waits for
	// (the caller leaves out those already ready). Nested marks a task
	// submitted by a running task: it goes to the front of the queue, so
	// nested work runs depth-first and the number of live blocked parents
	// stays proportional to the nesting depth, not to the total work.
	Submit EventKind = iota + 1
	// ObjectReady: Object now exists; tasks waiting only on it become ready.
	ObjectReady
	// ObjectFailed: Object will never exist; every task waiting on it fails.
	ObjectFailed
	// Done: Task finished (success or failure) and gave back its slot.
	Done
	// Blocked: running Task is waiting for an object and gives back its slot.
	Blocked
	// Unblocked: blocked Task resumes and takes a slot again.
	Unblocked
	// PeerLoad: Peer's load beacon was heard (Load).
	PeerLoad
	// PeerGone: Peer left or is unreachable; tasks forwarded to it go back
	// to the queue.
	PeerGone
	// Tick: one unit of time passed (offers and beacon expiry use it).
	Tick
	// Claim: Peer, idle, claims offered Task; the first claim of a queued
	// task wins and the task is forwarded to it.
	Claim
	// Refused: Peer refused forwarded Task (full, or leaving); the task goes
	// back to the front of the queue and Peer is not chosen again until its
	// next beacon.
	Refused
	// ProbeReply: Peer answered a probe with its Load: as PeerLoad, and the
	// probe is no longer in flight.
	ProbeReply
)

var kindNames = [...]string{"?", "submit", "object-ready", "object-failed", "done", "blocked", "unblocked",
	"peer-load", "peer-gone", "tick", "claim", "refused", "probe-reply"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one input to Step. Which fields matter depends on Kind.
type Event struct {
	Kind   EventKind
	Task   TaskID
	Deps   []ObjectID // Submit only
	Nested bool       // Submit only
	// On pins a submitted task to a peer (Self or another); empty lets
	// the scheduler place it.
	On PeerID
	// Here marks a task another peer handed to us: it runs here or not
	// at all (it is never forwarded again).
	Here bool
	// Inputs lists the submitted task's inputs that exist already, with
	// their sizes and holders, for locality.
	Inputs []Input
	Object ObjectID // ObjectReady, ObjectFailed
	// Holder and Size say where an object made ready now is (ObjectReady).
	Holder PeerID
	Size   int64
	Peer   PeerID // PeerLoad, PeerGone, Claim, Refused
	Load   Load   // PeerLoad
}

// Input is an existing input of a task: how big it is and who holds it.
type Input struct {
	Object  ObjectID
	Size    int64
	Holders []PeerID
}

// Load is what a peer's beacon says about it.
type Load struct {
	Slots int    // worker slots
	Free  int    // slots free
	Queue int    // tasks queued
	Funcs uint64 // function-table hash
}

// ActionKind says what the caller must do.
type ActionKind uint8

const (
	// Run: start Task now on this peer; it holds a slot until Done or Blocked.
	Run ActionKind = iota + 1
	// Fail: Task cannot run because its dependency Object failed; the caller
	// fails the task's outputs. The task holds no slot and is forgotten.
	Fail
	// Forward: hand Task to Peer over a direct stream; the caller reports
	// Done when the peer completes it, Refused if the peer refuses it, or
	// PeerGone if the peer is lost.
	Forward
	// Offer: announce Task on the gossip topic; idle peers may Claim it.
	Offer
	// Probe: ask Count random peers this scheduler does not know for their
	// load; step each answer as ProbeReply.
	Probe
)

func (k ActionKind) String() string {
	switch k {
	case Run:
		return "run"
	case Fail:
		return "fail"
	case Forward:
		return "forward"
	case Offer:
		return "offer"
	case Probe:
		return "probe"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one output of the scheduler.
type Action struct {
	Kind   ActionKind
	Task   TaskID
	Object ObjectID // Fail: the dependency that failed
	Peer   PeerID   // Forward: where to
	Count  int      // Probe: how many peers to ask
}

// Errors returned by Step for events that contradict the scheduler's state;
// they point at a bug in the caller, and the state is left unchanged.
var (
	ErrDuplicate = errors.New("sched: task already submitted")
	ErrUnknown   = errors.New("sched: unknown task")
	ErrState     = errors.New("sched: event does not fit the task's state")
	ErrEvent     = errors.New("sched: malformed event")
)

type state uint8

const (
	waiting   state = iota + 1 // waiting for dependencies
	queued                     // ready, waiting for a slot
	running                    // holding a slot
	blocked                    // running but gave its slot back
	forwarded                  // handed to another peer, awaiting Done
)

type task struct {
	id       TaskID
	state    state
	pending  int  // dependencies not yet ready
	nested   bool // submitted by a running task: runs first
	retry    bool // came back from a peer: goes to the front
	here     bool // must run on this peer
	on       PeerID
	inputs   []Input
	queuedAt int64  // tick it joined the queue
	offered  bool   // announced on the gossip topic
	peer     PeerID // forwarded: where
}

// Stats is a snapshot of the scheduler's queues.
type Stats struct {
	Slots     int // configured slots
	Running   int // tasks holding a slot (may exceed Slots after unblocks)
	Blocked   int // running tasks that gave their slot back
	Queued    int // ready tasks waiting for a slot
	Waiting   int // tasks waiting for dependencies
	Forwarded int // tasks handed to other peers, not yet done
	Peers     int // peers with a live beacon
	Finished  uint64
}

// Scheduler is the state machine. It is not safe for concurrent use: the
// caller serialises Step and Actions.
type Scheduler struct {
	cfg   Config
	tasks map[TaskID]*task
	// waiters lists the tasks waiting for each object. An entry is live
	// only while it is the very task in tasks: a task failed through one
	// dependency leaves entries on its others, which are skipped, even if
	// a task with the same ID is submitted again.
	waiters  map[ObjectID][]*task
	queue    fifo // ready tasks that may run here or elsewhere
	local    fifo // ready tasks that must run here
	peers    map[PeerID]*peer
	roomy    []*peer // peers with room and our functions, by ID (see fix)
	probing  int     // probes in flight (see Config.ProbeBatch)
	wasted   int     // probes freed this tick by replies without room
	rand     *rand.Rand
	now      int64 // ticks
	forwards int   // tasks forwarded and not done
	running  int   // tasks holding a slot
	blocked  int
	waiting  int
	finished uint64
	actions  []Action
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(1, 2))
	}
	return &Scheduler{
		cfg:     cfg,
		tasks:   make(map[TaskID]*task),
		waiters: make(map[ObjectID][]*task),
		peers:   make(map[PeerID]*peer),
		rand:    r,
	}, nil
}

// Step applies one event. An error means the event contradicts the state
// (a caller bug); the state is then unchanged.
func (s *Scheduler) Step(ev Event) error {
	switch ev.Kind {
	case Submit:
		return s.submit(ev)
	case ObjectReady:
		s.objectReady(ev)
	case ObjectFailed:
		s.objectFailed(ev.Object)
	case Done:
		t, err := s.lookup(ev)
		if err != nil {
			return err
		}
		switch t.state {
		case running:
			s.running--
		case blocked:
			s.blocked--
		case forwarded:
			s.forwards--
			// The peer finished it: a place there is free again, which
			// its next beacon would say too late for short tasks.
			if p := s.peers[t.peer]; p != nil {
				p.est = min(p.est+1, 2*p.load.Slots)
				s.fix(p)
			}
		default:
			return fmt.Errorf("%w: done for %s task %x", ErrState, t.state, ev.Task)
		}
		delete(s.tasks, ev.Task)
		s.finished++
	case Blocked:
		t, err := s.lookup(ev)
		if err != nil {
			return err
		}
		if t.state != running {
			return fmt.Errorf("%w: blocked for %s task %x", ErrState, t.state, ev.Task)
		}
		t.state = blocked
		s.running--
		s.blocked++
	case Unblocked:
		t, err := s.lookup(ev)
		if err != nil {
			return err
		}
		if t.state != blocked {
			return fmt.Errorf("%w: unblocked for %s task %x", ErrState, t.state, ev.Task)
		}
		t.state = running
		s.blocked--
		s.running++
	case PeerLoad, PeerGone, Tick, Claim, Refused, ProbeReply:
		if err := s.peerEvent(ev); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrEvent, ev.Kind)
	}
	s.fill()
	return nil
}

func (s *Scheduler) lookup(ev Event) (*task, error) {
	t, ok := s.tasks[ev.Task]
	if !ok {
		return nil, fmt.Errorf("%w: %s for task %x", ErrUnknown, ev.Kind, ev.Task)
	}
	return t, nil
}

func (s *Scheduler) submit(ev Event) error {
	if ev.Task == "" {
		return fmt.Errorf("%w: submit without a task ID", ErrEvent)
	}
	if _, ok := s.tasks[ev.Task]; ok {
		return fmt.Errorf("%w: %x", ErrDuplicate, ev.Task)
	}
	t := &task{id: ev.Task, pending: len(ev.Deps), nested: ev.Nested, here: ev.Here || ev.On == s.cfg.Self && ev.On != "", on: ev.On, inputs: ev.Inputs}
	if t.here {
		t.on = ""
	}
	s.tasks[ev.Task] = t
	if t.pending == 0 {
		s.enqueue(t)
		s.fill()
		return nil
	}
	t.state = waiting
	s.waiting++
	for _, o := range ev.Deps {
		s.waiters[o] = append(s.waiters[o], t)
	}
	return nil
}

// live reports whether t is still the task the scheduler knows by its ID.
func (s *Scheduler) live(t *task) bool { return s.tasks[t.id] == t }

// enqueue makes t ready: nested tasks go first (depth-first), others last.
// A task pinned to another peer is forwarded at once.
func (s *Scheduler) enqueue(t *task) {
	if t.on != "" {
		s.forward(t, t.on)
		return
	}
	t.state = queued
	t.queuedAt = s.now
	q := &s.queue
	if t.here {
		q = &s.local
	}
	if t.nested || t.retry {
		q.pushFront(t.id)
	} else {
		q.push(t.id)
	}
}

// forward hands t to p.
func (s *Scheduler) forward(t *task, p PeerID) {
	t.state = forwarded
	t.peer = p
	s.forwards++
	if pe := s.peers[p]; pe != nil && pe.est > 0 {
		pe.est--
		s.fix(pe)
	}
	s.actions = append(s.actions, Action{Kind: Forward, Task: t.id, Peer: p})
}

func (s *Scheduler) objectReady(ev Event) {
	o := ev.Object
	ws, ok := s.waiters[o]
	if !ok {
		return
	}
	delete(s.waiters, o)
	for _, t := range ws {
		if !s.live(t) || t.state != waiting {
			continue // failed meanwhile through another dependency
		}
		if ev.Holder != "" {
			t.inputs = append(t.inputs, Input{Object: o, Size: ev.Size, Holders: []PeerID{ev.Holder}})
		}
		t.pending--
		if t.pending == 0 {
			s.waiting--
			s.enqueue(t)
		}
	}
}

func (s *Scheduler) objectFailed(o ObjectID) {
	ws, ok := s.waiters[o]
	if !ok {
		return
	}
	delete(s.waiters, o)
	for _, t := range ws {
		if !s.live(t) || t.state != waiting {
			continue
		}
		// The task's other waiter entries stay behind and are skipped when
		// their objects resolve, since the task is gone by then.
		delete(s.tasks, t.id)
		s.waiting--
		s.finished++
		s.actions = append(s.actions, Action{Kind: Fail, Task: t.id, Object: o})
	}
}

// fill starts queued tasks while local slots are free (tasks that must run
// here first), then places the rest on peers with room, by power-of-two
// choices, until no peer has any.
func (s *Scheduler) fill() {
	for s.running < s.cfg.Slots {
		t := s.next(&s.local)
		if t == nil {
			if t = s.next(&s.queue); t == nil {
				break
			}
		}
		t.state = running
		s.running++
		s.actions = append(s.actions, Action{Kind: Run, Task: t.id})
	}
	for s.queue.len() > 0 {
		t := s.peek(&s.queue)
		if t == nil {
			return
		}
		if t.nested && s.now-t.queuedAt < int64(s.cfg.NestedWait) {
			return // nested work waits a while for a slot here first
		}
		p := s.choose(t)
		if p == "" {
			s.probe()
			return
		}
		if q := s.peers[p]; q != nil && q.est <= q.load.Slots-q.load.Queue {
			// Only queue room left on the peer chosen: the task waits in
			// that queue, so look for idle peers for what follows.
			s.probeSpread()
		}
		s.queue.pop()
		s.forward(t, p)
	}
}

// probe asks for more peers when queued work has nowhere to go: no more
// probes in flight than tasks wait, nor than ProbeBatch.
func (s *Scheduler) probe() {
	n := min(s.cfg.ProbeBatch, s.queue.len()) - s.probing
	if n <= 0 {
		return
	}
	s.probing += n
	s.actions = append(s.actions, Action{Kind: Probe, Count: n})
}

// spreadProbes is how many probes a task placed in a peer's queue (no
// free slot known anywhere) asks for, within ProbeBatch. Without them a
// submitter that hears only its shards fills the queues of the peers it
// knows before it looks further, since its own queue stays empty: 1,000
// peers, one submitter at 80% load, shards of 64: latency stretch 1.89 ->
// 1.12, scheduling delay p50 82 ms -> 0.3 ms (docs/scale.md).
const spreadProbes = 2

// probeSpread asks for spreadProbes more probes, within ProbeBatch.
func (s *Scheduler) probeSpread() {
	if n := min(s.cfg.ProbeBatch-s.probing, spreadProbes); n > 0 {
		s.probing += n
		s.actions = append(s.actions, Action{Kind: Probe, Count: n})
	}
}

// next pops the first task of q still queued (claimed or failed tasks
// leave stale entries behind).
func (s *Scheduler) next(q *fifo) *task {
	for {
		t := s.peek(q)
		if t == nil {
			return nil
		}
		q.pop()
		return t
	}
}

// peek returns the first task of q still queued, dropping stale entries.
func (s *Scheduler) peek(q *fifo) *task {
	for {
		id, ok := q.front()
		if !ok {
			return nil
		}
		if t := s.tasks[id]; t != nil && t.state == queued {
			return t
		}
		q.pop()
	}
}

// TakeActions appends the actions produced since the last call to dst,
// forgets them, and returns the extended slice. Callers that step the
// scheduler again while handling the actions pass a buffer of their own,
// so nothing they are still reading is overwritten.
func (s *Scheduler) TakeActions(dst []Action) []Action {
	dst = append(dst, s.actions...)
	s.actions = s.actions[:0]
	return dst
}

// HasActions reports whether actions are pending.
func (s *Scheduler) HasActions() bool { return len(s.actions) > 0 }

// Stats returns a snapshot of the queues.
func (s *Scheduler) Stats() Stats {
	return Stats{
		Slots:     s.cfg.Slots,
		Running:   s.running,
		Blocked:   s.blocked,
		Queued:    s.queue.len() + s.local.len(),
		Forwarded: s.forwards,
		Peers:     len(s.peers),
		Waiting:   s.waiting,
		Finished:  s.finished,
	}
}

func (st state) String() string {
	switch st {
	case waiting:
		return "waiting"
	case queued:
		return "queued"
	case running:
		return "running"
	case blocked:
		return "blocked"
	case forwarded:
		return "forwarded"
	}
	return "?"
}

// fifo is a queue of task IDs on a ring buffer that grows as needed, so
// steady-state pushes and pops do not allocate.
type fifo struct {
	buf        []TaskID
	head, size int
}

func (q *fifo) len() int { return q.size }

func (q *fifo) push(id TaskID) {
	if q.size == len(q.buf) {
		n := 2 * len(q.buf)
		if n == 0 {
			n = 64
		}
		buf := make([]TaskID, n)
		k := copy(buf, q.buf[q.head:])
		copy(buf[k:], q.buf[:q.head])
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = id
	q.size++
}

// each calls f on the queued IDs from the head until f returns false.
func (q *fifo) each(f func(TaskID) bool) {
	for i := range q.size {
		if !f(q.buf[(q.head+i)%len(q.buf)]) {
			return
		}
	}
}

// front returns the head of the queue without removing it.
func (q *fifo) front() (TaskID, bool) {
	if q.size == 0 {
		return "", false
	}
	return q.buf[q.head], true
}

// pushFront puts id at the head of the queue.
func (q *fifo) pushFront(id TaskID) {
	q.push(id) // grows the buffer if needed
	q.size--
	q.buf[(q.head+q.size)%len(q.buf)] = ""
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = id
	q.size++
}

func (q *fifo) pop() (TaskID, bool) {
	if q.size == 0 {
		return "", false
	}
	id := q.buf[q.head]
	q.buf[q.head] = ""
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return id, true
}

// SetProbeBatch changes Config.ProbeBatch (n >= 0), as a node does when
// the number of shards it is on changes (see ProbeBatchFor). Probes in
// flight stay counted.
func (s *Scheduler) SetProbeBatch(n int) {
	s.cfg.ProbeBatch = max(n, 0)
}

// Knows reports whether the scheduler has heard p's load (a beacon or a
// probe reply) and not forgotten it since: a peer worth probing is one it
// does not know.
func (s *Scheduler) Knows(p PeerID) bool { return s.peers[p] != nil }
