package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/wire"
)

// drainWait bounds how long Close waits for queued frames to be written.
const drainWait = 2 * time.Second

// errSessionClosed ends sessions when their node closes.
var errSessionClosed = errors.New("session closed")

// session is one stream to a peer, either opened by this node (out) or by
// the peer. Either side may send any frame on it.
type session struct {
	n    *Node
	peer peer.ID
	s    p2p.Stream
	out  bool // opened by this node: n.sessions[peer] while it lives
	// heard is when (unix ns) the peer last sent a frame (see
	// checkLeases); said when this node last queued one (see reapIdle).
	heard, said atomic.Int64
	// handling is set while the reader handles a frame: the peer's frames
	// wait for us then, so the lease does not run.
	handling atomic.Bool

	mu       sync.Mutex
	buf      []byte // frames waiting for the flusher
	spare    []byte
	flushing bool
	flushed  chan struct{} // closed when the writer in flight is done
	err      error         // set once: the session is dead
	once     sync.Once
}

// appendFrame appends one frame in p2p.WriteFrame's layout:
// [uvarint 1+len(payload)][typ][payload].
func appendFrame(b []byte, typ uint8, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload))+1)
	b = append(b, typ)
	return append(b, payload...)
}

// send queues one frame for the session's writer and returns at once: it
// never waits for the network. A writer goroutine runs while frames wait
// and writes everything queued in one write (group commit: frames queued
// during a write go out together in the next). A failed write kills the
// session, and the tasks sent on it go back to the scheduler (see lost);
// send itself fails only on a session already dead.
//
// Never waiting matters: frames are sent from the readers of sessions
// (answers to probes and pings, hand-offs a completion makes room for). A
// reader that blocked in a write to a peer whose reader blocked in a write
// back would deadlock both sessions once the stream buffers are full.
func (ss *session) send(typ uint8, payload []byte) error {
	ss.mu.Lock()
	if ss.err != nil {
		err := ss.err
		ss.mu.Unlock()
		return err
	}
	ss.buf = appendFrame(ss.buf, typ, payload)
	ss.n.netc.sent(len(payload))
	ss.said.Store(time.Now().UnixNano())
	if !ss.flushing {
		ss.flushing = true
		ss.flushed = make(chan struct{})
		go ss.flush()
	}
	ss.mu.Unlock()
	return nil
}

// flush writes the queued frames until none are left.
func (ss *session) flush() {
	ss.mu.Lock()
	for len(ss.buf) > 0 && ss.err == nil {
		b := ss.buf
		ss.buf = ss.spare[:0]
		ss.mu.Unlock()
		_ = ss.s.SetWriteDeadline(time.Now().Add(streamWait))
		_, err := ss.s.Write(b)
		ss.mu.Lock()
		ss.spare = nil
		if cap(b) <= 1<<20 {
			ss.spare = b[:0]
		}
		if err != nil && ss.err == nil {
			ss.err = fmt.Errorf("write to peer %s: %w", ss.peer, err)
		}
	}
	ss.flushing = false
	close(ss.flushed)
	err := ss.err
	ss.mu.Unlock()
	if err != nil {
		ss.close(err)
	}
}

// dead reports whether the session has ended (or is ending).
func (ss *session) dead() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.err != nil
}

// drain waits until the frames queued so far are written (or the session
// died), or until the deadline.
func (ss *session) drain(deadline <-chan struct{}) {
	ss.mu.Lock()
	var wait chan struct{}
	if ss.flushing {
		wait = ss.flushed
	}
	ss.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-deadline:
		}
	}
}

// readLoop dispatches the frames the peer sends until the stream ends.
func (ss *session) readLoop() {
	defer ss.n.loops.Done()
	r := bufio.NewReaderSize(ss.s, 64<<10)
	for {
		typ, payload, err := p2p.ReadFrame(r, wire.MaxSessionFrame)
		if err != nil {
			ss.close(fmt.Errorf("read from peer %s: %w", ss.peer, err))
			return
		}
		ss.n.netc.recv(len(payload))
		// Time spent handling a frame is ours, not the peer's silence.
		ss.handling.Store(true)
		ss.heard.Store(time.Now().UnixNano())
		ss.n.handleFrame(ss, typ, payload)
		ss.heard.Store(time.Now().UnixNano())
		ss.handling.Store(false)
	}
}

// close kills the session once: the stream is reset, the node forgets it,
// and tasks handed over on it go back to the scheduler.
func (ss *session) close(cause error) {
	ss.once.Do(func() {
		ss.mu.Lock()
		if ss.err == nil {
			ss.err = cause
		}
		ss.buf = nil
		ss.mu.Unlock()
		_ = ss.s.Reset()
		n := ss.n
		n.smu.Lock()
		if n.sessions[ss.peer] == ss {
			delete(n.sessions, ss.peer)
		}
		delete(n.live, ss)
		n.smu.Unlock()
		if !errors.Is(cause, errSessionClosed) && !errors.Is(cause, errSessionIdle) {
			n.log.Debug("session ended", "peer", ss.peer, "err", cause)
		}
		n.lost(ss)
	})
}

// dial is a session being opened; waiters read err after done closes.
type dial struct {
	done chan struct{}
	err  error
}

// sessionTo returns the session to p, opening one if there is none.
func (n *Node) sessionTo(p peer.ID) (*session, error) {
	n.smu.Lock()
	for {
		if n.sclosed {
			n.smu.Unlock()
			return nil, errSessionClosed
		}
		if ss := n.sessions[p]; ss != nil {
			n.smu.Unlock()
			return ss, nil
		}
		d := n.dialing[p]
		if d == nil {
			break
		}
		n.smu.Unlock()
		<-d.done
		if d.err != nil {
			return nil, d.err
		}
		n.smu.Lock()
	}
	d := &dial{done: make(chan struct{})}
	n.dialing[p] = d
	n.smu.Unlock()

	ctx, cancel := context.WithTimeout(n.ctx, streamWait)
	s, err := n.net.OpenStream(ctx, p, wire.SessionProtocol)
	cancel()
	var ss *session
	n.smu.Lock()
	delete(n.dialing, p)
	switch {
	case err != nil:
		d.err = fmt.Errorf("open session to peer %s: %w", p, err)
	case n.sclosed:
		_ = s.Reset()
		d.err = errSessionClosed
	default:
		ss = &session{n: n, peer: p, s: s, out: true}
		ss.heard.Store(time.Now().UnixNano())
		n.sessions[p] = ss
		n.live[ss] = struct{}{}
		n.loops.Add(1)
		go ss.readLoop()
	}
	n.smu.Unlock()
	close(d.done)
	return ss, d.err
}

// serveSession runs a session a peer opened.
func (n *Node) serveSession(s p2p.Stream) {
	n.smu.Lock()
	if n.sclosed {
		n.smu.Unlock()
		_ = s.Reset()
		return
	}
	ss := &session{n: n, peer: s.RemotePeer(), s: s}
	ss.heard.Store(time.Now().UnixNano())
	n.live[ss] = struct{}{}
	n.loops.Add(1)
	n.smu.Unlock()
	ss.readLoop()
}

// closeSessions ends every session (at Close).
func (n *Node) closeSessions() {
	n.smu.Lock()
	n.sclosed = true
	live := make([]*session, 0, len(n.live))
	for ss := range n.live {
		live = append(live, ss)
	}
	n.smu.Unlock()
	// Frames already queued (completions, releases) go out first, for at
	// most drainWait in all.
	ctx, cancel := context.WithTimeout(context.Background(), drainWait)
	for _, ss := range live {
		ss.drain(ctx.Done())
	}
	cancel()
	for _, ss := range live {
		ss.close(errSessionClosed)
	}
}

// lost gives back to the scheduler the tasks this node handed over on a
// session that died: they may never have arrived, and their completions
// cannot come back on it. (A completion that comes back later on another
// session finds the task re-placed and is ignored.)
func (n *Node) lost(ss *session) {
	n.update(func() {
		// Collected first: taking them back changes n.tasks.
		var ts []*task
		for _, t := range n.tasks {
			if t.sess == ss {
				ts = append(ts, t)
			}
		}
		for _, t := range ts {
			n.takeBackLocked(t, ss.peer, true)
		}
	})
}

// handleFrame dispatches one frame a peer sent on ss.
func (n *Node) handleFrame(ss *session, typ uint8, payload []byte) {
	switch typ {
	case wire.FrameSubmit:
		n.acceptTask(ss, payload)
	case wire.FrameAck:
		// Nothing to do: the task is the executor's until its completion
		// or the session's end.
	case wire.FrameRefuse:
		n.handleRefuse(ss, payload)
	case wire.FrameDone:
		n.handleDone(ss.peer, payload)
	case wire.FrameRelease:
		n.handleRelease(ss.peer, payload)
	case wire.FrameClaim:
		n.handleClaim(ss.peer, payload)
	case wire.FrameTake:
		n.handleTake(ss.peer, payload)
	case wire.FrameProbe:
		n.handleProbe(ss)
	case wire.FrameLoad:
		n.handleLoad(ss, payload)
	case wire.FramePing:
		_ = ss.send(wire.FramePong, nil)
	case wire.FrameTableWant:
		_ = ss.send(wire.FrameTable, n.table)
	case wire.FrameTable:
		n.handleTable(ss.peer, payload)
	case wire.FramePong:
		// heard is updated: that was the point.
	default:
		n.log.Warn("unknown session frame; closing the session", "peer", ss.peer, "type", typ)
		ss.close(fmt.Errorf("unknown frame type %d", typ))
	}
}
