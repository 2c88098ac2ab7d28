package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
)

// The swarm protocols. Load beacons travel on a GossipSub topic; tasks and
// their completions travel on direct streams, acknowledged, in bounded
// frames whose payloads are canonical CBOR.
const (
	loadTopic    = "/dray/load/1"
	taskProtocol = protocol.ID("/dray/task/1")
	doneProtocol = protocol.ID("/dray/done/1")

	// maxFrame bounds every frame of the task protocols. Arguments and
	// results travel inline for now, so it also bounds their size.
	maxFrame = 16 << 20

	beaconEvery = 250 * time.Millisecond // at most this often, on change
	beaconIdle  = 2 * time.Second        // at least this often
	tickEvery   = time.Second            // one scheduler tick
	streamWait  = 10 * time.Second       // bound on one hand-off exchange
)

// Frame types on the task protocols.
const (
	frameSubmit uint8 = iota + 1
	frameAck
	frameRefuse
	frameDone
	frameFailed
)

// beacon is what a peer gossips about its load.
type beacon struct {
	Slots int    `codec:"s"`
	Free  int    `codec:"f"`
	Queue int    `codec:"q"`
	Funcs uint64 `codec:"h"`
}

// handoff hands a task to another peer: the spec (whose CID is the task
// ID) and every argument's encoded value, dependencies included, inline.
type handoff struct {
	Spec []byte   `codec:"spec"`
	Args [][]byte `codec:"args"`
}

// completion reports a forwarded task's outcome to its owner.
type completion struct {
	Task    []byte   `codec:"task"`
	Results [][]byte `codec:"results"`
	Error   string   `codec:"error"`
	Stack   string   `codec:"stack"`
}

func init() {
	codec.MustRegister[beacon]("dray/beacon/1")
	codec.MustRegister[handoff]("dray/handoff/1")
	codec.MustRegister[completion]("dray/completion/1")
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

// startSwarm joins the load topic, serves the task protocols and starts
// the loops that feed the scheduler: beacons heard, ticks, peers lost.
func (n *Node) startSwarm() error {
	h := n.net.Libp2p()
	topic, err := n.net.Join(loadTopic)
	if err != nil {
		return fmt.Errorf("node: join load topic: %w", err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("node: subscribe load topic: %w", err)
	}
	h.SetStreamHandler(taskProtocol, n.serveTask)
	h.SetStreamHandler(doneProtocol, n.serveDone)
	h.SetStreamHandler(fetchProtocol, n.serveFetch)
	n.provides = make(chan cid.Cid, provideQueue)
	n.loops.Add(5)
	go n.provideLoop()
	go n.beaconLoop(topic)
	go n.hearLoop(sub)
	go n.tickLoop()
	go n.peerLoop()
	return nil
}

func (n *Node) stopSwarm() {
	n.closeStreams()
	h := n.net.Libp2p()
	h.RemoveStreamHandler(taskProtocol)
	h.RemoveStreamHandler(doneProtocol)
	h.RemoveStreamHandler(fetchProtocol)
}

// beaconLoop publishes this peer's load when it changed (at most every
// beaconEvery) and at least every beaconIdle.
func (n *Node) beaconLoop(topic *p2p.Topic) {
	defer n.loops.Done()
	t := time.NewTicker(beaconEvery)
	defer t.Stop()
	var last beacon
	var lastSent time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		st := n.sched.Stats()
		n.mu.Unlock()
		b := beacon{Slots: st.Slots, Free: max(st.Slots-st.Running, 0), Queue: st.Queued, Funcs: n.funcs}
		if b == last && time.Since(lastSent) < beaconIdle {
			continue
		}
		data, err := codec.Marshal(b)
		if err != nil {
			n.log.Error("encode beacon", "err", err)
			continue
		}
		if err := topic.Publish(n.ctx, data); err != nil && n.ctx.Err() == nil {
			n.log.Debug("publish beacon", "err", err)
			continue
		}
		n.netc.sent(len(data))
		last, lastSent = b, time.Now()
	}
}

// hearLoop turns beacons heard into scheduler events.
func (n *Node) hearLoop(sub *p2p.Subscription) {
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
			n.step(sched.Event{Kind: sched.Tick})
		}
	}
}

// peerLoop reports lost peers to the scheduler, which re-places their work.
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
				n.step(sched.Event{Kind: sched.PeerGone, Peer: sched.PeerID(ev.Peer.String())})
			}
		}
	}
}

// step applies one event and performs the resulting actions.
func (n *Node) step(ev sched.Event) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	if err := n.sched.Step(ev); err != nil {
		n.log.Debug("scheduler refused event", "event", ev.Kind, "err", err)
	}
	n.actLocked()
	runs, fwds := n.takeRuns(), n.takeForwards()
	n.mu.Unlock()
	n.start(runs)
	n.startForwards(fwds)
}

// forward is a task to hand to a peer once n.mu is released.
type forward struct {
	t    *task
	peer peer.ID
	args [][]byte
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
		var args [][]byte
		args, err = n.argsLocked(t)
		if err == nil {
			t.peer = pid
			n.fwds = append(n.fwds, forward{t: t, peer: pid, args: args})
			return
		}
	}
	// Cannot hand it over: the scheduler takes it back.
	n.log.Warn("cannot forward task", "task", t.id, "peer", to, "err", err)
	_ = n.sched.Step(sched.Event{Kind: sched.Refused, Task: sched.TaskID(t.id.KeyString()), Peer: to})
}

// argsLocked returns t's arguments as encoded values, reading ready
// dependencies from the store.
func (n *Node) argsLocked(t *task) ([][]byte, error) {
	args := make([][]byte, len(t.args))
	for i, a := range t.args {
		if !a.ref.Defined() {
			args[i] = a.raw
			continue
		}
		o := n.objects[a.ref]
		if o == nil || o.state != ready {
			return nil, fmt.Errorf("argument %d (%s) is not ready", i+1, a.ref)
		}
		data, err := n.store.Get(n.ctx, o.content)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		args[i] = data
	}
	return args, nil
}

func (n *Node) startForwards(fs []forward) {
	for _, f := range fs {
		n.wg.Add(1)
		go n.handOff(f)
	}
}

// handOff sends a task to its executor and waits for the acknowledgement.
// A refusal or a failed exchange gives the task back to the scheduler.
func (n *Node) handOff(f forward) {
	defer n.wg.Done()
	err := n.sendTask(f)
	if err == nil {
		return
	}
	n.log.Debug("hand-off failed", "task", f.t.id, "peer", f.peer, "err", err)
	n.step(sched.Event{Kind: sched.Refused, Task: sched.TaskID(f.t.id.KeyString()), Peer: sched.PeerID(f.peer.String())})
}

func (n *Node) sendTask(f forward) error {
	msg, err := codec.Marshal(handoff{Spec: f.t.spec, Args: f.args})
	if err != nil {
		return err
	}
	typ, reason, err := n.exchange(f.peer, taskProtocol, frameSubmit, msg)
	if err != nil {
		return err
	}
	switch typ {
	case frameAck:
		n.netc.tasksOut.Add(1)
		return nil
	case frameRefuse:
		return fmt.Errorf("refused: %s", reason)
	}
	return fmt.Errorf("unexpected frame type %d", typ)
}

// streamKey names a pool of idle streams to one peer for one protocol.
type streamKey struct {
	peer  peer.ID
	proto protocol.ID
}

// idleStreams bounds the idle streams kept per peer and protocol.
const idleStreams = 8

// exchange sends one request frame to p on proto and reads the reply,
// over a stream from the pool when one is idle (streams are reused, so an
// exchange costs one round trip, not a stream negotiation as well). A
// failed attempt — an idle stream that died, or a stream the peer reset,
// say under its resource limits — is retried on a fresh stream, a few
// times with a growing pause.
func (n *Node) exchange(p peer.ID, proto protocol.ID, typ uint8, payload []byte) (uint8, []byte, error) {
	key := streamKey{p, proto}
	pause := 20 * time.Millisecond
	var err error
	for attempt := 0; attempt < exchangeAttempts; attempt++ {
		var s network.Stream
		var pooled bool
		s, pooled, err = n.takeStream(key)
		if err == nil {
			_ = s.SetDeadline(time.Now().Add(streamWait))
			var rtyp uint8
			var reply []byte
			rtyp, reply, err = writeRead(s, typ, payload)
			if err == nil {
				n.netc.sent(len(payload))
				n.netc.recv(len(reply))
				n.putStream(key, s)
				return rtyp, reply, nil
			}
			_ = s.Reset()
			if pooled {
				continue // a stale idle stream: retry at once
			}
		}
		select {
		case <-time.After(pause):
			pause *= 4
		case <-n.ctx.Done():
			return 0, nil, err
		}
	}
	return 0, nil, err
}

// exchangeAttempts bounds the tries of one exchange.
const exchangeAttempts = 4

func writeRead(s network.Stream, typ uint8, payload []byte) (uint8, []byte, error) {
	if err := p2p.WriteFrame(s, typ, payload); err != nil {
		return 0, nil, err
	}
	return p2p.ReadFrame(s, maxFrame)
}

func (n *Node) takeStream(key streamKey) (network.Stream, bool, error) {
	n.smu.Lock()
	if ss := n.idle[key]; len(ss) > 0 {
		s := ss[len(ss)-1]
		n.idle[key] = ss[:len(ss)-1]
		n.smu.Unlock()
		return s, true, nil
	}
	n.smu.Unlock()
	ctx, cancel := context.WithTimeout(n.ctx, streamWait)
	defer cancel()
	s, err := n.net.Libp2p().NewStream(ctx, key.peer, key.proto)
	return s, false, err
}

func (n *Node) putStream(key streamKey, s network.Stream) {
	n.smu.Lock()
	if n.idle == nil {
		n.idle = make(map[streamKey][]network.Stream)
	}
	if len(n.idle[key]) < idleStreams && n.ctx.Err() == nil {
		n.idle[key] = append(n.idle[key], s)
		n.smu.Unlock()
		return
	}
	n.smu.Unlock()
	_ = s.Close()
}

// closeStreams closes every idle stream (at Close).
func (n *Node) closeStreams() {
	n.smu.Lock()
	idle := n.idle
	n.idle = nil
	n.smu.Unlock()
	for _, ss := range idle {
		for _, s := range ss {
			_ = s.Reset()
		}
	}
}

// serveIdle is how long a served stream may wait for its next frame.
const serveIdle = 5 * time.Minute

// serveFrames answers request frames on s with handle until the peer
// closes it or stays silent for serveIdle.
func (n *Node) serveFrames(s network.Stream, handle func(from peer.ID, typ uint8, payload []byte) (uint8, []byte)) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	for {
		_ = s.SetReadDeadline(time.Now().Add(serveIdle))
		typ, payload, err := p2p.ReadFrame(s, maxFrame)
		if err != nil {
			return
		}
		n.netc.recv(len(payload))
		rtyp, reply := handle(from, typ, payload)
		_ = s.SetWriteDeadline(time.Now().Add(streamWait))
		if err := p2p.WriteFrame(s, rtyp, reply); err != nil {
			return
		}
		n.netc.sent(len(reply))
	}
}

func (n *Node) serveTask(s network.Stream) { n.serveFrames(s, n.handleTask) }

func (n *Node) serveDone(s network.Stream) { n.serveFrames(s, n.handleDone) }

// handleTask accepts a task from another peer: it checks the spec, refuses
// what it cannot run, and queues the rest to run here.
func (n *Node) handleTask(from peer.ID, typ uint8, payload []byte) (uint8, []byte) {
	refuse := func(why string) (uint8, []byte) {
		n.log.Debug("refusing task", "peer", from, "why", why)
		return frameRefuse, []byte(why)
	}
	if typ != frameSubmit {
		return refuse("expected a submit frame")
	}
	var h handoff
	if err := codec.Unmarshal(payload, &h); err != nil {
		return refuse("bad hand-off: " + err.Error())
	}
	t, err := n.taskFromSpec(h.Spec, h.Args)
	if err != nil {
		return refuse(err.Error())
	}
	t.owner = from
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return refuse("peer is closing")
	}
	key := t.id.KeyString()
	if _, dup := n.tasks[key]; dup {
		n.mu.Unlock()
		return refuse("task already here")
	}
	n.tasks[key] = t
	err = n.sched.Step(sched.Event{Kind: sched.Submit, Task: sched.TaskID(key), Here: true})
	n.actLocked()
	runs, fwds := n.takeRuns(), n.takeForwards()
	n.mu.Unlock()
	if err != nil {
		return refuse(err.Error())
	}
	n.netc.tasksIn.Add(1)
	n.start(runs)
	n.startForwards(fwds)
	return frameAck, nil
}

// taskFromSpec rebuilds a task sent by its owner: the task ID is the
// spec's CID, the function must be registered here, and every argument
// must decode into its parameter type.
func (n *Node) taskFromSpec(spec []byte, args [][]byte) (*task, error) {
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
		t.args[i].raw = a
	}
	for i := range t.outputs {
		if t.outputs[i], err = outputID(t.id, i); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// report sends a remote task's outcome back to its owner and drops the
// executor's copies of the results (the owner stores them).
func (n *Node) report(t *task, outs []output, err error) {
	c := completion{Task: t.id.Bytes()}
	if err != nil {
		c.Error = err.Error()
		var te *TaskError
		if errors.As(err, &te) {
			c.Error = te.Cause.Error()
			c.Stack = te.Stack
		}
	} else {
		for _, o := range outs {
			data, gerr := n.store.Get(n.ctx, o.content)
			if gerr != nil {
				c.Results, c.Error = nil, "result lost on the executor: "+gerr.Error()
				break
			}
			c.Results = append(c.Results, data)
		}
	}
	if serr := n.sendCompletion(t.owner, c); serr != nil {
		n.log.Warn("cannot report task", "task", t.id, "owner", t.owner, "err", serr)
	}
	for _, o := range outs {
		_, _ = n.store.Release(o.content)
	}
}

func (n *Node) sendCompletion(to peer.ID, c completion) error {
	msg, err := codec.Marshal(c)
	if err != nil {
		return err
	}
	typ, _, err := n.exchange(to, doneProtocol, frameDone, msg)
	if err != nil {
		return err
	}
	if typ != frameAck {
		return fmt.Errorf("owner did not acknowledge (frame %d)", typ)
	}
	return nil
}

// serveDone records the outcome of a task this node handed to the peer on
// the other end: results are stored (verified by their own CIDs) and the
// outputs resolved, as for a task that ran here.
func (n *Node) handleDone(from peer.ID, typ uint8, payload []byte) (uint8, []byte) {
	if typ != frameDone {
		return frameRefuse, []byte("expected a done frame")
	}
	var c completion
	if err := codec.Unmarshal(payload, &c); err != nil {
		n.log.Warn("bad completion", "peer", from, "err", err)
		return frameRefuse, []byte("bad completion")
	}
	id, err := cid.Cast(c.Task)
	if err != nil {
		return frameRefuse, []byte("bad task CID")
	}
	n.mu.Lock()
	t := n.tasks[id.KeyString()]
	if t == nil || t.peer != from {
		n.mu.Unlock()
		return frameAck, nil // stale: already re-placed or done
	}
	n.mu.Unlock()
	var outs []output
	var terr error
	if c.Error != "" {
		terr = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(), Message: c.Error}, Stack: c.Stack}
	} else if len(c.Results) != len(t.outputs) {
		terr = &TaskError{Func: t.fn.Name, Task: t.id, Cause: &RemoteError{Peer: from.String(),
			Message: fmt.Sprintf("sent %d results, want %d", len(c.Results), len(t.outputs))}}
	} else {
		for i, data := range c.Results {
			var o output
			o.links = linksOf(data)
			o.content, err = n.store.PutPinned(n.ctx, data)
			if err != nil {
				for _, p := range outs {
					_, _ = n.store.Release(p.content)
				}
				outs, terr = nil, &TaskError{Func: t.fn.Name, Task: t.id, Cause: fmt.Errorf("result %d: %w", i+1, err)}
				break
			}
			outs = append(outs, o)
		}
	}
	n.mu.Lock()
	if n.tasks[id.KeyString()] != t || t.peer != from { // re-placed meanwhile
		n.mu.Unlock()
		for _, o := range outs {
			_, _ = n.store.Release(o.content)
		}
		return frameAck, nil
	}
	_ = n.sched.Step(sched.Event{Kind: sched.Done, Task: sched.TaskID(id.KeyString())})
	n.finishLocked(t, outs, terr)
	runs, fwds := n.takeRuns(), n.takeForwards()
	n.mu.Unlock()
	n.start(runs)
	n.startForwards(fwds)
	if terr == nil {
		n.announceOutputs(t, outs)
	}
	return frameAck, nil
}
