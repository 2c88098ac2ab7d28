package store

import (
	"context"
	"fmt"
)

// Test hooks; nil outside tests.
var (
	hookSpillWrite func() // called by spillLocked, with s.mu released, before writing
	hookSpillWait  func() // called by waitSpillLocked, with s.mu released, before waiting
)

// reserveMemLocked reserves n bytes of the memory budget for an object
// about to be stored in memory. To make room it drops least recently used
// unpinned objects; then, if spill is set and the store has a data
// directory, it spills least recently used pinned objects to disk (with
// s.mu released while writing). It returns with s.mu held.
// On failure nothing is reserved and the error wraps ErrFull, ErrClosed or
// the context's error.
func (s *Store) reserveMemLocked(ctx context.Context, n int64, spill bool) error {
	if n > s.memBudget {
		return s.tooBigErrLocked(n)
	}
	canSpill := spill && s.dir != ""
	for {
		if s.closed {
			return ErrClosed
		}
		if s.memUsed+n <= s.memBudget {
			s.memUsed += n
			return nil
		}
		// Without spilling, only unpinned objects can make room: do not
		// drop any of them in vain.
		if !canSpill && s.memUsed-s.memUnpinned.bytes+n > s.memBudget {
			return s.fullMemErrLocked(n)
		}
		if e := s.memUnpinned.back(); e != nil {
			s.evictMemLocked(e)
			continue
		}
		if !canSpill {
			return s.fullMemErrLocked(n)
		}
		batch, err := s.pickSpillLocked(n)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			if s.memUsed+n <= s.memBudget {
				continue // pickSpillLocked dropped copies already on disk
			}
			if s.spillsInFlight == 0 {
				return s.fullMemErrLocked(n)
			}
			// Other operations are spilling; their bytes leave memory
			// when they finish.
			if err := s.waitSpillLocked(ctx); err != nil {
				return err
			}
			continue
		}
		if err := s.spillLocked(ctx, batch); err != nil {
			return err
		}
	}
}

// evictMemLocked drops the in-memory copy of e (unpinned, or pinned with a
// spill file); e is forgotten when that was its only copy.
func (s *Store) evictMemLocked(e *entry) {
	s.releaseMemLocked(e)
	s.evicted++
	s.forgetIfGoneLocked(e)
}

// pickSpillLocked chooses least recently used pinned in-memory objects to
// spill until n more bytes would fit, reserving disk space for them and
// marking them spilling. Pinned objects that already have a spill file are
// simply dropped from memory.
func (s *Store) pickSpillLocked(n int64) ([]*entry, error) {
	var batch []*entry
	var pending int64
	for s.memUsed-pending+n > s.memBudget {
		v := s.memPinned.back()
		if v == nil {
			break
		}
		if v.onDisk {
			s.evictMemLocked(v)
			continue
		}
		if !s.reserveDiskLocked(v.size) {
			if len(batch) == 0 {
				return nil, s.fullDiskErrLocked(n)
			}
			break
		}
		s.memPinned.remove(v)
		v.spilling = true
		batch = append(batch, v)
		pending += v.size
	}
	return batch, nil
}

// spillLocked writes the spilling entries of batch to spill files with
// s.mu released, then commits them: their in-memory copies are dropped.
// It returns with s.mu held and the first write error, if any.
func (s *Store) spillLocked(ctx context.Context, batch []*entry) error {
	data := make([][][]byte, len(batch))
	for i, v := range batch {
		data[i] = v.bufs()
	}
	_ = s.beginOpLocked() // not closed: reserveMemLocked checked under this lock
	defer s.ops.Done()
	s.spillsInFlight++
	s.mu.Unlock()
	if hookSpillWrite != nil {
		hookSpillWrite()
	}

	tmps := make([]string, len(batch))
	errs := make([]error, len(batch))
	for i := range batch {
		if errs[i] = ctx.Err(); errs[i] == nil {
			tmps[i], errs[i] = s.writeTemp(ctx, data[i])
		}
	}

	s.mu.Lock()
	var first error
	for i, v := range batch {
		if err := s.finishSpillLocked(v, tmps[i], errs[i]); err != nil && first == nil {
			first = err
		}
	}
	s.spillsInFlight--
	close(s.spillDone)
	s.spillDone = make(chan struct{})
	return first
}

// finishSpillLocked commits the spill of v to temp file tmp (if werr is
// nil): the file gets its final name and v's memory is released. On
// failure v goes back to memory, unspilled.
func (s *Store) finishSpillLocked(v *entry, tmp string, werr error) error {
	v.spilling = false
	if v.deleted {
		// Deleted while spilling: Delete left the bytes reserved for us.
		s.removeTemp(tmp)
		s.diskUsed -= v.size
		s.memUsed -= v.size + v.slack()
		v.ext = nil
		return nil
	}
	err := werr
	switch {
	case err == nil && !v.onDisk:
		if err = s.renameIntoPlace(tmp, v.c); err == nil {
			v.onDisk = true
			s.diskData += v.size
			s.diskObjects++
			s.spilled++
			s.log.Debug("store: spilled pinned object", "cid", v.c, "bytes", v.size)
			break
		}
		s.diskUsed -= v.size
	default:
		// Write failed, or another operation wrote the file meanwhile.
		s.removeTemp(tmp)
		s.diskUsed -= v.size
	}
	if v.onDisk {
		s.releaseMemLocked(v)
	}
	s.linkLocked(v)
	if err != nil {
		return fmt.Errorf("store: spill %s: %w", v.c, err)
	}
	return nil
}

// reserveDiskLocked reserves n bytes of the disk budget, removing least
// recently used unpinned spill files to make room. It reports false, having
// removed nothing, when that cannot make enough room.
func (s *Store) reserveDiskLocked(n int64) bool {
	if s.diskBudget == 0 {
		s.diskUsed += n
		return true
	}
	if s.diskUsed-s.diskUnpin.bytes+n > s.diskBudget {
		return false
	}
	for s.diskUsed+n > s.diskBudget {
		s.evictDiskLocked(s.diskUnpin.back())
	}
	s.diskUsed += n
	return true
}

// evictDiskLocked removes the spill file of unpinned e to make room on disk.
func (s *Store) evictDiskLocked(e *entry) {
	if err := s.dropDiskLocked(e); err != nil {
		s.log.Warn("store: evicting spill file", "cid", e.c, "err", err)
	}
	s.diskEvicted++
	s.forgetIfGoneLocked(e)
}

func (s *Store) memAdviceLocked() string {
	if s.dir == "" {
		return "raise the memory budget (--memory), set a data directory so pinned objects can spill to disk, " +
			"or release refs (Unpin) so objects can be evicted"
	}
	return "raise the memory budget (--memory) or the disk budget, or release refs (Unpin) so objects can be evicted"
}

func (s *Store) tooBigErrLocked(n int64) error {
	if s.dir != "" {
		return fmt.Errorf("%w: object of %d bytes is larger than the whole memory budget of %d bytes; "+
			"raise the memory budget (--memory)", ErrFull, n, s.memBudget)
	}
	return fmt.Errorf("%w: object of %d bytes is larger than the whole memory budget of %d bytes "+
		"and there is no data directory to spill it to; raise the memory budget (--memory) or set a data directory",
		ErrFull, n, s.memBudget)
}

func (s *Store) fullMemErrLocked(n int64) error {
	return fmt.Errorf("%w: %d bytes needed but the memory budget of %d bytes is taken: %d bytes by pinned objects, "+
		"%d bytes by in-flight operations; %s",
		ErrFull, n, s.memBudget, s.memData-s.memUnpinned.bytes, s.memUsed-s.memData, s.memAdviceLocked())
}

// fullDiskErrLocked is the error of an object of n bytes that must go to
// disk, because memory cannot hold it, and does not fit the disk budget
// either: it names both budgets, what takes them, and what to do.
func (s *Store) fullDiskErrLocked(n int64) error {
	var mem string
	if n > s.memBudget {
		mem = fmt.Sprintf("it is larger than the whole memory budget of %d bytes", s.memBudget)
	} else {
		mem = fmt.Sprintf("the memory budget of %d bytes is taken (%d bytes by pinned objects, %d bytes by in-flight operations)",
			s.memBudget, s.memData-s.memUnpinned.bytes, s.memUsed-s.memData)
	}
	var disk string
	if n > s.diskBudget {
		disk = fmt.Sprintf("it is larger than the whole disk budget of %d bytes", s.diskBudget)
	} else {
		disk = fmt.Sprintf("the disk budget of %d bytes is taken (%d bytes by pinned spill files, %d bytes by in-flight writes)",
			s.diskBudget, s.diskData-s.diskUnpin.bytes, s.diskUsed-s.diskData)
	}
	advice := "raise the memory budget (--memory) or the disk budget (store.Config.DiskBudget)"
	if n <= s.memBudget || n <= s.diskBudget { // releasing refs can make room
		advice = "release refs (Unpin or Release) so objects can be evicted, or " + advice
	}
	return fmt.Errorf("%w: %d bytes fit neither in memory nor on disk: %s, and %s; %s", ErrFull, n, mem, disk, advice)
}
