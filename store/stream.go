package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ipfs/go-cid"
)

// PutStream stores the bytes read from r until io.EOF and returns their
// CID and size. They are held in memory when they fit the memory budget,
// and otherwise written straight to a spill file (a temp file, renamed to
// the CID when complete). Every buffer is reserved in the memory budget as
// it is allocated, and the object is never held twice in memory: PutStream
// holds at most the object plus 4 MiB.
//
// The bytes are hashed as they arrive, on a goroutine of its own once the
// stream passes 1 MiB (from the first byte when sizeHint says it will), so
// that reading overlaps hashing and the call ends about when the last byte
// arrives or is hashed, whichever is later. In memory, r is read straight
// into the object's final buffer, and the reader never waits for the
// hasher; on disk, the bytes pass through at most 4 buffers of 1 MiB, and
// writing the spill file overlaps hashing too.
//
// sizeHint is the expected size (<= 0 if unknown). An accurate hint lets
// PutStream allocate the object as one slice, without copies, and choose
// memory or disk up front; a hint larger than the memory can hold sends
// the stream to disk when there is a data directory, and otherwise is
// ignored (the stream fails with ErrFull only if its actual bytes do not
// fit). Without an accurate hint the bytes are read into segments that are
// never copied: an object of up to 4 MiB is joined into one slice at the
// end, a larger one stays in segments until its first Get joins them (see
// Get; Open streams them as they are).
//
// The context, and Close, are checked between reads of up to 1 MiB and
// while waiting for the hasher; to abort a Read that blocks, close the
// reader. Close does not wait for streams: one still running fails with
// ErrClosed.
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
	minSeg      = 16 << 10 // first segment size for streams of unknown size
	maxSeg      = 4 << 20  // largest segment added for a stream of unknown size
	pipeDepth   = 4        // chunk buffers in flight in a stream to disk
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
	if err := ctx.Err(); err != nil { // canceled while the hasher caught up
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	if err := p.commit(got); err != nil {
		return cid.Undef, p.n, fmt.Errorf("%s: %w", what, err)
	}
	return got, p.n, nil
}

// streamPut is one PutStream in progress: in memory (segs, whose
// capacities are reserved in the memory budget) until it outgrows the
// budget, then in a temp file (whose size is reserved in the disk budget).
//
// In memory, the bytes go into segments that are never copied while the
// stream is read: the first one is as large as the size hint (the whole
// object when the hint is right); after it, each new segment is as large as
// everything read so far, between minSeg and maxSeg bytes, and no larger
// than what the budget has left. A buffer that doubles by copying would
// hold its old and new copy at once (3x the object at worst, plus a final
// copy to trim its slack); segments hold the object plus at most one
// partly filled segment, and every byte of them is reserved.
type streamPut struct {
	s   *Store
	ctx context.Context
	r   io.Reader
	dg  *digester
	n   int64 // bytes read so far

	segs   [][]byte // in memory: the bytes read, in order; only the last has room
	memRes int64    // memory reserved: the capacity of segs (and copies being made)

	f       *os.File
	diskRes int64

	pipe *pipe // hashes (and writes) on goroutines of its own; nil until needed
}

// start allocates room for a stream of sizeHint bytes. The hint only
// decides where the stream starts: a stream whose hint the memory cannot
// hold goes to disk when there is a data directory, and otherwise is read
// into memory anyway, failing only if its actual bytes do not fit.
func (p *streamPut) start(sizeHint int64) error {
	s := p.s
	switch {
	case sizeHint <= 0:
	case sizeHint > s.memBudget:
		if s.dir != "" {
			return p.toDisk(sizeHint)
		}
	default:
		err := p.addSeg(sizeHint)
		if err == nil && sizeHint > streamChunk {
			p.pipe = newPipe(p.dg, nil) // large: hash on the worker from the first byte
		}
		if errors.Is(err, ErrFull) {
			if s.dir != "" {
				return p.toDisk(sizeHint)
			}
			return nil // read it anyway, segment by segment
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
		case p.segRoom() > 0:
			// Read straight into the last segment.
			i := len(p.segs) - 1
			seg := p.segs[i]
			off := len(seg)
			k, err = io.ReadFull(p.r, seg[off:min(off+streamChunk, cap(seg))])
			p.segs[i] = seg[:off+k]
			p.emitMem(p.segs[i][off:])
		default:
			// The last segment is full: add one only if there is more.
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
					i := len(p.segs) - 1
					p.segs[i] = append(p.segs[i], one[0]) // within its capacity
					p.emitMem(p.segs[i][len(p.segs[i])-1:])
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

// segRoom returns the free capacity of the last segment.
func (p *streamPut) segRoom() int {
	if len(p.segs) == 0 {
		return 0
	}
	last := p.segs[len(p.segs)-1]
	return cap(last) - len(last)
}

// emitMem hashes b, a part of a segment just read.
func (p *streamPut) emitMem(b []byte) {
	p.n += int64(len(b))
	if p.pipe == nil && p.n > streamChunk {
		p.pipe = newPipe(p.dg, nil)
	}
	if p.pipe != nil {
		p.pipe.send(pipeItem{b: b})
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
	p.pipe.send(pipeItem{b: b, chunk: chunk})
	return nil
}

// makeRoom adds a segment for more bytes, or moves the stream to disk when
// the memory budget cannot hold more.
func (p *streamPut) makeRoom() error {
	s := p.s
	// Geometric growth keeps the number of segments (and of one-byte
	// probes of the reader between them) logarithmic up to maxSeg. When
	// the budget cannot hold that much, smaller segments are tried, down
	// to what memory is left: the stream may be about to end.
	for size := min(max(p.n, minSeg), maxSeg, s.memBudget-p.memRes); size > 0; size = max(size/4, minSeg) {
		err := p.addSeg(size)
		if err == nil || !errors.Is(err, ErrFull) {
			return err
		}
		if size <= minSeg {
			break
		}
	}
	if err := p.addLastSeg(); err == nil || !errors.Is(err, ErrFull) {
		return err
	}
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if p.n+1 > s.memBudget {
			return s.tooBigErrLocked(p.n + 1)
		}
		return s.fullMemErrLocked(p.n + 1)
	}
	return p.toDisk(0)
}

// addSeg reserves memory for, and appends, an empty segment of size bytes.
func (p *streamPut) addSeg(size int64) error {
	if err := p.reserveMem(size); err != nil {
		return err
	}
	p.segs = append(p.segs, make([]byte, 0, size))
	return nil
}

// addLastSeg appends a segment of up to minSeg bytes of the memory that is
// free, or can be freed by dropping unpinned objects, without spilling.
func (p *streamPut) addLastSeg() error {
	s := p.s
	s.mu.Lock()
	size := min(s.memBudget-(s.memUsed-s.memUnpinned.bytes), minSeg)
	if size <= 0 {
		s.mu.Unlock()
		return ErrFull
	}
	err := s.reserveMemLocked(p.ctx, size, false) // keeps s.mu: no spill
	s.mu.Unlock()
	if err != nil {
		return err
	}
	p.memRes += size
	p.segs = append(p.segs, make([]byte, 0, size))
	return nil
}

// reserveMem adds n bytes to the stream's memory reservation, making room
// as reserveMemLocked does (spilling pinned objects when there is a data
// directory).
func (p *streamPut) reserveMem(n int64) error {
	s := p.s
	s.mu.Lock()
	err := s.reserveMemLocked(p.ctx, n, true)
	s.mu.Unlock()
	if err == nil {
		p.memRes += n
	}
	return err
}

// toDisk moves the stream to a temp file, reserving sizeHint bytes of disk
// up front when known. The bytes read so far are written here; all later
// ones go through a new pipe, in order.
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
	for _, seg := range p.segs {
		if _, err := f.Write(seg); err != nil {
			return fmt.Errorf("write spill file: %w", err)
		}
	}
	// The hasher may still be reading the segments: they stay reserved
	// until it is done with them.
	if err := p.finishPipe(); err != nil {
		return err
	}
	p.segs = nil
	p.releaseMem()
	p.pipe = newPipe(p.dg, f)
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

// finishPipe waits for the hasher to process everything handed to it (it
// gives up when the context is done or the store closes).
func (p *streamPut) finishPipe() error {
	if p.pipe == nil {
		return nil
	}
	err := p.pipe.finish(p.ctx, p.s.closing)
	p.pipe = nil
	return err
}

// compact trims the segments of a complete in-memory stream so that no
// more than a little slack stays allocated. An object of at most maxSeg
// bytes in several segments is copied into one slice (so that Get returns
// it without copying); otherwise only a last segment with much unused
// room is copied to its length (at most maxSeg bytes, unless the size hint
// overstated a one-segment stream). Each copy is reserved in the memory
// budget while both exist; when it cannot be, the segments stay as they
// are, and the object keeps its unused room reserved (entry.slack).
func (p *streamPut) compact() error {
	if p.n == 0 {
		p.segs = nil
		p.releaseMem()
		return nil
	}
	last := len(p.segs) - 1
	slack := int64(cap(p.segs[last]) - len(p.segs[last]))
	var keep int64 // bytes to copy: all (flatten) or the last segment
	switch {
	case len(p.segs) > 1 && p.n <= maxSeg:
		keep = p.n
	case len(p.segs) == 1 && slack > p.n/8,
		len(p.segs) > 1 && slack > minSeg:
		keep = int64(len(p.segs[last]))
	default:
		return nil
	}
	s := p.s
	s.mu.Lock()
	err := s.reserveMemLocked(p.ctx, keep, false) // a transient copy is not worth a spill
	s.mu.Unlock()
	switch {
	case errors.Is(err, ErrFull):
		return nil
	case err != nil:
		return err
	}
	p.memRes += keep
	b := make([]byte, 0, keep)
	var freed int64
	if keep == p.n {
		for _, seg := range p.segs {
			b = append(b, seg...)
			freed += int64(cap(seg))
		}
		p.segs = p.segs[:0]
	} else {
		b = append(b, p.segs[last]...)
		freed = int64(cap(p.segs[last]))
		p.segs = p.segs[:last]
	}
	p.segs = append(p.segs, b)
	s.mu.Lock()
	if !s.closed { // Close has reset the accounting
		s.memUsed -= freed
	}
	s.mu.Unlock()
	p.memRes -= freed
	return nil
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
	if err := p.compact(); err != nil {
		return err
	}
	var data []byte
	segs := p.segs
	if len(segs) <= 1 {
		if len(segs) == 1 {
			data = segs[0]
		}
		segs = nil
	}
	p.segs = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		p.memRes = 0
		return ErrClosed
	}
	// The object keeps its whole reservation: its bytes and whatever
	// unused room compact could not trim.
	slack := p.memRes - p.n
	p.memRes = 0
	s.consumeMemReservationLocked(c, data, segs, slack)
	return nil
}

// abort releases whatever an unfinished stream still holds.
func (p *streamPut) abort() {
	if p.pipe != nil {
		p.pipe.abandon()
		p.pipe = nil
	}
	p.segs = nil
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
