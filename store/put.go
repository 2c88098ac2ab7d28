package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Put stores data and returns its CID (CIDv1, codec cbor 0x51, sha2-256).
//
// Put takes ownership of data without copying it: the caller must not
// modify data afterwards, and later Gets return this very slice. Putting an
// object the store already holds is a cheap no-op that marks it as just
// used. When the memory budget is exceeded Put makes room (see the package
// documentation); an object larger than the whole budget goes straight to
// a spill file. It fails with ErrFull when nothing more can be made room
// for.
func (s *Store) Put(ctx context.Context, data []byte) (cid.Cid, error) {
	if err := ctx.Err(); err != nil {
		return cid.Undef, fmt.Errorf("store: put: %w", err)
	}
	c := sum(data)
	if err := s.put(ctx, c, data, false); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// PutPinned is Put that also pins the object (as Pin) in the same critical
// section, so a concurrent Release of equal content cannot delete it in
// between.
func (s *Store) PutPinned(ctx context.Context, data []byte) (cid.Cid, error) {
	if err := ctx.Err(); err != nil {
		return cid.Undef, fmt.Errorf("store: put: %w", err)
	}
	c := sum(data)
	if err := s.put(ctx, c, data, true); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// PutVerified stores data that came from outside and is claimed to be the
// object want. It hashes data with want's own hash function and, on a
// mismatch, returns a *MismatchError (errors.Is(err, ErrMismatch)) and
// stores nothing. CIDs with a hash function that cannot verify content
// (identity, md5, sha1, non-cryptographic, truncated digests) are refused
// with an error wrapping ErrUnsupportedHash. Ownership of data passes to
// the store, as with Put.
func (s *Store) PutVerified(ctx context.Context, want cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put %s: %w", want, err)
	}
	got, err := sumAs(want, data)
	if err != nil {
		return fmt.Errorf("store: put %s: %w", want, err)
	}
	if got != want {
		return &MismatchError{Want: want, Got: got}
	}
	return s.put(ctx, want, data, false)
}

// put stores data, whose CID is c, and pins it if pin is set.
func (s *Store) put(ctx context.Context, c cid.Cid, data []byte, pin bool) error {
	n := int64(len(data))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if e := s.objects[c]; e != nil {
		s.touchLocked(e)
		if !e.inMem && s.memUsed+n <= s.memBudget {
			// Spilled: keep the caller's copy, since it fits as it is.
			s.memUsed += n
			s.adoptLocked(e, data, nil)
		}
		if pin {
			s.pinLocked(e)
		}
		s.mu.Unlock()
		return nil
	}
	if over := s.memUsed + n - s.memBudget; over > 0 && over <= s.memUnpinned.bytes {
		// Dropping unpinned objects makes room: no I/O needed.
		for s.memUsed+n > s.memBudget {
			s.evictMemLocked(s.memUnpinned.back())
		}
	}
	if s.memUsed+n <= s.memBudget {
		s.memUsed += n
		s.insertMemLocked(c, data, nil)
		if pin {
			s.pinLocked(s.objects[c])
		}
		s.mu.Unlock()
		return nil
	}
	err := s.putSlowLocked(ctx, c, data)
	if err == nil && pin {
		if e := s.objects[c]; e != nil {
			s.pinLocked(e)
		} else {
			err = fmt.Errorf("store: put %s: deleted while being stored", c)
		}
	}
	s.mu.Unlock()
	return err
}

// putSlowLocked stores data when there is no room for it in memory: it
// makes room, or writes data straight to a spill file. It is called and
// returns with s.mu held, but releases it to do I/O.
func (s *Store) putSlowLocked(ctx context.Context, c cid.Cid, data []byte) error {
	if err := s.beginOpLocked(); err != nil {
		return err
	}
	defer s.ops.Done()
	n := int64(len(data))
	if n <= s.memBudget || s.dir == "" {
		err := s.reserveMemLocked(ctx, n, true)
		if err == nil {
			s.consumeMemReservationLocked(c, data, nil, 0)
			return nil
		}
		if !errors.Is(err, ErrFull) || s.dir == "" {
			return fmt.Errorf("store: put %s: %w", c, err)
		}
		// Memory is full of objects that cannot be spilled: try disk.
	}
	if !s.reserveDiskLocked(n) {
		return fmt.Errorf("store: put %s: %w", c, s.fullDiskErrLocked(n))
	}
	s.mu.Unlock()
	tmp, err := s.writeTemp(ctx, [][]byte{data})
	s.mu.Lock()
	if err != nil {
		s.diskUsed -= n
		return fmt.Errorf("store: put %s: %w", c, err)
	}
	return s.commitDiskLocked(c, tmp, n)
}

// consumeMemReservationLocked stores data (or the segments segs, when not
// nil) as object c in memory, using their bytes, and slack more bytes of
// unused capacity, already reserved in s.memUsed (released when another
// operation stored c meanwhile).
func (s *Store) consumeMemReservationLocked(c cid.Cid, data []byte, segs [][]byte, slack int64) {
	e := s.objects[c]
	switch {
	case e == nil:
		e = s.insertMemLocked(c, data, segs)
		e.setMem(data, segs, slack)
	case !e.inMem:
		s.touchLocked(e)
		s.adoptLocked(e, data, segs)
		e.setMem(data, segs, slack)
	default:
		s.touchLocked(e)
		s.memUsed -= memLen(data, segs) + slack
	}
}
