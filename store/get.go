package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/ipfs/go-cid"
)

// readChunk is how much Get reads from a spill file between context checks.
const readChunk = 8 << 20

// errCorrupt marks a spill file whose content is not the object it names.
var errCorrupt = errors.New("corrupt spill file")

// Get returns the object's bytes. The slice is shared with the store (and
// with other callers): it is read-only, and the caller must not modify it.
// A spilled object is read back from its file and, when it fits the memory
// budget after dropping unpinned objects, restored to memory (its file is
// kept, so spilling it again costs nothing); otherwise the caller gets a
// private copy, so prefer Open for objects that may be large. An object
// that PutStream read in segments (a large stream of unknown size) is made
// contiguous by its first Get: that copy is reserved in the memory budget
// like any other and replaces the segments; when the budget cannot hold
// both for a moment, the caller gets a private copy instead. A missing
// object yields an error wrapping ErrNotFound that names the CID.
func (s *Store) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: get %s: %w", c, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := s.objects[c]
	if !ok {
		s.mu.Unlock()
		return nil, notFound(c)
	}
	s.touchLocked(e)
	if e.inMem {
		if e.segs() != nil {
			return s.flattenLocked(ctx, e)
		}
		data := e.data
		s.mu.Unlock()
		return data, nil
	}
	return s.restoreLocked(ctx, e)
}

// flattenLocked copies the segments of in-memory e into one slice, which
// replaces them when the memory budget can hold both during the copy.
// Called with s.mu held; releases it.
func (s *Store) flattenLocked(ctx context.Context, e *entry) ([]byte, error) {
	defer s.mu.Unlock()
	segs := e.segs()
	_ = s.beginOpLocked() // not closed: checked by the caller under this lock
	defer s.ops.Done()
	// Only unpinned objects other than e are dropped to make room (a
	// transient copy is not worth a spill). Without spilling,
	// reserveMemLocked keeps s.mu, so e is out of its list only here.
	s.unlinkMemLocked(e)
	cache := s.reserveMemLocked(ctx, e.size, false) == nil
	s.linkLocked(e)
	s.mu.Unlock()

	data := make([]byte, 0, e.size) // segments are immutable: copy unlocked
	for _, b := range segs {
		data = append(data, b...)
	}

	s.mu.Lock()
	if !cache {
		return data, nil
	}
	switch {
	case e.inMem && e.segs() != nil:
		// Still in segments (perhaps being spilled from them, which is
		// fine: the spiller holds its own reference). data takes over
		// their accounting; the reservation is returned.
		s.memUsed -= e.size + e.slack()
		e.setMem(data, nil, 0)
	case e.inMem:
		s.memUsed -= e.size // another Get flattened it meanwhile
		return e.data, nil
	case !e.deleted:
		s.adoptLocked(e, data, nil) // dropped meanwhile: keep this copy
	default:
		s.memUsed -= e.size
	}
	return data, nil
}

// restoreLocked reads spilled e back, caching it in memory if it fits.
// Called with s.mu held; releases it.
func (s *Store) restoreLocked(ctx context.Context, e *entry) ([]byte, error) {
	f, err := s.openSpilledLocked(e)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	_ = s.beginOpLocked() // not closed: checked by the caller under this lock
	defer s.ops.Done()
	cache := s.reserveMemLocked(ctx, e.size, false) == nil
	verify := !e.verified
	s.mu.Unlock()

	data, rerr := s.readSpilled(ctx, f, e, verify)
	_ = f.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if rerr != nil {
		if cache {
			s.memUsed -= e.size
		}
		if errors.Is(rerr, errCorrupt) {
			return nil, s.dropCorruptLocked(e, rerr)
		}
		return nil, fmt.Errorf("store: get %s: %w", e.c, rerr)
	}
	if verify && !e.deleted {
		e.verified = true
	}
	if cache {
		if !e.deleted && !e.inMem {
			s.adoptLocked(e, data, nil)
			s.restored++
		} else {
			s.memUsed -= e.size
		}
	}
	return data, nil
}

// openSpilledLocked opens e's spill file. Opening under s.mu guarantees the
// descriptor refers to e's file even if it is removed right after.
func (s *Store) openSpilledLocked(e *entry) (*os.File, error) {
	f, err := os.Open(s.path(e.c))
	if err == nil {
		return f, nil
	}
	// The file vanished behind our back (removed by hand?): forget it.
	s.log.Warn("store: spill file is unreadable; forgetting the object", "cid", e.c, "err", err)
	_ = s.dropDiskLocked(e)
	s.forgetIfGoneLocked(e)
	return nil, fmt.Errorf("%w: %s: spill file is unreadable: %w", ErrNotFound, e.c, err)
}

// readSpilled reads e's e.size bytes from f, checking their hash when
// verify is set. It runs without s.mu (e.c and e.size are immutable).
func (s *Store) readSpilled(ctx context.Context, f *os.File, e *entry, verify bool) ([]byte, error) {
	var dg *digester
	if verify {
		dg, _ = newDigester(e.c.Prefix()) // nil for hashes we do not verify
	}
	data := make([]byte, e.size)
	for off := int64(0); off < e.size; off += readChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+readChunk, e.size)
		if _, err := io.ReadFull(f, data[off:end]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: shorter than its %d bytes", errCorrupt, e.size)
			}
			return nil, fmt.Errorf("read spill file: %w", err)
		}
		if dg != nil {
			_, _ = dg.Write(data[off:end])
		}
	}
	if dg != nil {
		got, err := dg.cid()
		if err != nil {
			return nil, err
		}
		if got != e.c {
			return nil, fmt.Errorf("%w: content hashes to %s", errCorrupt, got)
		}
	}
	return data, nil
}

// dropCorruptLocked removes e's corrupt spill file and returns the error
// to report: the object is no longer here.
func (s *Store) dropCorruptLocked(e *entry, cause error) error {
	s.log.Error("store: removing corrupt spill file", "cid", e.c, "err", cause)
	if !e.deleted && e.onDisk {
		if err := s.dropDiskLocked(e); err != nil {
			s.log.Warn("store: removing corrupt spill file", "cid", e.c, "err", err)
		}
		s.forgetIfGoneLocked(e)
	}
	return fmt.Errorf("%w: %s: removed its spill file: %w", ErrNotFound, e.c, cause)
}

// Open returns a reader of the object's bytes and its size. A spilled
// object is streamed from its file without being loaded into memory (the
// reader is then an *os.File, so io.Copy to a socket can use sendfile); an
// in-memory one is read from memory. The caller must Close the reader. A
// spill file left by an earlier run is verified as it is read: its reader
// returns an error wrapping ErrNotFound instead of io.EOF if the content
// does not match the CID.
func (s *Store) Open(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: open %s: %w", c, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, ErrClosed
	}
	e, ok := s.objects[c]
	if !ok {
		return nil, 0, notFound(c)
	}
	s.touchLocked(e)
	if e.inMem {
		if segs := e.segs(); segs != nil {
			// net.Buffers reads (and writes to a socket with writev)
			// without copying; it consumes its own copy of the list.
			bufs := net.Buffers(append([][]byte(nil), segs...))
			return io.NopCloser(&bufs), e.size, nil
		}
		return io.NopCloser(bytes.NewReader(e.data)), e.size, nil
	}
	f, err := s.openSpilledLocked(e)
	if err != nil {
		return nil, 0, err
	}
	if !e.verified {
		if dg, err := newDigester(c.Prefix()); err == nil {
			return &verifyingReader{f: f, s: s, e: e, dg: dg}, e.size, nil
		}
	}
	return f, e.size, nil
}

// verifyingReader streams a spill file from an earlier run and checks its
// content against its CID at the end.
type verifyingReader struct {
	f    *os.File
	s    *Store
	e    *entry
	dg   *digester
	n    int64
	done bool
}

// Read implements io.Reader.
func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	_, _ = r.dg.Write(p[:n])
	r.n += int64(n)
	if errors.Is(err, io.EOF) && !r.done {
		r.done = true
		if verr := r.check(); verr != nil {
			return n, verr
		}
	}
	return n, err
}

func (r *verifyingReader) check() error {
	var cause error
	if r.n != r.e.size {
		cause = fmt.Errorf("%w: %d bytes, want %d", errCorrupt, r.n, r.e.size)
	} else if got, err := r.dg.cid(); err != nil {
		return err
	} else if got != r.e.c {
		cause = fmt.Errorf("%w: content hashes to %s", errCorrupt, got)
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if cause == nil {
		if !r.e.deleted {
			r.e.verified = true
		}
		return nil
	}
	return s.dropCorruptLocked(r.e, cause)
}

// Close implements io.Closer.
func (r *verifyingReader) Close() error { return r.f.Close() }
