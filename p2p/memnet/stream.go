package memnet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/p2p"
)

// Window is how many bytes a stream buffers in each direction: a writer
// blocks while the reader has this many bytes unread, as a multiplexed
// stream's flow-control window makes it.
const Window = 256 << 10

var (
	// ErrReset is matched (errors.Is) by reads and writes on a stream that
	// either end reset, or whose connection closed.
	ErrReset = errors.New("memnet: stream reset")
	// ErrStreamClosed is matched by writes after CloseWrite (or Close) on
	// this end, or after the peer stopped reading (CloseRead or Close), and
	// by reads after CloseRead on this end.
	ErrStreamClosed = errors.New("memnet: stream closed")
)

// pipe is one direction of a stream: bytes written at one end, read at the
// other. mu guards every field; changed is closed and replaced whenever the
// state changes, waking the reader and writer waiting on it.
type pipe struct {
	mu      sync.Mutex
	buf     []byte
	wclosed bool      // the writer closed: the reader gets EOF after buf
	rclosed bool      // the reader closed: writes fail, buf is dropped
	err     error     // reset: everything fails with it
	rdl     time.Time // the reader's deadline
	wdl     time.Time // the writer's deadline
	changed chan struct{}
}

func newPipe() *pipe { return &pipe{changed: make(chan struct{})} }

// broadcastLocked wakes whoever waits on p.
func (p *pipe) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitLocked waits, with p.mu released, until p changes or deadline dl
// passes; it fails once dl has passed.
func (p *pipe) waitLocked(dl time.Time) error {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	ch := p.changed
	p.mu.Unlock()
	select {
	case <-ch:
	case <-timeout:
	}
	p.mu.Lock()
	return nil
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.err != nil:
			return 0, p.err
		case p.rclosed:
			return 0, fmt.Errorf("memnet: read: %w", ErrStreamClosed)
		case len(b) == 0:
			return 0, nil
		case len(p.buf) > 0:
			k := copy(b, p.buf)
			p.buf = p.buf[k:]
			if len(p.buf) == 0 {
				p.buf = nil
			}
			p.broadcastLocked()
			return k, nil
		case p.wclosed:
			return 0, io.EOF
		}
		if err := p.waitLocked(p.rdl); err != nil {
			return 0, err
		}
	}
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := 0
	for {
		switch {
		case p.err != nil:
			return done, p.err
		case p.wclosed || p.rclosed:
			return done, fmt.Errorf("memnet: write: %w", ErrStreamClosed)
		case done == len(b):
			return done, nil
		}
		if room := Window - len(p.buf); room > 0 {
			k := min(room, len(b)-done)
			p.buf = append(p.buf, b[done:done+k]...)
			done += k
			p.broadcastLocked()
			continue
		}
		if err := p.waitLocked(p.wdl); err != nil {
			return done, err
		}
	}
}

// set changes p's state under its lock and wakes its waiters.
func (p *pipe) set(f func()) {
	p.mu.Lock()
	f()
	p.broadcastLocked()
	p.mu.Unlock()
}

func (p *pipe) closeWrite() { p.set(func() { p.wclosed = true }) }

func (p *pipe) closeRead() { p.set(func() { p.rclosed, p.buf = true, nil }) }

func (p *pipe) reset() {
	p.set(func() {
		if p.err == nil {
			p.err = fmt.Errorf("memnet: %w", ErrReset)
		}
		p.buf = nil
	})
}

// duplex is a stream's two pipes, shared by its two ends.
type duplex struct {
	ab, ba *pipe  // a (the opener) to b, b to a
	forget func() // drops the duplex from its connection, once

	mu     sync.Mutex // guards closed
	closed int        // ends closed
	once   sync.Once
}

// endClosed is called once by each end that closes; the second forgets d.
func (d *duplex) endClosed() {
	d.mu.Lock()
	d.closed++
	last := d.closed == 2
	d.mu.Unlock()
	if last {
		d.once.Do(d.forget)
	}
}

// reset resets both directions and forgets d.
func (d *duplex) reset() {
	d.ab.reset()
	d.ba.reset()
	d.once.Do(d.forget)
}

// Stream is one end of a memnet stream. Besides p2p.Stream it closes each
// direction on its own (CloseWrite, CloseRead).
type Stream struct {
	d       *duplex
	in, out *pipe
	local   peer.ID
	remote  peer.ID
	proto   string
	once    sync.Once
}

var _ p2p.Stream = (*Stream)(nil)

// ends returns the opener's end and the other's of d, from a to b.
func ends(d *duplex, a, b peer.ID, proto string) (*Stream, *Stream) {
	return &Stream{d: d, in: d.ba, out: d.ab, local: a, remote: b, proto: proto},
		&Stream{d: d, in: d.ab, out: d.ba, local: b, remote: a, proto: proto}
}

// Read reads what the peer wrote; io.EOF once it closed its side and
// everything it wrote has been read.
func (s *Stream) Read(b []byte) (int, error) { return s.in.read(b) }

// Write writes b, blocking while the peer has Window bytes unread.
func (s *Stream) Write(b []byte) (int, error) { return s.out.write(b) }

// CloseWrite closes this end for writing: the peer reads EOF after the bytes
// written so far.
func (s *Stream) CloseWrite() error {
	s.out.closeWrite()
	return nil
}

// CloseRead closes this end for reading: bytes not read are dropped, and the
// peer's writes fail.
func (s *Stream) CloseRead() error {
	s.in.closeRead()
	return nil
}

// Close closes both directions (CloseWrite and CloseRead).
func (s *Stream) Close() error {
	s.out.closeWrite()
	s.in.closeRead()
	s.once.Do(s.d.endClosed)
	return nil
}

// Reset aborts the stream at both ends: reads and writes fail with ErrReset.
func (s *Stream) Reset() error {
	s.d.reset()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline makes reads fail with os.ErrDeadlineExceeded from t on
// (zero: no deadline), pending ones included.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.in.set(func() { s.in.rdl = t })
	return nil
}

// SetWriteDeadline makes writes fail with os.ErrDeadlineExceeded from t on
// (zero: no deadline), pending ones included.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.out.set(func() { s.out.wdl = t })
	return nil
}

// RemotePeer returns the peer at the other end.
func (s *Stream) RemotePeer() peer.ID { return s.remote }

// Protocol returns the stream's protocol.
func (s *Stream) Protocol() string { return s.proto }
