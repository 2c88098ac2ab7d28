package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
)

// PutStream stores the bytes read from r until io.EOF and returns their
// CID and size. The bytes are hashed as they arrive (on a second goroutine
// once the stream passes 1 MiB, so reading and hashing overlap). They are
// held in memory when they fit the memory budget, and otherwise written
// straight to a spill file (a temp file, renamed to the CID when
// complete); the object is never held twice in memory. sizeHint is the
// expected size (<= 0 if unknown): an accurate hint lets PutStream
// allocate the object once, without copies, and choose memory or disk up
// front. The context, and Close, are checked between reads of up to
// 1 MiB; to abort a Read that blocks, close the reader. Close does not
// wait for streams: one still running fails with ErrClosed.
func (s *Store) PutStream(ctx context.Context, r io.Reader, sizeHint int64) (cid.Cid, int64, error) {
	dg, err := newDigester(defaultPrefix)
	if err != nil {
		return cid.Undef, 0, err
	}
	return s.putStream(ctx, r, sizeHint, dg, cid.Undef)
}

// PutStreamVerified is PutStream for bytes claimed to be the object want,
// as PutVerified: on a mismatch it returns a *MismatchError and stores
// nothing. It returns the number of bytes read.
func (s *Store) PutStreamVerified(ctx context.Context, want cid.Cid, r io.Reader, sizeHint int64) (int64, error) {
	if !want.Defined() {
		return 0, fmt.Errorf("store: put stream: undefined cid")
	}
	dg, err := newDigester(want.Prefix())
	if err != nil {
		return 0, fmt.Errorf("store: put %s: %w", want, err)
	}
	_, n, err := s.putStream(ctx, r, sizeHint, dg, want)
	return n, err
}

const (
	streamChunk = 1 << 20  // bytes read (and hashed) between context checks
	minGrow     = 16 << 10 // first buffer size for streams of unknown size
	pipeDepth   = 4        // chunks in flight between reader and hasher
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

func (s *Store) putStream(ctx context.Context, r io.Reader, sizeHint int64, dg *digester, want cid.Cid) (cid.Cid, int64, error) {
	what := "store: put stream"
	if want.Defined() {
		what = "store: put " + want.String()
	}
	if err := ctx.Err(); err != nil {
		return cid.Undef, 0, fmt.Errorf("%s: %w", what, err)
	}
	// A stream is not an op that Close waits for: its reader may block
	// for as long as it likes. It checks for Close between reads and when
	// committing instead; spills it causes are ops of their own.
	if s.isClosed() {
		return cid.Undef, 0, ErrClosed
	}
	p := &streamPut{s: s, ctx: ctx, r: r, dg: dg}
	defer p.abort()
	if err := p.start(sizeHint); err != nil {
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	if err := p.run(); err != nil {
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	if err := p.finishPipe(); err != nil {
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	got, err := dg.cid()
	if err != nil {
		return cid.Undef, p.n, err
	}
	if want.Defined() && got != want {
		return cid.Undef, p.n, &MismatchError{Want: want, Got: got}
	}
	if err := p.commit(got); err != nil {
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	return got, p.n, nil
}

// streamPut is one PutStream in progress: in memory (buf, whose capacity
// is reserved in the memory budget) until it outgrows the budget, then in
// a temp file (whose size is reserved in the disk budget).
type streamPut struct {
	s   *Store
	ctx context.Context
	r   io.Reader
	dg  *digester
	n   int64 // bytes read so far

	buf    []byte
	memRes int64

	f       *os.File
	diskRes int64

	pipe *pipe // hashes (and writes) on a second goroutine; nil until needed
}

// start allocates room for a stream of sizeHint bytes.
func (p *streamPut) start(sizeHint int64) error {
	s := p.s
	switch {
	case sizeHint > s.memBudget:
		if s.dir == "" {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.tooBigErrLocked(sizeHint)
		}
		return p.toDisk(sizeHint)
	case sizeHint > 0:
		err := p.growMem(sizeHint)
		if errors.Is(err, ErrFull) && s.dir != "" {
			return p.toDisk(sizeHint)
		}
		return err
	}
	return nil
}

// run reads r to its end.
func (p *streamPut) run() error {
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		if p.s.isClosed() {
			return ErrClosed
		}
		if p.pipe != nil && p.pipe.failed.Load() {
			return p.finishPipe()
		}
		var k int
		var err error
		switch {
		case p.f != nil:
			chunk := p.pipe.getChunk()
			k, err = io.ReadFull(p.r, *chunk)
			if k == 0 {
				p.pipe.free <- chunk
			} else if werr := p.emitDisk((*chunk)[:k], chunk); werr != nil {
				return werr
			}
		case len(p.buf) < cap(p.buf):
			// Read straight into the object's buffer.
			off := len(p.buf)
			k, err = io.ReadFull(p.r, p.buf[off:min(off+streamChunk, cap(p.buf))])
			p.buf = p.buf[:off+k]
			p.emitMem(p.buf[off:])
		default:
			// The buffer is full: grow only if there is more to read.
			var one [1]byte
			k, err = io.ReadFull(p.r, one[:])
			if k > 0 {
				if gerr := p.makeRoom(); gerr != nil {
					return gerr
				}
				if p.f != nil {
					chunk := p.pipe.getChunk()
					(*chunk)[0] = one[0]
					if werr := p.emitDisk((*chunk)[:1], chunk); werr != nil {
						return werr
					}
				} else {
					p.buf = append(p.buf, one[0])
					p.emitMem(p.buf[len(p.buf)-1:])
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		default:
			return fmt.Errorf("read: %w", err)
		}
	}
}

// emitMem hashes b, a part of p.buf just read.
func (p *streamPut) emitMem(b []byte) {
	p.n += int64(len(b))
	if p.pipe == nil && p.n > streamChunk {
		p.pipe = newPipe(p.dg)
	}
	if p.pipe != nil {
		p.pipe.work <- pipeItem{b: b}
		return
	}
	_, _ = p.dg.Write(b)
}

// emitDisk hashes and writes b, a part of chunk just read.
func (p *streamPut) emitDisk(b []byte, chunk *[]byte) error {
	if need := p.n + int64(len(b)); need > p.diskRes {
		if err := p.reserveDisk(need); err != nil {
			p.pipe.free <- chunk
			return err
		}
	}
	p.n += int64(len(b))
	p.pipe.work <- pipeItem{b: b, chunk: chunk, f: p.f}
	return nil
}

// makeRoom grows the full memory buffer, or moves the stream to disk when
// the memory budget cannot hold more.
func (p *streamPut) makeRoom() error {
	s := p.s
	newCap := min(max(2*int64(cap(p.buf)), minGrow), s.memBudget)
	if newCap > int64(cap(p.buf)) {
		err := p.growMem(newCap)
		if err == nil || !errors.Is(err, ErrFull) {
			return err
		}
	}
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if int64(cap(p.buf)) >= s.memBudget {
			return s.tooBigErrLocked(p.n + 1)
		}
		return s.fullMemErrLocked(p.n + 1)
	}
	return p.toDisk(0)
}

// growMem reserves memory for, and reallocates, a buffer of newCap bytes.
// (The hasher may still be reading the old buffer; both only read it.)
func (p *streamPut) growMem(newCap int64) error {
	s := p.s
	s.mu.Lock()
	err := s.reserveMemLocked(p.ctx, newCap-p.memRes, true)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	p.memRes = newCap
	nb := make([]byte, len(p.buf), newCap)
	copy(nb, p.buf)
	p.buf = nb
	return nil
}

// toDisk moves the stream to a temp file, reserving sizeHint bytes of disk
// up front when known. The bytes read so far are written here; all later
// ones go through the pipe, in order.
func (p *streamPut) toDisk(sizeHint int64) error {
	s := p.s
	if err := p.reserveDisk(max(sizeHint, p.n)); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create spill file: %w", err)
	}
	p.f = f
	if _, err := f.Write(p.buf); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	p.buf = nil
	p.releaseMem()
	if p.pipe == nil {
		p.pipe = newPipe(p.dg)
	}
	return nil
}

// reserveDisk grows the disk reservation to total bytes.
func (p *streamPut) reserveDisk(total int64) error {
	if total <= p.diskRes {
		return nil
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.reserveDiskLocked(total - p.diskRes) {
		return s.fullDiskErrLocked(total)
	}
	p.diskRes = total
	return nil
}

func (p *streamPut) releaseMem() {
	if p.memRes == 0 {
		return
	}
	s := p.s
	s.mu.Lock()
	if !s.closed { // Close has reset the accounting
		s.memUsed -= p.memRes
	}
	s.mu.Unlock()
	p.memRes = 0
}

// finishPipe waits for the hasher to process everything sent to it.
func (p *streamPut) finishPipe() error {
	if p.pipe == nil {
		return nil
	}
	err := p.pipe.close()
	p.pipe = nil
	return err
}

// commit stores the completed stream as object c.
func (p *streamPut) commit(c cid.Cid) error {
	s := p.s
	if p.f != nil {
		f := p.f
		p.f = nil
		if err := f.Close(); err != nil {
			s.removeTemp(f.Name())
			return fmt.Errorf("write spill file: %w", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			s.removeTemp(f.Name())
			p.diskRes = 0
			return ErrClosed
		}
		s.diskUsed -= p.diskRes - p.n
		p.diskRes = 0
		return s.commitDiskLocked(c, f.Name(), p.n)
	}
	data := p.buf
	if slack := int64(cap(data)) - p.n; slack > p.n/8 {
		// The size hint was too large, or the last growth of a stream of
		// unknown size is mostly empty: do not keep the slack alive.
		data = append([]byte(nil), data...)
	}
	p.buf = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		p.memRes = 0
		return ErrClosed
	}
	s.memUsed -= p.memRes - p.n
	p.memRes = 0
	s.consumeMemReservationLocked(c, data)
	return nil
}

// abort releases whatever an unfinished stream still holds.
func (p *streamPut) abort() {
	_ = p.finishPipe()
	p.buf = nil
	p.releaseMem()
	if p.f != nil {
		_ = p.f.Close()
		p.s.removeTemp(p.f.Name())
		p.f = nil
	}
	if p.diskRes > 0 {
		p.s.mu.Lock()
		if !p.s.closed {
			p.s.diskUsed -= p.diskRes
		}
		p.s.mu.Unlock()
		p.diskRes = 0
	}
}

// pipe hashes, and writes to a file, the chunks a stream reads, on its own
// goroutine, so that reading, hashing and writing overlap.
type pipe struct {
	dg     *digester
	work   chan pipeItem
	free   chan *[]byte // chunk buffers the worker is done with
	chunks int          // chunk buffers taken from chunkPool
	done   chan struct{}
	failed atomic.Bool
	err    error // first write error; read after done
}

type pipeItem struct {
	b     []byte
	chunk *[]byte  // buffer holding b, returned to free when done
	f     *os.File // write b here after hashing it, if set
}

func newPipe(dg *digester) *pipe {
	pp := &pipe{
		dg:   dg,
		work: make(chan pipeItem, pipeDepth),
		free: make(chan *[]byte, pipeDepth),
		done: make(chan struct{}),
	}
	go pp.loop()
	return pp
}

func (pp *pipe) loop() {
	defer close(pp.done)
	for it := range pp.work {
		_, _ = pp.dg.Write(it.b)
		if it.f != nil && pp.err == nil {
			if _, err := it.f.Write(it.b); err != nil {
				pp.err = fmt.Errorf("write spill file: %w", err)
				pp.failed.Store(true)
			}
		}
		if it.chunk != nil {
			pp.free <- it.chunk
		}
	}
}

// getChunk returns a free chunk buffer, waiting for the worker when all
// pipeDepth buffers are in flight.
func (pp *pipe) getChunk() *[]byte {
	select {
	case c := <-pp.free:
		return c
	default:
	}
	if pp.chunks < pipeDepth {
		pp.chunks++
		return chunkPool.Get().(*[]byte)
	}
	return <-pp.free
}

// close waits for the worker to finish and returns its error.
func (pp *pipe) close() error {
	close(pp.work)
	<-pp.done
	for range len(pp.free) {
		chunkPool.Put(<-pp.free)
	}
	return pp.err
}
