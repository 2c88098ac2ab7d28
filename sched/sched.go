package sched

import (
	"errors"
	"fmt"
	"hash/fnv"
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
	// Funcs is the digest of this peer's function table, which its Load
	// (its beacons) carries: a peer that has not seen that table asks for
	// it (FetchFuncs) and places tasks here by it (see funcs.go).
	Funcs uint64
	// FuncWait is how many ticks a ready task whose function no known
	// peer offers waits for one to appear before it fails (FailNoPeer).
	// 0: it waits for ever.
	FuncWait int
	// Resources are this peer's named quantities beside its slots (see
	// resources.go): a task that needs some runs here only while they are
	// free.
	Resources map[string]int
	// Rand drives power-of-two choices. nil: a PCG seeded with Seed and a
	// hash of Self, so peers that share a Seed (every node of a test, every
	// virtual peer of a simulation) still draw differently — equal draws
	// on every peer herd work onto the same targets.
	Rand *rand.Rand
	// Seed seeds Rand when Rand is nil (see Rand).
	Seed uint64
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
	// MaxRetries is how many times a task this peer owns is placed again
	// after its executor is lost (PeerGone, Lost), or run again after the
	// function itself failed when the task retries such failures (Done
	// with Retryable): one budget for both. A submission may say
	// otherwise (Event.MaxRetries). Past it the task fails (FailLost).
	MaxRetries int
	// MaxQueue bounds the tasks other peers hand this peer that wait for
	// a slot here: a hand-off beyond it is refused (Refuse, RefuseFull).
	// 0: no bound.
	MaxQueue int
	// LeaseTicks is how long a peer holding tasks this peer handed it may
	// stay silent (no Heard) before it is dropped and its tasks placed
	// again (see Ping, Drop); a third of it asks for a ping. 0: no leases.
	LeaseTicks int
	// SilenceTicks is how long a peer dropped by its lease is ignored.
	SilenceTicks int
	// Trace, if set, is called at the end of every Step with the event,
	// the actions it produced (valid during the call only) and its error:
	// a recorder for replays and golden traces. It must not step the
	// scheduler.
	Trace func(ev Event, acts []Action, err error)
	// Check verifies the scheduler's invariants and panics naming the one
	// broken: for tests and simulator checks. A check walks every task,
	// so it runs after every step while at most 64 tasks are tracked, and
	// once every len(tasks) steps beyond (O(1) a step amortized).
	Check bool
}

// DefaultConfig returns a Config with one slot; callers normally set Slots
// to the number of CPUs.
func DefaultConfig() Config {
	return Config{Slots: 1, OfferAfter: 1, BeaconTTL: 10, NestedWait: 1, MaxRetries: 3}
}

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
	if c.MaxRetries < 0 {
		return fmt.Errorf("sched: MaxRetries is %d: must not be negative", c.MaxRetries)
	}
	if c.MaxQueue < 0 {
		return fmt.Errorf("sched: MaxQueue is %d: must not be negative", c.MaxQueue)
	}
	for name, n := range c.Resources {
		if name == "" || n < 0 {
			return fmt.Errorf("sched: resource %q=%d: want a name and a quantity not negative", name, n)
		}
	}
	if c.FuncWait < 0 {
		return fmt.Errorf("sched: FuncWait is %d: must not be negative", c.FuncWait)
	}
	if c.LeaseTicks < 0 || c.SilenceTicks < 0 {
		return fmt.Errorf("sched: LeaseTicks %d, SilenceTicks %d: must not be negative", c.LeaseTicks, c.SilenceTicks)
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
	// task wins and the task is forwarded to it. A claim that comes after
	// the task was placed gets the next queued task instead, if any.
	Claim
	// Refused: Peer refused forwarded Task (full, or leaving); the task goes
	// back to the front of the queue and Peer is not chosen again until its
	// next beacon.
	Refused
	// ProbeReply: Peer answered a probe with its Load: as PeerLoad, and the
	// probe is no longer in flight.
	ProbeReply
	// Lost: the hand-off of forwarded Task to Peer is lost (the session it
	// went on died): it counts against the task's retries and goes back to
	// the queue, or fails past them (FailLost); Peer is not chosen again
	// until its next beacon. A task pinned to Peer fails (FailPinned).
	Lost
	// Leave: this peer leaves the swarm: tasks other peers handed it that
	// have not started go back to their owners (Refuse, RefuseLeaving),
	// the owners of the results it lends are asked to take them (Take),
	// new hand-offs are refused, and its Load shows no room. Left comes
	// once nothing of other peers' is left here.
	Leave
	// OfferHeard: Peer offered Task (Load.Funcs: its function table) on
	// the gossip topic: this peer claims it (Claim action) while it has
	// more idle slots than it claimed this tick.
	OfferHeard
	// Heard: Peer said something on a session since the last tick (see
	// Config.LeaseTicks).
	Heard
	// ProbeBatchSet: Config.ProbeBatch becomes Count (negative: 0); probes
	// in flight stay counted. An event, so a recording holds it too.
	ProbeBatchSet
	// Settled: this peer no longer needs the holder's copy of Object, a
	// result lent to it: it has the bytes now (Here: fetched, or handed
	// them), or it dropped its refs (see lineage.go).
	Settled
	// ObjectLost: Object, a result lent to this peer, cannot be had from
	// its holder any more: the task that made it runs again (Rebuild) if
	// its lineage is kept.
	ObjectLost
	// ArgLost: Peer handed forwarded Task back because it could fetch
	// its input Object from nobody. The task waits for Object (a Fetch
	// action asks the caller to get it here, or have it made again) and
	// is placed again once it is ready; an input that keeps failing to
	// reach executors, more than the task's retries (at least once),
	// fails it (FailArg).
	ArgLost
	// Released: Peer, the owner of a result this peer lends it (Object),
	// no longer needs it — or never learned of it: the completion that
	// named it could not be sent. The loan ends (EndLoan, LoanReleased).
	// A release of a loan that is over already changes nothing.
	Released
	// Offers: Peer offers the functions Funcs, a table whose digest is
	// Load.Funcs (it answers a FetchFuncs); Peer empty or Self: this peer
	// offers Funcs, and runs no other function but Func 0 (until then it
	// runs every function).
	Offers
	// Stop: Task is cancelled (as ray.cancel) by this peer's caller (Peer
	// empty) or, for a task handed to us, by its owner (Peer). A task not
	// started is dropped (Fail, FailCancelled; handed: Refuse,
	// RefuseCancelled); a running or forwarded one is stopped (Abort) and
	// ends when it reports; it is never run again. A Stop of a task not
	// tracked (finished already) changes nothing.
	Stop
)

var kindNames = [...]string{"?", "submit", "object-ready", "object-failed", "done", "blocked", "unblocked",
	"peer-load", "peer-gone", "tick", "claim", "refused", "probe-reply", "lost", "leave", "offer-heard", "heard", "probe-batch-set", "settled", "object-lost", "arg-lost", "released", "offers", "stop"}

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
	// Func (Submit, OfferHeard): the task's function; only peers that
	// offer it run it (see funcs.go). 0: any peer.
	Func FuncID
	// Funcs (Offers): the functions a peer offers.
	Funcs []FuncID
	// Needs (Submit): the resources the task needs where it runs (see
	// resources.go); Resources (Offers): the peer's.
	Needs, Resources map[string]int
	// On pins a submitted task to a peer (Self or another); empty lets
	// the scheduler place it.
	On PeerID
	// Here marks a task another peer handed to us: it runs here or not
	// at all (it is never forwarded again).
	Here bool
	// Inputs lists the submitted task's inputs that exist already, with
	// their sizes and holders, for locality.
	Inputs []Input
	// Owner, with Here, is the peer that handed the task to us: if it is
	// gone (PeerGone) the task is dropped or its run cancelled (Cancel).
	Owner PeerID
	// MaxRetries (Submit) replaces Config.MaxRetries for the task when
	// positive; negative: no retries; 0: the configured number.
	MaxRetries int
	// RetryErrors (Submit): the function's own failures are retried too,
	// in the same budget (see Done's Retryable).
	RetryErrors bool
	// Count (ProbeBatchSet): the new probe batch.
	Count int
	// Lent (Done of a forwarded task that succeeded): the outputs its
	// executor keeps, lent to us. The scheduler keeps the task's lineage
	// while they may be needed, to make them again if the holder is lost.
	// With Done of a task handed to us: the outputs this peer keeps for
	// its owner, lent to it (see loans.go).
	Lent []ObjectID
	// Retryable (Done): the task failed by the function's own doing (an
	// error it returned, a panic): it runs again if it retries errors and
	// has retries left (Retry action); otherwise Done ends it.
	Retryable bool
	Object    ObjectID // ObjectReady, ObjectFailed
	// Holder and Size say where an object made ready now is (ObjectReady).
	Holder PeerID
	Size   int64
	// Peer: whom the event is about (PeerLoad, PeerGone, Claim, Refused,
	// Lost, ProbeReply, OfferHeard); with Done, the peer that reports a
	// forwarded task's completion (checked when set).
	Peer PeerID
	Load Load // PeerLoad, ProbeReply; OfferHeard: Funcs only
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
	// Fail: Task ends without (another) run, for Reason: its dependency
	// Object failed (FailDep), the peer it is pinned to refused it or is
	// gone (FailPinned, Peer), or its executors were lost more often than
	// its retries allow (FailLost; Peer: the last one, Count: the runs
	// lost). The caller fails the task's outputs; the task holds no slot
	// and is forgotten.
	Fail
	// Forward: hand Task to Peer over a direct stream; the caller reports
	// Done when the peer completes it, Refused if the peer refuses it,
	// Lost if the hand-off is lost, or PeerGone if the peer is.
	Forward
	// Offer: announce Task on the gossip topic; idle peers may Claim it.
	Offer
	// Probe: ask Count random peers this scheduler does not know for their
	// load; step each answer as ProbeReply.
	Probe
	// Retry: Task failed by the function's own doing and runs again
	// (attempt Count, counting from 1 for the first run): its outputs stay
	// pending; it is queued again as first submitted.
	Retry
	// Refuse: tell Peer, the owner that handed us Task, that this peer
	// will not run it (Reason: RefuseLeaving, RefuseFull); the task is
	// forgotten here, and its owner places it again.
	Refuse
	// Cancel: Task's owner Peer is gone: a queued task is forgotten
	// without running; a running one should stop (its context cancelled),
	// and its outcome is dropped — the caller still reports its Done.
	Cancel
	// ClaimOffer: ask Peer, which offered Task, to hand it to this peer
	// (the owner steps that as Claim).
	ClaimOffer
	// Ping: Peer holds tasks of ours and has been silent for a third of
	// the lease: ask it for a sign of life.
	Ping
	// Drop: Peer's lease expired: close the sessions to it. Its tasks
	// were placed again (or failed), and it is ignored for SilenceTicks.
	Drop
	// Rebuild: Task, which made results lent to us whose holder is lost,
	// runs again: its outputs are pending again, and the scheduler has
	// submitted it as first submitted (its placement follows).
	Rebuild
	// Forget: Task's lineage is no longer needed: what the caller kept to
	// run it again (its spec, its arguments held) may go.
	Forget
	// Fetch: get Object into this peer's store (Peer, an executor, could
	// fetch it from nobody): step ObjectReady with this peer as its holder
	// once it is here, ObjectLost if its holder cannot serve it (its
	// lineage may make it again), ObjectFailed if it cannot be had at all.
	Fetch
	// EndLoan: this peer stops keeping Object for Peer, its owner, for
	// Reason: LoanReleased (the owner released it: the bytes may go) or
	// LoanOrphaned (the owner is gone, or never learned of it: the bytes
	// stay as a cache the store may evict).
	EndLoan
	// Take: this peer is leaving: ask Peer, the owner of lent Object, to
	// fetch it now (it answers with a release, stepped as Released).
	Take
	// Left: this peer, leaving, runs no task handed to it and lends
	// nothing: it may go without losing anything only it holds.
	Left
	// FetchFuncs: Peer's beacon names a function table (Load.Funcs) this
	// scheduler has not seen: get it from Peer and step Offers. Until
	// then Peer runs only tasks of Func 0.
	FetchFuncs
	// Abort: stop Task, which was cancelled (Stop): Peer empty, its run
	// here (its context cancelled; its Done follows); else tell Peer, its
	// executor, to stop it (its report, or its loss, follows).
	Abort
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
	case Retry:
		return "retry"
	case Refuse:
		return "refuse"
	case Cancel:
		return "cancel"
	case ClaimOffer:
		return "claim-offer"
	case Ping:
		return "ping"
	case Drop:
		return "drop"
	case Rebuild:
		return "rebuild"
	case Forget:
		return "forget"
	case Fetch:
		return "fetch"
	case EndLoan:
		return "end-loan"
	case Take:
		return "take"
	case Left:
		return "left"
	case FetchFuncs:
		return "fetch-funcs"
	case Abort:
		return "abort"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Reason says why a task fails (Fail) or is refused (Refuse).
type Reason uint8

// The reasons of Fail and Refuse actions.
const (
	FailDep         Reason = iota + 1 // a dependency failed (Action.Object)
	FailPinned                        // the peer it is pinned to refused it or is gone
	FailLost                          // its executors were lost past its retries
	FailArg                           // executors could not fetch its input Object, past its retries
	RefuseLeaving                     // this peer is leaving the swarm
	RefuseFull                        // this peer's queue is full (Config.MaxQueue)
	LoanReleased                      // the owner released the lent object
	LoanOrphaned                      // the owner of the lent object is gone, or never learned of it
	FailNoPeer                        // no known peer offers its function with the resources it needs (Count: ticks waited)
	RefuseNoFunc                      // this peer does not offer the task's function
	RefuseNeeds                       // this peer has not the resources the task needs
	FailCancelled                     // the task was cancelled (Stop)
	RefuseCancelled                   // its owner cancelled the task before it started here
)

var reasonNames = [...]string{"?", "dep", "pinned", "lost", "arg", "leaving", "full", "released", "orphaned", "no-peer", "no-func", "needs", "cancelled", "cancelled"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Action is one output of the scheduler.
type Action struct {
	Kind   ActionKind
	Task   TaskID
	Object ObjectID // Fail (FailDep): the dependency that failed; Fetch, EndLoan, Take: the object
	// Peer: Forward's target; Fail's pinned or last executor; Refuse's,
	// Cancel's and Claim's owner; EndLoan's and Take's owner.
	Peer   PeerID
	Count  int    // Probe: how many peers to ask; Retry: the attempt; Fail (FailLost): runs lost; Fail (FailNoPeer): ticks waited
	Reason Reason // Fail, Refuse, EndLoan
}

// Errors returned by Step for events that contradict the scheduler's state;
// they point at a bug in the caller, and the state is left unchanged.
var (
	ErrDuplicate = errors.New("sched: task already submitted")
	ErrUnknown   = errors.New("sched: unknown task")
	ErrState     = errors.New("sched: event does not fit the task's state")
	ErrEvent     = errors.New("sched: malformed event")
	// ErrInvariant starts the panic of a scheduler whose Config.Check
	// found its state inconsistent: a bug in the scheduler.
	ErrInvariant = errors.New("sched: invariant broken")
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
	fn       FuncID
	needs    []Need
	ckey     classKey
	seq      int64 // order of readiness across classes (see nextHere)
	on       PeerID
	peer     PeerID // forwarded: where
	owner    PeerID // executor side: the peer that handed it to us
	inputs   []Input
	queuedAt int64 // tick it joined the queue
	pending  int32 // dependencies not yet ready
	// Owner side: the retry budget (maxRetries) and what used it: runs
	// whose executor was lost, runs whose function failed, hand-backs
	// for an input nobody served (ArgLost).
	maxRetries, lost, errs, argRuns int32
	state                           state
	nested                          bool // submitted by a running task: runs first
	retry                           bool // came back from a peer: goes to the front
	here                            bool // must run on this peer
	offered                         bool // announced on the gossip topic
	retryErrors                     bool
	orphaned                        bool // executor side: the owner is gone while it runs
	cancelled                       bool // Stop: it ends without running again
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
	waiters map[ObjectID][]*task
	// Ready tasks that may run here or elsewhere, by function (see
	// funcs.go), and those that must run here.
	classes map[classKey]*class
	active  []*class // classes with queued tasks
	local   fifo
	self    map[FuncID]struct{} // this peer's functions; nil: every one
	used    map[string]int      // resources held by the tasks running here
	gen     uint64              // bumped when s.roomy or a table changes
	// seqFront, seqBack number readiness: the next task pushed to the
	// front of its queue, and to the back.
	seqFront, seqBack int64
	peers             map[PeerID]*peer
	roomy             []*peer // peers with room and our functions, by ID (see fix)
	probing           int     // probes in flight (see Config.ProbeBatch)
	wasted            int     // probes freed this tick by replies without room
	rand              *rand.Rand
	now               int64 // ticks
	forwards          int   // tasks forwarded and not done
	running           int   // tasks holding a slot
	queued            int   // tasks ready for a slot (the queues hold stale entries too)
	blocked           int
	waiting           int
	finished          uint64
	actions           []Action
	checkIn           int  // steps until the next invariant check (Config.Check)
	leaving           bool // Leave: hand-offs refused, no room beaconed
	claimed           int  // offers claimed this tick (OfferHeard)
	// Leases (see lease.go): the peers holding our tasks, when each was
	// last heard, and the peers ignored since their lease expired (until
	// which tick).
	outs     map[PeerID]*out
	heardAt  map[PeerID]int64
	silenced map[PeerID]int64
	// Lineage (see lineage.go): of finished tasks whose results are lent
	// to us, by task, and those results, by object.
	lineages map[TaskID]*lineage
	lent     map[ObjectID]*lentObj
	// Loans (see loans.go): the results this peer keeps for the owners of
	// tasks they handed it, by object; how many handed tasks are here
	// (not orphaned); whether Left was said.
	loans  map[ObjectID]PeerID
	hosted int
	left   bool
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		h := fnv.New64a()
		h.Write([]byte(cfg.Self))
		r = rand.New(rand.NewPCG(cfg.Seed, h.Sum64()))
	}
	return &Scheduler{
		cfg:      cfg,
		tasks:    make(map[TaskID]*task),
		classes:  make(map[classKey]*class),
		used:     make(map[string]int),
		waiters:  make(map[ObjectID][]*task),
		peers:    make(map[PeerID]*peer),
		rand:     r,
		outs:     make(map[PeerID]*out),
		heardAt:  make(map[PeerID]int64),
		silenced: make(map[PeerID]int64),
		lineages: make(map[TaskID]*lineage),
		lent:     make(map[ObjectID]*lentObj),
		loans:    make(map[ObjectID]PeerID),
	}, nil
}

// Step applies one event. An error means the event contradicts the state
// (a caller bug); the state is then unchanged.
func (s *Scheduler) Step(ev Event) error {
	n0 := len(s.actions)
	err := s.step(ev)
	if s.cfg.Trace != nil {
		s.cfg.Trace(ev, s.actions[n0:], err)
	}
	if s.cfg.Check {
		// A full check walks every task: done every len(tasks) steps at
		// most, it costs O(1) a step amortized.
		if s.checkIn--; s.checkIn <= 0 {
			s.check()
			if s.checkIn = 1; len(s.tasks) > 64 {
				s.checkIn = len(s.tasks)
			}
		}
	}
	return err
}

func (s *Scheduler) step(ev Event) error {
	switch ev.Kind {
	case Submit:
		return s.submit(ev)
	case ObjectReady:
		s.objectReady(ev)
	case ObjectFailed:
		s.objectFailed(ev.Object)
	case Done:
		if err := s.done(ev); err != nil {
			return err
		}
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
	case ProbeBatchSet:
		s.cfg.ProbeBatch = max(ev.Count, 0)
	case Settled:
		s.settled(ev.Object, ev.Here)
	case ObjectLost:
		s.objectLost(ev.Object)
	case ArgLost:
		if err := s.argLost(ev); err != nil {
			return err
		}
	case Released:
		s.released(ev.Object, ev.Peer)
	case Offers:
		if err := s.setOffers(ev); err != nil {
			return err
		}
	case Stop:
		s.stop(ev)
	case PeerLoad, PeerGone, Tick, Claim, Refused, ProbeReply, Lost, Leave, OfferHeard, Heard:
		if err := s.peerEvent(ev); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrEvent, ev.Kind)
	}
	s.fill()
	s.maybeLeft()
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
	if ev.Owner != "" && !ev.Here {
		return fmt.Errorf("%w: submit with an owner but not here", ErrEvent)
	}
	if ev.Owner != "" && len(ev.Deps) > 0 {
		return fmt.Errorf("%w: a handed task waits for no dependency", ErrEvent)
	}
	needs, nkey, err := needsOf(ev.Needs)
	if err != nil {
		return err
	}
	if ev.Owner != "" {
		// Handed to us: refused when leaving or when the queue is full.
		switch {
		case s.leaving:
			s.actions = append(s.actions, Action{Kind: Refuse, Task: ev.Task, Peer: ev.Owner, Reason: RefuseLeaving})
			return nil
		case s.cfg.MaxQueue > 0 && s.queued >= s.cfg.MaxQueue:
			s.actions = append(s.actions, Action{Kind: Refuse, Task: ev.Task, Peer: ev.Owner, Reason: RefuseFull})
			return nil
		case !s.offersHere(ev.Func):
			s.actions = append(s.actions, Action{Kind: Refuse, Task: ev.Task, Peer: ev.Owner, Reason: RefuseNoFunc})
			return nil
		case !fitsTotal(s.cfg.Resources, needs):
			s.actions = append(s.actions, Action{Kind: Refuse, Task: ev.Task, Peer: ev.Owner, Reason: RefuseNeeds})
			return nil
		}
	}
	t := &task{id: ev.Task, fn: ev.Func, needs: needs, ckey: classKey{ev.Func, nkey}, pending: int32(len(ev.Deps)), nested: ev.Nested, here: ev.Here || ev.On == s.cfg.Self && ev.On != "", on: ev.On, inputs: ev.Inputs,
		owner: ev.Owner, retryErrors: ev.RetryErrors, maxRetries: clampRetries(s.cfg.MaxRetries)}
	switch {
	case ev.MaxRetries > 0:
		t.maxRetries = clampRetries(ev.MaxRetries)
	case ev.MaxRetries < 0:
		t.maxRetries = 0
	}
	if t.here {
		t.on = ""
	}
	if t.owner != "" {
		s.hosted++
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

// clampRetries fits a retry budget in a task's counters: past a billion
// it is as good as no limit.
func clampRetries(r int) int32 { return int32(min(r, 1<<30)) }

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
	s.queued++
	t.queuedAt = s.now
	q := &s.local
	if !t.here {
		c := s.classOf(t)
		s.activate(c)
		q = &c.queue
	}
	if t.nested || t.retry {
		s.seqFront--
		t.seq = s.seqFront
		q.pushFront(t.id)
	} else {
		t.seq = s.seqBack
		s.seqBack++
		q.push(t.id)
	}
}

// forward hands t to p.
func (s *Scheduler) forward(t *task, p PeerID) {
	if t.state == queued {
		s.queued--
	}
	t.state = forwarded
	t.peer = p
	s.forwards++
	s.handOut(p)
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
		s.ended(t.id)
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
		t := s.nextHere()
		if t == nil {
			break
		}
		t.state = running
		s.queued--
		s.running++
		s.hold(t)
		s.actions = append(s.actions, Action{Kind: Run, Task: t.id})
	}
	stuck := false
	for _, c := range s.sortedActive() {
		for {
			t := s.head(c)
			if t == nil {
				break
			}
			if t.nested && s.now-t.queuedAt < int64(s.cfg.NestedWait) {
				break // nested work waits a while for a slot here first
			}
			p := s.choose(t, s.candidates(c))
			if p == "" {
				stuck = true
				break
			}
			if q := s.peers[p]; q != nil && q.est <= q.load.Slots-q.load.Queue {
				// Only queue room left on the peer chosen: the task waits in
				// that queue, so look for idle peers for what follows.
				s.probeSpread()
			}
			c.queue.pop()
			s.forward(t, p)
		}
	}
	if stuck {
		s.probe()
	}
}

// placeable counts the entries of the class queues (stale ones too).
func (s *Scheduler) placeable() int {
	n := 0
	for _, c := range s.active {
		n += c.queue.len()
	}
	return n
}

// probe asks for more peers when queued work has nowhere to go: no more
// probes in flight than tasks wait, nor than ProbeBatch.
func (s *Scheduler) probe() {
	n := min(s.cfg.ProbeBatch, s.placeable()) - s.probing
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
		Queued:    s.queued,
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

// SetProbeBatch steps a ProbeBatchSet event for n: as a node does when the
// number of shards it is on changes (see ProbeBatchFor).
func (s *Scheduler) SetProbeBatch(n int) {
	_ = s.Step(Event{Kind: ProbeBatchSet, Count: n}) // never fails
}

// Knows reports whether the scheduler has heard p's load (a beacon or a
// probe reply) and not forgotten it since: a peer worth probing is one it
// does not know.
func (s *Scheduler) Knows(p PeerID) bool { return s.peers[p] != nil }
