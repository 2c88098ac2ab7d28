package sched

import (
	"errors"
	"fmt"
)

// TaskID names a task. The node uses the task CID's binary form; the
// scheduler only compares IDs.
type TaskID string

// ObjectID names an object (a task output or a put value).
type ObjectID string

// Config configures a Scheduler. A Config handed to New is not changed
// afterwards.
type Config struct {
	// Slots is the number of tasks that may run at once on this peer.
	Slots int
}

// DefaultConfig returns a Config with one slot; callers normally set Slots
// to the number of CPUs.
func DefaultConfig() Config { return Config{Slots: 1} }

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Slots < 1 {
		return fmt.Errorf("sched: Slots is %d: must be at least 1", c.Slots)
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
)

var kindNames = [...]string{"?", "submit", "object-ready", "object-failed", "done", "blocked", "unblocked"}

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
	Object ObjectID   // ObjectReady, ObjectFailed
}

// ActionKind says what the caller must do.
type ActionKind uint8

const (
	// Run: start Task now on this peer; it holds a slot until Done or Blocked.
	Run ActionKind = iota + 1
	// Fail: Task cannot run because its dependency Object failed; the caller
	// fails the task's outputs. The task holds no slot and is forgotten.
	Fail
)

func (k ActionKind) String() string {
	switch k {
	case Run:
		return "run"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one output of the scheduler.
type Action struct {
	Kind   ActionKind
	Task   TaskID
	Object ObjectID // Fail: the dependency that failed
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
	waiting state = iota + 1 // waiting for dependencies
	queued                   // ready, waiting for a slot
	running                  // holding a slot
	blocked                  // running but gave its slot back
)

type task struct {
	id      TaskID
	state   state
	pending int  // dependencies not yet ready
	nested  bool // submitted by a running task: runs first
}

// Stats is a snapshot of the scheduler's queues.
type Stats struct {
	Slots    int // configured slots
	Running  int // tasks holding a slot (may exceed Slots after unblocks)
	Blocked  int // running tasks that gave their slot back
	Queued   int // ready tasks waiting for a slot
	Waiting  int // tasks waiting for dependencies
	Finished uint64
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
	queue    fifo
	running  int // tasks holding a slot
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
	return &Scheduler{
		cfg:     cfg,
		tasks:   make(map[TaskID]*task),
		waiters: make(map[ObjectID][]*task),
	}, nil
}

// Step applies one event. An error means the event contradicts the state
// (a caller bug); the state is then unchanged.
func (s *Scheduler) Step(ev Event) error {
	switch ev.Kind {
	case Submit:
		return s.submit(ev)
	case ObjectReady:
		s.objectReady(ev.Object)
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
	t := &task{id: ev.Task, pending: len(ev.Deps), nested: ev.Nested}
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
func (s *Scheduler) enqueue(t *task) {
	t.state = queued
	if t.nested {
		s.queue.pushFront(t.id)
	} else {
		s.queue.push(t.id)
	}
}

func (s *Scheduler) objectReady(o ObjectID) {
	ws, ok := s.waiters[o]
	if !ok {
		return
	}
	delete(s.waiters, o)
	for _, t := range ws {
		if !s.live(t) || t.state != waiting {
			continue // failed meanwhile through another dependency
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

// fill starts queued tasks while slots are free.
func (s *Scheduler) fill() {
	for s.running < s.cfg.Slots {
		id, ok := s.queue.pop()
		if !ok {
			return
		}
		s.tasks[id].state = running
		s.running++
		s.actions = append(s.actions, Action{Kind: Run, Task: id})
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
		Slots:    s.cfg.Slots,
		Running:  s.running,
		Blocked:  s.blocked,
		Queued:   s.queue.len(),
		Waiting:  s.waiting,
		Finished: s.finished,
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
