package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
)

// The swarm protocols. Load beacons and offers travel on GossipSub topics;
// tasks, completions, claims and releases travel on sessions (see
// sessionProtocol), objects on the fetch protocol.
const (
	loadTopic  = "/dray/load/1"
	offerTopic = "/dray/offer/1"

	// maxFrame bounds every session frame, so it bounds inline arguments
	// and results too; larger values travel by reference (inlineMax).
	maxFrame = 16 << 20

	// inlineMax is the largest value that travels inside a hand-off or a
	// completion. A larger argument is fetched by the executor from its
	// holder; a larger result stays on the executor, which lends it to
	// the owner until the owner releases it, and is fetched on Get.
	inlineMax = sched.InlineMax

	// The swarm's timings, from their one source (the simulator's too).
	beaconEvery = sched.BeaconEvery
	tickEvery   = sched.TickEvery
	ackDelay    = sched.AckDelay

	streamWait = 10 * time.Second // bound on opening a stream or one write
)

// beacon is what a peer gossips about its load.
type beacon struct {
	Slots int    `codec:"s"`
	Free  int    `codec:"f"`
	Queue int    `codec:"q"`
	Funcs uint64 `codec:"h"`
	Held  int64  `codec:"b"` // bytes of objects in the store
}

// handoff hands a task to another peer: the spec (whose CID is the task
// ID) and every argument, inline or by reference.
type handoff struct {
	Spec []byte    `codec:"spec"`
	Args []handArg `codec:"args"`
}

// handArg is one argument of a handed-off task: its encoded value (Data),
// or, for a value above inlineMax or one this peer does not hold, its
// content CID, size and the peers that hold it.
type handArg struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Holders [][]byte `codec:"p"`
}

// completion reports a forwarded task's outcome to its owner.
type completion struct {
	Task    []byte   `codec:"task"`
	Results []result `codec:"results"`
	Error   string   `codec:"error"`
	Stack   string   `codec:"stack"`
	// FromFunc: the function itself failed (TaskError.FromFunc).
	FromFunc bool `codec:"u,omitempty"`
}

// result is one result of a completed task: its encoded value (Data), or,
// above inlineMax, the content CID and size of the bytes the executor
// keeps for the owner, with the refs inside the value.
type result struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Links   [][]byte `codec:"l"`
}

// refusal says why an executor did not take a task.
type refusal struct {
	Task []byte `codec:"t"`
	Why  string `codec:"w"`
	// Arg, when not 0, is the 1-based index of an argument passed by
	// reference that the executor could fetch from nobody: the owner
	// makes it available again (fetching it itself, or rebuilding it
	// from its lineage) before it places the task again.
	Arg int `codec:"a,omitempty"`
}

// offer announces a task nobody took: an idle peer with the same function
// table claims it on a session to the owner, and the owner hands it to
// the first claimer.
type offer struct {
	Task  []byte `codec:"t"`
	Funcs uint64 `codec:"h"`
	Bytes int64  `codec:"n"` // input bytes (locality)
}

func init() {
	codec.MustRegister[beacon]("dray/beacon/1")
	codec.MustRegister[handoff]("dray/handoff/1")
	codec.MustRegister[handArg]("dray/arg/1")
	codec.MustRegister[completion]("dray/completion/1")
	codec.MustRegister[result]("dray/result/1")
	codec.MustRegister[refusal]("dray/refusal/1")
	codec.MustRegister[offer]("dray/offer/1")
}

// RemoteError is the cause of a TaskError for a task that failed on
// another peer.
type RemoteError struct {
	Peer    string
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("on peer %s: %s", e.Peer, e.Message) }

// funcsHash identifies a function table: peers with equal hashes run the
// same functions.
func funcsHash(r *Registry) uint64 {
	h := fnv.New64a()
	for _, f := range r.Functions() {
		fmt.Fprintf(h, "%s|%t;", f.Signature(), f.Deterministic)
	}
	return h.Sum64()
}

// startSwarm joins the gossip topics, serves the session and fetch
// protocols and starts the loops that feed the scheduler: beacons and
// offers heard, ticks, peers lost.
func (n *Node) startSwarm() error {
	shards := n.cfg.Shards
	if shards == 0 {
		shards = sched.Shards(n.networkSize())
	}
	set, err := n.joinShards(shards)
	if err != nil {
		return err
	}
	n.shards = set
	n.setProbeBatch(shards)
	n.sessions = make(map[peer.ID]*session)
	n.dialing = make(map[peer.ID]*dial)
	n.live = make(map[*session]struct{})
	n.loans = make(map[cid.Cid]loan)
	n.offerq = make(chan []byte, 256)
	n.net.Handle(sessionProtocol, n.serveSession)
	n.net.Handle(fetchProtocol, n.serveFetch)
	if err := n.net.StartReprovider(0, n.heldKeys); err != nil {
		n.log.Debug("reprovider", "err", err)
	}
	n.loops.Add(6)
	go n.announceLoop()
	go n.beaconLoop()
	go n.offerLoop()
	go n.tickLoop()
	go n.peerLoop()
	go n.shardLoop()
	return nil
}

func (n *Node) stopSwarm() {
	n.net.Unhandle(sessionProtocol)
	n.net.Unhandle(fetchProtocol)
	n.closeSessions()
}

// beaconLoop publishes this peer's load on its home shard when it changed
// (at most every beaconEvery) and at least every beaconIdle.
func (n *Node) beaconLoop() {
	defer n.loops.Done()
	t := time.NewTicker(beaconEvery)
	defer t.Stop()
	var last beacon
	var lastSent time.Time
	sent := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		b := n.currentBeacon()
		if !sched.BeaconDue(last.load(), b.load(), sent, time.Since(lastSent)) {
			continue
		}
		data, err := codec.Marshal(b)
		if err != nil {
			n.log.Error("encode beacon", "err", err)
			continue
		}
		if n.publish(loadKind, data) {
			last, lastSent, sent = b, time.Now(), true
		}
	}
}

// currentBeacon is this peer's load as it beacons it and answers probes
// (the scheduler's: no room while leaving).
func (n *Node) currentBeacon() beacon {
	n.mu.Lock()
	l := n.sched.Load()
	n.mu.Unlock()
	ss := n.store.Stats()
	return beacon{Slots: l.Slots, Free: l.Free, Queue: l.Queue, Funcs: l.Funcs, Held: ss.MemBytes + ss.DiskBytes}
}

// load is what b says about the load (the bytes held change with every
// object and alone do not warrant a beacon).
func (b beacon) load() sched.Load {
	return sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}
}

// hearLoop turns beacons heard into scheduler events.
func (n *Node) hearLoop(sub p2p.Subscription) {
	defer n.loops.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.From == n.net.ID() {
			continue // our own beacon
		}
		n.netc.recv(len(msg.Data))
		var b beacon
		if err := codec.Unmarshal(msg.Data, &b); err != nil {
			n.log.Debug("bad beacon", "peer", msg.From, "err", err)
			continue
		}
		n.step(sched.Event{Kind: sched.PeerLoad, Peer: sched.PeerID(msg.From.String()),
			Load: sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}})
	}
}

func (n *Node) tickLoop() {
	defer n.loops.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.tick()
		}
	}
}

// peerLoop reports lost peers to the scheduler, which re-places their work,
// and stops pinning results lent to owners that are gone.
func (n *Node) peerLoop() {
	defer n.loops.Done()
	events := n.net.PeerEvents()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == p2p.PeerDisconnected {
				n.peerGone(ev.Peer)
				n.endLoans(ev.Peer)
				n.forgetLimiter(ev.Peer)
			}
		}
	}
}

// step applies one event and performs the resulting actions.
func (n *Node) step(ev sched.Event) {
	n.update(func() {
		if err := n.sched.Step(ev); err != nil {
			n.log.Debug("scheduler refused event", "event", ev.Kind, "err", err)
		}
	})
}

// update runs f under n.mu unless the node is closed, performs the
// scheduler's actions, and starts the runs and hand-offs they call for
// once n.mu is released.
func (n *Node) update(f func()) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	f()
	n.actLocked()
	n.unlockAndAct()
}

// forward is a task to hand to a peer once n.mu is released.
type forward struct {
	t    *task
	peer peer.ID
	args []handArg
	sess *session // the session to send on; nil: open one
}

func (n *Node) takeForwards() []forward {
	f := n.fwds
	n.fwds = nil
	return f
}

// forwardLocked prepares a Forward action: it gathers the task's arguments
// now (its dependencies are ready, or it would not have been placed).
func (n *Node) forwardLocked(t *task, to sched.PeerID) {
	pid, err := peer.Decode(string(to))
	if err == nil {
		var args []handArg
		args, err = n.handArgsLocked(t)
		if err == nil {
			n.smu.Lock()
			ss := n.sessions[pid]
			n.smu.Unlock()
			if ss != nil && ss.dead() {
				ss = nil // its tasks were taken back already: open a new one
			}
			t.sess, t.handed = ss, time.Now().UnixNano()
			n.fwds = append(n.fwds, forward{t: t, peer: pid, args: args, sess: ss})
			return
		}
	}
	// Cannot hand it over: the scheduler takes it back.
	n.log.Warn("cannot forward task", "task", t.id, "peer", to, "err", err)
	t.sess = nil
	n.stepLocked(sched.Event{Kind: sched.Refused, Task: sched.TaskID(t.id.KeyString()), Peer: to})
}

// handedLocked reports whether t, a task this node owns, is out on p (the
// scheduler's record).
func (n *Node) handedLocked(t *task, p peer.ID) bool {
	key := t.id.KeyString()
	return n.tasks[key] == t && n.sched.HandedTo(sched.TaskID(key)) == sched.PeerID(p.String())
}

// takeBackLocked gives the scheduler back t, which was handed to p and is
// refused there, or lost with p (lost: it counts against its retries, and
// the scheduler fails it past them). Unless t was placed elsewhere or
// finished meanwhile, the scheduler forgets the hand-off, so a completion
// that still comes from p is stale.
func (n *Node) takeBackLocked(t *task, p peer.ID, lost bool) {
	if !n.handedLocked(t, p) {
		return
	}
	t.sess = nil
	kind := sched.Refused
	if lost {
		kind = sched.Lost
	}
	n.stepLocked(sched.Event{Kind: kind, Task: sched.TaskID(t.id.KeyString()), Peer: sched.PeerID(p.String())})
}

// giveBack hands t, a task its owner handed this node, back with a
// refusal saying why (arg: the 1-based argument it could not fetch, or
// 0), on the session it came on or, if that one died, a new one.
func (n *Node) giveBack(t *task, why string, arg int) error {
	data, err := codec.Marshal(refusal{Task: t.id.Bytes(), Why: why, Arg: arg})
	if err != nil {
		return err
	}
	t.acked.Store(true)
	if ss := t.sess; ss != nil && ss.send(frameRefuse, data) == nil {
		return nil
	}
	ss, err := n.sessionTo(t.owner)
	if err == nil {
		err = ss.send(frameRefuse, data)
	}
	return err
}

// takeBack is takeBackLocked followed by the actions it leads to.
func (n *Node) takeBack(t *task, p peer.ID) {
	n.update(func() { n.takeBackLocked(t, p, false) })
}

// peerGone tells the scheduler p is gone, in one event: the tasks handed
// to p are placed again (or fail past their retries), and the tasks p
// handed this node stop (see cancelLocked). A stale event, for a peer that
// is connected again, is ignored: the tasks on its old session were taken
// back when that session ended, and those it handed since stand.
func (n *Node) peerGone(p peer.ID) {
	if n.net.Connected(p) {
		return
	}
	n.update(func() {
		n.stepLocked(sched.Event{Kind: sched.PeerGone, Peer: sched.PeerID(p.String())})
	})
}

// cancelLocked stops t, a task whose owner is gone (a Cancel action): a
// task not started is forgotten (the scheduler dropped it); a running one
// sees its context cancelled with an OwnerDiedError, and its outcome is
// dropped (see report).
func (n *Node) cancelLocked(t *task) {
	key := t.id.KeyString()
	if !n.sched.Tracks(sched.TaskID(key)) {
		n.forgetTaskLocked(key)
		return
	}
	t.orphaned = true
	if t.cancel != nil {
		t.cancel(&OwnerDiedError{Owner: t.owner.String()})
	}
	n.log.Info("owner gone; stopping its task", "owner", t.owner, "task", t.id)
}

// refuseLocked gives t, a task its owner handed this node, back to the
// owner (a Refuse action: this node leaves, or its queue is full) and
// forgets it.
func (n *Node) refuseLocked(t *task, why sched.Reason) {
	msg := "peer is leaving the swarm"
	if why == sched.RefuseFull {
		msg = fmt.Sprintf("queue full (%d tasks wait for a slot)", n.cfg.maxQueue())
	}
	n.forgetTaskLocked(t.id.KeyString())
	n.netc.refused.Add(1)
	n.later = append(n.later, func() {
		if err := n.giveBack(t, msg, 0); err != nil {
			n.log.Warn("cannot hand a task back to its owner", "task", t.id, "owner", t.owner, "err", err)
		}
	})
}

// claimLocked claims an offered task (a ClaimOffer action) on a session to
// its owner.
func (n *Node) claimLocked(a sched.Action) {
	owner, err := peer.Decode(string(a.Peer))
	if err != nil {
		return
	}
	task := []byte(a.Task)
	n.later = append(n.later, func() {
		ss, err := n.sessionTo(owner)
		if err == nil {
			err = ss.send(frameClaim, task)
		}
		if err != nil {
			n.log.Debug("cannot claim offer", "peer", owner, "err", err)
		}
	})
}

// handArgsLocked returns t's arguments for a hand-off: values inline, ready
// dependencies inline when this node holds them and they are small, by
// reference (content CID, size, holder) otherwise.
func (n *Node) handArgsLocked(t *task) ([]handArg, error) {
	args := make([]handArg, len(t.args))
	for i, a := range t.args {
		if !a.ref.Defined() {
			args[i].Data = a.raw
			continue
		}
		o := n.objects[a.ref]
		if o == nil || o.state != ready {
			return nil, fmt.Errorf("argument %d (%s) is not ready", i+1, a.ref)
		}
		size := o.size
		if !o.away {
			size, _ = n.store.Size(o.content)
		}
		if o.away || size > inlineMax {
			holder := n.net.ID()
			if o.away {
				holder = o.holder
			}
			args[i] = handArg{Content: o.content.Bytes(), Size: size, Holders: [][]byte{[]byte(holder)}}
			continue
		}
		data, err := n.store.Get(n.ctx, o.content)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		args[i].Data = data
	}
	return args, nil
}

// sendForwards hands tasks to their executors on the sessions to them. A
// task whose session is not open yet is sent by a goroutine that opens it,
// so neither a caller nor a session's reader waits for a dial. A task whose
// session cannot be opened goes back to the scheduler at once; one whose
// session dies goes back when it does (see lost).
func (n *Node) sendForwards(fs []forward) {
	for _, f := range fs {
		if f.sess == nil {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.dialForward(f)
			}()
			continue
		}
		n.sendForward(f.sess, f)
	}
}

// dialForward opens the session for f, then sends f on it.
func (n *Node) dialForward(f forward) {
	ss, err := n.sessionTo(f.peer)
	if err != nil {
		n.log.Debug("hand-off failed", "task", f.t.id, "peer", f.peer, "err", err)
		n.takeBack(f.t, f.peer)
		return
	}
	n.mu.Lock()
	if !n.handedLocked(f.t, f.peer) {
		n.mu.Unlock()
		return // re-placed or finished meanwhile
	}
	f.t.sess = ss
	dead := ss.dead()
	n.mu.Unlock()
	if dead {
		// It died before the task was on it, so its end did not give
		// the task back: do it here.
		n.update(func() { n.takeBackLocked(f.t, f.peer, true) })
		return
	}
	n.sendForward(ss, f)
}

func (n *Node) sendForward(ss *session, f forward) {
	msg, err := codec.Marshal(handoff{Spec: f.t.spec, Args: f.args})
	if err != nil {
		n.log.Error("encode hand-off", "task", f.t.id, "err", err)
		ss.close(err) // gives the task back with the session's others
		return
	}
	if ss.send(frameSubmit, msg) == nil { // a failed send kills ss, which gives the task back
		n.netc.tasksOut.Add(1)
	}
}

// acceptTask takes a task another peer handed over on ss: it checks the
// spec, refuses what it cannot run, queues the rest to run here, and
// acknowledges.
func (n *Node) acceptTask(ss *session, payload []byte) {
	var h handoff
	if err := codec.Unmarshal(payload, &h); err != nil {
		// Without a spec there is no task to refuse by name: the session
		// is unusable, and closing it gives the owner its tasks back.
		n.log.Warn("bad hand-off; closing the session", "peer", ss.peer, "err", err)
		ss.close(fmt.Errorf("bad hand-off: %w", err))
		return
	}
	id := codec.Sum(h.Spec)
	refuse := func(why string) {
		n.log.Debug("refusing task", "peer", ss.peer, "task", id, "why", why)
		n.netc.refused.Add(1)
		data, err := codec.Marshal(refusal{Task: id.Bytes(), Why: why})
		if err == nil {
			_ = ss.send(frameRefuse, data)
		}
	}
	if !n.limiter(ss.peer).Allow() {
		refuse(fmt.Sprintf("peer %s hands over more than %g tasks a second", ss.peer, n.cfg.peerTaskRate()))
		return
	}
	t, err := n.taskFromSpec(h.Spec, h.Args)
	if err != nil {
		refuse(err.Error())
		return
	}
	t.owner, t.sess = ss.peer, ss
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		refuse("peer is closing")
		return
	}
	key := t.id.KeyString()
	if _, dup := n.tasks[key]; dup {
		n.mu.Unlock()
		refuse("task already here")
		return
	}
	// The scheduler refuses it when this node leaves or its queue is full
	// (a Refuse action, which forgets it and tells the owner).
	n.tasks[key] = t
	err = n.sched.Step(sched.Event{Kind: sched.Submit, Task: sched.TaskID(key), Here: true, Owner: sched.PeerID(ss.peer.String())})
	if err != nil {
		n.forgetTaskLocked(key)
	}
	n.actLocked()
	accepted := n.tasks[key] == t
	n.unlockAndAct()
	if err != nil {
		refuse(err.Error())
		return
	}
	if !accepted {
		return
	}
	n.netc.tasksIn.Add(1)
	// The acknowledgement is delayed, as TCP delays its ACKs: a task that
	// finishes within ackDelay is acknowledged by its completion, which
	// saves a frame and a write on each side for short tasks.
	time.AfterFunc(ackDelay, func() {
		if t.acked.CompareAndSwap(false, true) {
			_ = ss.send(frameAck, t.id.Bytes())
		}
	})
}

// forgetLimiter drops p's token bucket once it is gone, so the table
// holds only peers this node is connected to (a peer that comes back
// starts with a full bucket, as a new one does).
func (n *Node) forgetLimiter(p peer.ID) {
	n.lmu.Lock()
	delete(n.limits, p)
	n.lmu.Unlock()
}

// limiter returns the token bucket that bounds p's hand-offs.
func (n *Node) limiter(p peer.ID) *rate.Limiter {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	l := n.limits[p]
	if l == nil {
		if n.limits == nil {
			n.limits = make(map[peer.ID]*rate.Limiter)
		}
		r := n.cfg.peerTaskRate()
		l = rate.NewLimiter(rate.Limit(r), max(int(r), 1))
		n.limits[p] = l
	}
	return l
}

// taskFromSpec rebuilds a task sent by its owner: the task ID is the
// spec's CID, the function must be registered here, and every argument
// must be a value or a well-formed reference.
func (n *Node) taskFromSpec(spec []byte, args []handArg) (*task, error) {
	var parts codec.Tuple
	if err := codec.Unmarshal(spec, &parts); err != nil || len(parts) != 5 {
		return nil, fmt.Errorf("bad task spec")
	}
	version, _ := parts[0].(string)
	name, _ := parts[1].(string)
	if version != specVersion {
		return nil, fmt.Errorf("task spec version %q, want %q", version, specVersion)
	}
	fn, err := n.reg.Lookup(name)
	if err != nil {
		return nil, err
	}
	if len(args) != len(fn.Params) {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", name, len(fn.Params), len(args))
	}
	t := &task{id: codec.Sum(spec), fn: fn, args: make([]argument, len(args)), outputs: make([]cid.Cid, len(fn.Results)), spec: spec}
	for i, a := range args {
		if len(a.Data) > 0 {
			t.args[i].raw = a.Data
			continue
		}
		c, err := cid.Cast(a.Content)
		if err != nil || c.Type() != codec.Prefix.Codec {
			return nil, fmt.Errorf("argument %d: neither a value nor a content CID", i+1)
		}
		if a.Size < 0 {
			return nil, fmt.Errorf("argument %d: size %d is negative", i+1, a.Size)
		}
		t.args[i].content = c
		for _, h := range a.Holders {
			if p, err := peer.IDFromBytes(h); err == nil {
				t.args[i].holders = append(t.args[i].holders, p)
			}
		}
	}
	for i := range t.outputs {
		if t.outputs[i], err = outputID(t.id, i); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// report sends a remote task's outcome back to its owner on the session
// the task came on (or a new one, if that one died). Small results travel
// inline and leave this store; larger ones stay, lent to the owner and
// announced, until the owner releases them.
func (n *Node) report(t *task, outs []output, err error) {
	n.mu.Lock()
	orphaned := t.orphaned
	n.mu.Unlock()
	if orphaned {
		// Nobody to report to: the owner placed its tasks again, or is gone.
		n.log.Info("dropping the outcome of a task whose owner is gone", "task", t.id, "owner", t.owner)
		for _, o := range outs {
			_, _ = n.store.Release(o.content)
		}
		if n.net.Connected(t.owner) {
			// Back after all: a refusal makes sure it places the task
			// again (a no-op if it already did).
			_ = n.giveBack(t, "stopped when its owner seemed gone", 0)
		}
		return
	}
	var lost *argLostError
	if errors.As(err, &lost) {
		// Not the function's failure: the owner recovers the argument.
		n.log.Info("an argument of a handed task is unavailable; handing the task back", "task", t.id, "owner", t.owner, "arg", lost.arg+1, "err", lost.err)
		_ = n.giveBack(t, lost.Error(), lost.arg+1)
		return
	}
	c := completion{Task: t.id.Bytes()}
	var inline, lent []int
	if err != nil {
		c.Error = err.Error()
		var te *TaskError
		if errors.As(err, &te) {
			c.Error = te.Cause.Error()
			c.Stack = te.Stack
			c.FromFunc = te.FromFunc
		}
	} else {
		for i, o := range outs {
			size, _ := n.store.Size(o.content)
			if size > inlineMax {
				r := result{Content: o.content.Bytes(), Size: size}
				for _, l := range o.links {
					r.Links = append(r.Links, l.Bytes())
				}
				c.Results = append(c.Results, r)
				lent = append(lent, i)
				continue
			}
			data, gerr := n.store.Get(n.ctx, o.content)
			if gerr != nil {
				c.Results, c.Error, lent = nil, "result lost on the executor: "+gerr.Error(), nil
				break
			}
			c.Results = append(c.Results, result{Data: data})
			inline = append(inline, i)
		}
	}
	if len(lent) > 0 {
		n.mu.Lock()
		for _, i := range lent {
			n.loans[t.outputs[i]] = loan{owner: t.owner, content: outs[i].content}
		}
		n.mu.Unlock()
	}
	serr := n.sendCompletion(t, c)
	if serr != nil {
		n.log.Warn("cannot report task", "task", t.id, "owner", t.owner, "err", serr)
	}
	for _, i := range inline {
		_, _ = n.store.Release(outs[i].content)
	}
	if c.Error != "" && err == nil { // results not sent: release them all
		for _, o := range outs {
			_, _ = n.store.Release(o.content)
		}
	}
	for _, i := range lent {
		if serr != nil {
			n.endLoan(t.outputs[i])
			continue
		}
		n.announce(t.outputs[i], outs[i].content)
	}
}

func (n *Node) sendCompletion(t *task, c completion) error {
	msg, err := codec.Marshal(c)
	if err != nil {
		return err
	}
	t.acked.Store(true) // the completion acknowledges the task too
	if ss := t.sess; ss != nil {
		if ss.send(frameDone, msg) == nil {
			return nil
		}
	}
	ss, err := n.sessionTo(t.owner)
	if err != nil {
		return err
	}
	return ss.send(frameDone, msg)
}

// handleDone records the outcome of a task this node handed to from: inline
// results are stored (verified by their own CIDs), lent ones recorded with
// from as their holder, and the outputs resolved as for a task that ran
// here.
func (n *Node) handleDone(from peer.ID, payload []byte) {
	var c completion
	if err := codec.Unmarshal(payload, &c); err != nil {
		n.log.Warn("bad completion", "peer", from, "err", err)
		return
	}
	id, err := cid.Cast(c.Task)
	if err != nil {
		n.log.Warn("bad completion: task CID", "peer", from, "err", err)
		return
	}
	n.mu.Lock()
	t := n.tasks[id.KeyString()]
	if t == nil || !n.handedLocked(t, from) {
		n.mu.Unlock()
		n.releaseLent(from, c, nil) // stale: already re-placed or done
		return
	}
	n.mu.Unlock()
	var outs []output
	var terr error
	remote := func(msg string) error {
		return &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(), Message: msg}}
	}
	if c.Error != "" {
		terr = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(), Message: c.Error}, Stack: c.Stack, FromFunc: c.FromFunc}
	} else if len(c.Results) != len(t.outputs) {
		terr = remote(fmt.Sprintf("sent %d results, want %d", len(c.Results), len(t.outputs)))
	} else {
		outs, terr = n.storeResults(t, from, c.Results)
	}
	n.mu.Lock()
	if !n.handedLocked(t, from) { // re-placed meanwhile
		n.mu.Unlock()
		n.releaseOutputs(outs)
		n.releaseLent(from, c, nil) // the executor pins what it lent us
		return
	}
	key := sched.TaskID(id.KeyString())
	t.sess = nil
	ev := sched.Event{Kind: sched.Done, Task: key, Peer: sched.PeerID(from.String()), Retryable: c.FromFunc}
	if terr == nil {
		ev.Lent = lentOutputsLocked(n, t, outs) // the scheduler keeps their lineage
	}
	n.stepLocked(ev)
	if n.sched.Tracks(key) {
		n.actLocked() // the function failed and the task runs again
	} else {
		n.finishLocked(t, outs, terr)
	}
	n.unlockAndAct()
	if terr == nil {
		n.announceOutputs(t, outs)
	}
}

// storeResults stores inline results and records lent ones.
func (n *Node) storeResults(t *task, from peer.ID, rs []result) ([]output, error) {
	outs := make([]output, 0, len(rs))
	fail := func(i int, err error) ([]output, error) {
		n.releaseOutputs(outs)
		n.releaseLent(from, completion{Results: rs[i:]}, t.outputs[i:])
		return nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: fmt.Errorf("result %d: %w", i+1, err)}
	}
	for i, r := range rs {
		if len(r.Data) > 0 {
			content, err := n.store.PutPinned(n.ctx, r.Data)
			if err != nil {
				return fail(i, err)
			}
			outs = append(outs, output{content: content, links: linksOf(r.Data)})
			continue
		}
		content, err := cid.Cast(r.Content)
		if err != nil || content.Type() != codec.Prefix.Codec || r.Size <= 0 {
			return fail(i, &RemoteError{Peer: from.String(), Message: "result is neither a value nor a content CID"})
		}
		o := output{content: content, holder: from, size: r.Size}
		for _, l := range r.Links {
			if lc, err := cid.Cast(l); err == nil {
				o.links = append(o.links, lc)
			}
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// releaseOutputs gives back outputs not kept: local bytes leave the store,
// lent ones go back to their holder.
func (n *Node) releaseOutputs(outs []output) {
	for _, o := range outs {
		if o.holder == "" {
			_, _ = n.store.Release(o.content)
		}
	}
}

// releaseLent tells from to drop the results of c it lent us (refs are
// outputs' refs, when known; else computed from c's task).
func (n *Node) releaseLent(from peer.ID, c completion, refs []cid.Cid) {
	for i, r := range c.Results {
		if len(r.Data) > 0 {
			continue
		}
		var ref cid.Cid
		if i < len(refs) {
			ref = refs[i]
		} else if task, err := cid.Cast(c.Task); err == nil {
			ref, _ = outputID(task, i)
		}
		if ref.Defined() {
			n.wg.Add(1)
			go n.sendRelease(from, ref)
		}
	}
}

// sendRelease tells holder that this node no longer needs the lent output
// ref.
func (n *Node) sendRelease(holder peer.ID, ref cid.Cid) {
	defer n.wg.Done()
	ss, err := n.sessionTo(holder)
	if err == nil {
		err = ss.send(frameRelease, ref.Bytes())
	}
	if err != nil {
		n.log.Debug("cannot release lent result", "ref", ref, "peer", holder, "err", err)
	}
}

// loan is a result this node keeps for the owner of the task that made it.
type loan struct {
	owner   peer.ID
	content cid.Cid
}

// handleRelease drops a result lent to from.
func (n *Node) handleRelease(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.mu.Lock()
	l, ok := n.loans[ref]
	if !ok || l.owner != from {
		n.mu.Unlock()
		return
	}
	delete(n.loans, ref)
	n.mu.Unlock()
	_, _ = n.store.Release(l.content)
}

// endLoan stops keeping one lent result for sure: its bytes stay in the
// store as a cache it may evict.
func (n *Node) endLoan(ref cid.Cid) {
	n.mu.Lock()
	l, ok := n.loans[ref]
	delete(n.loans, ref)
	n.mu.Unlock()
	if ok {
		_ = n.store.Unpin(l.content)
	}
}

// endLoans ends the loans to an owner that is gone.
func (n *Node) endLoans(owner peer.ID) {
	n.mu.Lock()
	var refs []cid.Cid
	for ref, l := range n.loans {
		if l.owner == owner {
			refs = append(refs, ref)
		}
	}
	n.mu.Unlock()
	for _, ref := range refs {
		n.endLoan(ref)
	}
}

// handleRefuse gives a refused task back to the scheduler.
func (n *Node) handleRefuse(ss *session, payload []byte) {
	var r refusal
	if err := codec.Unmarshal(payload, &r); err != nil {
		n.log.Warn("bad refusal", "peer", ss.peer, "err", err)
		return
	}
	id, err := cid.Cast(r.Task)
	if err != nil {
		return
	}
	n.log.Debug("task refused", "task", id, "peer", ss.peer, "why", r.Why)
	n.mu.Lock()
	t := n.tasks[id.KeyString()]
	n.mu.Unlock()
	if t != nil && r.Arg > 0 && r.Arg <= len(t.args) && t.args[r.Arg-1].ref.Defined() {
		// The task waits for the argument, which this node gets (a Fetch
		// action: see recoverObject), and is placed again.
		ref := t.args[r.Arg-1].ref
		n.update(func() {
			if !n.handedLocked(t, ss.peer) {
				return // placed elsewhere or finished meanwhile
			}
			t.sess = nil
			n.stepLocked(sched.Event{Kind: sched.ArgLost, Task: sched.TaskID(id.KeyString()), Peer: sched.PeerID(ss.peer.String()),
				Object: sched.ObjectID(ref.KeyString())})
		})
		return
	}
	if t != nil {
		n.takeBack(t, ss.peer)
	}
}

// offerLocked queues a gossip offer of t, a task nobody took.
func (n *Node) offerLocked(t *task) {
	var bytes int64
	for _, a := range t.args {
		bytes += int64(len(a.raw))
		if o := n.objects[a.ref]; a.ref.Defined() && o != nil {
			bytes += o.size
		}
	}
	data, err := codec.Marshal(offer{Task: t.id.Bytes(), Funcs: n.funcs, Bytes: bytes})
	if err != nil {
		return
	}
	select {
	case n.offerq <- data:
	default: // offers are a hint; a full queue drops them
	}
}

// offerLoop publishes queued offers on the home shard.
func (n *Node) offerLoop() {
	defer n.loops.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case data := <-n.offerq:
			n.publish(offerKind, data)
		}
	}
}

// claimLoop claims offered tasks while this peer has idle slots: at most
// its free slots' worth a tick, so it cannot bite off more than it runs.
func (n *Node) claimLoop(sub p2p.Subscription) {
	defer n.loops.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.From == n.net.ID() {
			continue
		}
		n.netc.recv(len(msg.Data))
		var o offer
		if err := codec.Unmarshal(msg.Data, &o); err != nil {
			continue
		}
		// The scheduler claims it while this peer's idle slots exceed its
		// claims this tick (a ClaimOffer action: see claimLocked).
		n.step(sched.Event{Kind: sched.OfferHeard, Task: sched.TaskID(o.Task), Peer: sched.PeerID(msg.From.String()),
			Load: sched.Load{Funcs: o.Funcs}})
	}
}

// handleClaim lets the scheduler hand a queued task to the peer that
// claimed it (the first claim of a task wins; the rest are ignored).
func (n *Node) handleClaim(from peer.ID, payload []byte) {
	id, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.step(sched.Event{Kind: sched.Claim, Task: sched.TaskID(id.KeyString()), Peer: sched.PeerID(from.String())})
}

// Leave prepares the node to leave the swarm, as `dray node` does on
// SIGTERM before Close: it refuses new hand-offs and beacons no room, lets
// the tasks other peers handed it finish and report, and has the owners
// of the results it lends fetch them now, so that nothing only this node
// holds is lost. It returns when nothing is left, or with an error saying
// what is left when ctx ends. Without a network it does nothing.
func (n *Node) Leave(ctx context.Context) error {
	if n.net == nil {
		return nil
	}
	n.update(func() { n.stepLocked(sched.Event{Kind: sched.Leave}) }) // hands back what has not started
	pushed := make(map[cid.Cid]bool)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n.mu.Lock()
		running := 0
		for _, tk := range n.tasks {
			if tk.owner != "" && !tk.orphaned {
				running++
			}
		}
		type take struct {
			ref   cid.Cid
			owner peer.ID
		}
		var takes []take
		for ref, l := range n.loans {
			if !pushed[ref] {
				pushed[ref] = true
				takes = append(takes, take{ref, l.owner})
			}
		}
		lent := len(n.loans)
		n.mu.Unlock()
		for _, tk := range takes {
			ss, err := n.sessionTo(tk.owner)
			if err == nil {
				err = ss.send(frameTake, tk.ref.Bytes())
			}
			if err != nil {
				n.log.Warn("leaving: cannot hand a lent result to its owner", "ref", tk.ref, "owner", tk.owner, "err", err)
			}
		}
		if running == 0 && lent == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: leave: %d task(s) from other peers still running, %d lent result(s) not taken: %w", running, lent, ctx.Err())
		case <-t.C:
		}
	}
}

// handleTake fetches a result from the peer that lends it, which is
// leaving, and then releases the loan.
func (n *Node) handleTake(from peer.ID, payload []byte) {
	ref, err := cid.Cast(payload)
	if err != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, fetchTimeout)
		defer cancel()
		if err := n.localize(ctx, ref); err != nil {
			n.log.Warn("cannot take a result from a leaving peer", "ref", ref, "peer", from, "err", err)
			return
		}
		n.mu.Lock()
		o := n.objects[ref]
		mine := o != nil && o.holder == from && !o.away
		if mine {
			o.holder = "" // ours alone now: no lineage needed, no release later
			n.dropLineageLocked(ref, o, true)
		}
		n.mu.Unlock()
		if mine {
			n.wg.Add(1)
			n.sendRelease(from, ref)
		}
	}()
}

// argLostError is an argument a handed task cannot get: nobody serves its
// bytes. The executor hands the task back (a refusal naming the argument)
// rather than failing it.
type argLostError struct {
	arg int // 0-based
	err error
}

func (e *argLostError) Error() string {
	return fmt.Sprintf("argument %d cannot be fetched from any holder: %v", e.arg+1, e.err)
}

func (e *argLostError) Unwrap() error { return e.err }

// recoverObject gets ref, an argument an executor could fetch from nobody
// (a Fetch action), into this node's store, as a Get does: fetched from
// its holder, or made again from its lineage when the holder is gone. The
// scheduler then hears it is here (ObjectReady), and places the tasks
// waiting for it; if it cannot be had, they fail (ObjectFailed) with a
// DependencyError saying why.
func (n *Node) recoverObject(ref cid.Cid, executor string) {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, fetchTimeout)
	defer cancel()
	content, release, err := n.resolve(ctx, ref, nil, true)
	ev := sched.Event{Kind: sched.ObjectReady, Object: sched.ObjectID(ref.KeyString()), Holder: sched.PeerID(n.net.ID().String())}
	if err == nil {
		ev.Size, _ = n.store.Size(content)
		release()
	} else {
		n.log.Warn("an argument no executor could fetch cannot be had here either", "ref", ref, "executor", executor, "err", err)
		ev.Kind = sched.ObjectFailed
	}
	n.update(func() {
		if o := n.objects[ref]; o != nil && err != nil {
			o.lostErr = err
		}
		n.stepLocked(ev)
	})
}
