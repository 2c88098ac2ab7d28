package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/pbnjay/memory"
)

// Config configures a Store. Start from DefaultConfig.
type Config struct {
	// Dir is the data directory; spill files live under Dir/objects/.
	// "" means memory only: nothing is spilled and nothing persists.
	Dir string
	// MemoryBudget is the number of bytes of object data kept in memory.
	MemoryBudget int64
	// DiskBudget is the number of bytes of spill files allowed under Dir;
	// 0 means unlimited. It requires Dir.
	DiskBudget int64
	// Logger receives warnings and debug events; nil means slog.Default().
	Logger *slog.Logger
}

// fallbackMemory is the memory size assumed when the system's is unknown.
const fallbackMemory = 1 << 30

// DefaultConfig returns a memory-only configuration whose MemoryBudget is
// 25% of the system's memory (1 GiB when that cannot be determined).
func DefaultConfig() Config {
	budget := int64(fallbackMemory)
	if total := memory.TotalMemory(); total > 0 {
		budget = int64(total / 4)
	}
	return Config{MemoryBudget: budget}
}

// Validate reports the first problem with c, as an error wrapping
// ErrInvalidConfig that names the field.
func (c Config) Validate() error {
	switch {
	case c.MemoryBudget <= 0:
		return fmt.Errorf("%w: MemoryBudget must be positive, got %d (use DefaultConfig for 25%% of system memory)",
			ErrInvalidConfig, c.MemoryBudget)
	case c.DiskBudget < 0:
		return fmt.Errorf("%w: DiskBudget must be >= 0 (0 = unlimited), got %d", ErrInvalidConfig, c.DiskBudget)
	case c.DiskBudget > 0 && c.Dir == "":
		return fmt.Errorf("%w: DiskBudget is %d but Dir is empty: set Dir to allow spilling to disk",
			ErrInvalidConfig, c.DiskBudget)
	}
	return nil
}

// Stats is a snapshot of a Store's contents and counters.
type Stats struct {
	Objects     int   // distinct objects held (in memory, on disk, or both)
	MemObjects  int   // objects with their bytes in memory
	MemBytes    int64 // bytes of object data in memory (<= MemoryBudget)
	DiskObjects int   // objects with a spill file
	DiskBytes   int64 // bytes of spill files
	Pinned      int   // objects with a pin count above zero

	Evicted     uint64 // in-memory copies dropped to make room
	Spilled     uint64 // objects written to spill files
	Restored    uint64 // spilled objects read back into memory
	DiskEvicted uint64 // unpinned spill files removed to make room on disk

	MemoryBudget int64 // Config.MemoryBudget
	DiskBudget   int64 // Config.DiskBudget (0 = unlimited)
}

// entry is one object. It exists in Store.objects while the object's bytes
// are in memory, on disk, or both. All fields are guarded by Store.mu.
type entry struct {
	c    cid.Cid
	size int64
	data []byte    // the bytes while inMem, unless ext holds them in segments
	ext  *memExtra // rarely set: see memExtra
	pins int32

	inMem    bool // data holds the object's bytes
	onDisk   bool // the spill file exists under its final name
	spilling bool // inMem, being written to a spill file outside the lock
	deleted  bool // removed from Store.objects; in-flight work must undo
	verified bool // bytes known to match c (false for files found by Open)

	memIn     listID // memPinnedList or memUnpinnedList while inMem && !spilling
	diskIn    listID // diskUnpinnedList while onDisk && pins == 0
	memLinks  links
	diskLinks links
}

// memExtra is what some in-memory objects read by PutStream need beyond
// entry.data. It is kept out of entry, which every small object pays for.
type memExtra struct {
	// segs holds the bytes, in order, of an object that a stream of
	// unknown size read in segments (data is nil then); its first Get
	// joins them into data.
	segs [][]byte
	// slack is the unused capacity of the object's buffers that could
	// not be trimmed; it stays reserved in Store.memUsed.
	slack int64
}

// segs returns e's segments, or nil when data holds its bytes.
func (e *entry) segs() [][]byte {
	if e.ext == nil {
		return nil
	}
	return e.ext.segs
}

// slack returns the unused capacity e keeps reserved.
func (e *entry) slack() int64 {
	if e.ext == nil {
		return 0
	}
	return e.ext.slack
}

// setMem makes data, or segs when not nil, e's in-memory bytes, with slack
// bytes of unused capacity.
func (e *entry) setMem(data []byte, segs [][]byte, slack int64) {
	e.data, e.ext = data, nil
	if segs != nil || slack != 0 {
		e.ext = &memExtra{segs: segs, slack: slack}
	}
}

func newEntry(c cid.Cid, size int64) *entry {
	return &entry{c: c, size: size, verified: true}
}

// Store is a content-addressed object store: bytes by CID, with a memory
// budget, pins, LRU eviction and spilling to files. It is safe for
// concurrent use. See the package documentation for its policies.
type Store struct {
	memBudget  int64
	diskBudget int64
	dir        string // Dir/objects, or "" when memory only
	log        *slog.Logger
	dirLock    *os.File

	// ops counts operations that do bounded I/O outside mu (spills,
	// direct writes, restores); Close waits for them.
	ops sync.WaitGroup

	closedFlag atomic.Bool // closed, readable without mu

	mu          sync.Mutex
	closed      bool
	closing     chan struct{} // closed by Close
	objects     map[cid.Cid]*entry
	memPinned   lruList // in-memory pinned objects (spill candidates)
	memUnpinned lruList // in-memory unpinned objects (eviction candidates)
	diskUnpin   lruList // unpinned objects with a spill file (disk eviction candidates)

	memUsed  int64 // memData + slack of entries + memory reserved by in-flight operations
	memData  int64
	diskUsed int64 // diskData + disk reserved by in-flight writes
	diskData int64

	memObjects, diskObjects, pinned int

	spillsInFlight int
	spillDone      chan struct{} // closed and replaced when spills finish

	evicted, spilled, restored, diskEvicted uint64
}

// Open opens a Store. With cfg.Dir set it creates Dir/objects, takes an
// exclusive lock on it (one Store per directory), removes temp files left
// by a crash, and indexes the spill files already there (by name and size,
// without reading them): they survive restarts, unpinned.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		memBudget:  cfg.MemoryBudget,
		diskBudget: cfg.DiskBudget,
		log:        cfg.Logger,
		closing:    make(chan struct{}),
		objects:    make(map[cid.Cid]*entry),
		spillDone:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.memPinned.init(memPinnedList)
	s.memUnpinned.init(memUnpinnedList)
	s.diskUnpin.init(diskUnpinnedList)
	if cfg.Dir != "" {
		s.dir = filepath.Join(cfg.Dir, "objects")
		if err := s.openDir(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the Store: it waits for in-flight operations, drops the
// in-memory objects and releases the data directory. Spill files stay for
// the next Open. Close is idempotent; other methods return ErrClosed after.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closedFlag.Store(true)
	close(s.closing)
	s.mu.Unlock()

	s.ops.Wait()

	s.mu.Lock()
	for _, e := range s.objects {
		e.deleted = true // readers still streaming must not touch the accounting
		e.setMem(nil, nil, 0)
	}
	s.objects = make(map[cid.Cid]*entry)
	s.memPinned.init(memPinnedList)
	s.memUnpinned.init(memUnpinnedList)
	s.diskUnpin.init(diskUnpinnedList)
	s.memUsed, s.memData, s.diskUsed, s.diskData = 0, 0, 0, 0
	s.memObjects, s.diskObjects, s.pinned = 0, 0, 0
	s.mu.Unlock()

	if s.dirLock != nil {
		if err := unlockDir(s.dirLock); err != nil {
			return fmt.Errorf("store: close: %w", err)
		}
	}
	return nil
}

// Stats returns a snapshot of the Store's contents and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Objects:      len(s.objects),
		MemObjects:   s.memObjects,
		MemBytes:     s.memData,
		DiskObjects:  s.diskObjects,
		DiskBytes:    s.diskData,
		Pinned:       s.pinned,
		Evicted:      s.evicted,
		Spilled:      s.spilled,
		Restored:     s.restored,
		DiskEvicted:  s.diskEvicted,
		MemoryBudget: s.memBudget,
		DiskBudget:   s.diskBudget,
	}
}

// Has reports whether the store holds the object, in memory or on disk.
func (s *Store) Has(c cid.Cid) bool {
	s.mu.Lock()
	_, ok := s.objects[c]
	s.mu.Unlock()
	return ok
}

// Size returns the object's size in bytes, and whether the store holds it.
func (s *Store) Size(c cid.Cid) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.objects[c]; ok {
		return e.size, true
	}
	return 0, false
}

// Pin increments the object's pin count. A pinned object is never dropped:
// under memory pressure it is spilled to disk instead (when Dir is set),
// and its spill file is never evicted. Pins are not persisted.
func (s *Store) Pin(c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookupLocked(c)
	if err != nil {
		return err
	}
	s.pinLocked(e)
	return nil
}

// lookupLocked returns the entry of object c, or ErrClosed or a not-found
// error.
func (s *Store) lookupLocked(c cid.Cid) (*entry, error) {
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.objects[c]
	if !ok {
		return nil, notFound(c)
	}
	return e, nil
}

func (s *Store) pinLocked(e *entry) {
	if e.pins == 0 {
		s.unlinkLocked(e)
		e.pins = 1
		s.pinned++
		s.linkLocked(e)
	} else {
		e.pins++
		s.touchLocked(e)
	}
}

// Release unpins the object and, when no pins remain, deletes it from
// memory and disk, in one critical section: the counterpart of PutPinned
// for callers that own their objects' lifetimes. It reports whether the
// object was deleted.
func (s *Store) Release(c cid.Cid) (deleted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookupLocked(c)
	if err != nil {
		return false, err
	}
	unpinned, err := s.unpinLocked(c, e)
	if !unpinned {
		return false, err
	}
	return true, s.deleteLocked(c, e)
}

// Unpin decrements the object's pin count; at zero the object becomes
// evictable again (it is treated as just used). It returns an error
// wrapping ErrNotPinned when the count is already zero.
func (s *Store) Unpin(c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookupLocked(c)
	if err != nil {
		return err
	}
	_, err = s.unpinLocked(c, e)
	return err
}

// unpinLocked decrements e's pin count and reports whether it reached zero.
func (s *Store) unpinLocked(c cid.Cid, e *entry) (unpinned bool, err error) {
	switch e.pins {
	case 0:
		return false, fmt.Errorf("%w: %s", ErrNotPinned, c)
	case 1:
		s.unlinkLocked(e)
		e.pins = 0
		s.pinned--
		s.linkLocked(e)
		return true, nil
	}
	e.pins--
	return false, nil
}

// Delete removes the object from memory and disk now. It refuses a pinned
// object with an error wrapping ErrPinned: unpin it first.
func (s *Store) Delete(c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookupLocked(c)
	if err != nil {
		return err
	}
	if e.pins > 0 {
		return fmt.Errorf("%w: %s has pin count %d; unpin it before deleting", ErrPinned, c, e.pins)
	}
	return s.deleteLocked(c, e)
}

// deleteLocked removes the unpinned entry e of object c.
func (s *Store) deleteLocked(c cid.Cid, e *entry) error {
	var errs []error
	if e.onDisk {
		if err := s.dropDiskLocked(e); err != nil {
			errs = append(errs, err)
		}
	}
	if e.inMem {
		if e.spilling {
			// The spiller still holds the bytes: keep them accounted
			// (as a reservation) until it finishes and sees e.deleted.
			e.inMem = false
			e.data = nil
			if e.ext != nil {
				e.ext.segs = nil // the slack stays reserved with the bytes
			}
			s.memData -= e.size
			s.memObjects--
		} else {
			s.releaseMemLocked(e)
		}
	}
	s.removeLocked(e)
	return errors.Join(errs...)
}

// isClosed reports whether Close has been called.
func (s *Store) isClosed() bool { return s.closedFlag.Load() }

// beginOpLocked registers an operation that will do I/O outside s.mu, so
// that Close waits for it. Callers must call s.ops.Done when finished.
func (s *Store) beginOpLocked() error {
	if s.closed {
		return ErrClosed
	}
	s.ops.Add(1)
	return nil
}

// list returns the list named id.
func (s *Store) list(id listID) *lruList {
	switch id {
	case memPinnedList:
		return &s.memPinned
	case memUnpinnedList:
		return &s.memUnpinned
	case diskUnpinnedList:
		return &s.diskUnpin
	}
	return nil
}

// linkLocked links e into the lists its state calls for, where it is not
// linked yet.
func (s *Store) linkLocked(e *entry) {
	if e.inMem && !e.spilling && e.memIn == noList {
		if e.pins > 0 {
			s.memPinned.pushFront(e)
		} else {
			s.memUnpinned.pushFront(e)
		}
	}
	if e.onDisk && e.pins == 0 && e.diskIn == noList {
		s.diskUnpin.pushFront(e)
	}
}

// unlinkMemLocked removes e from its memory list, if any.
func (s *Store) unlinkMemLocked(e *entry) {
	if e.memIn != noList {
		s.list(e.memIn).remove(e)
	}
}

// unlinkDiskLocked removes e from the disk list, if there.
func (s *Store) unlinkDiskLocked(e *entry) {
	if e.diskIn != noList {
		s.diskUnpin.remove(e)
	}
}

// unlinkLocked removes e from every list.
func (s *Store) unlinkLocked(e *entry) {
	s.unlinkMemLocked(e)
	s.unlinkDiskLocked(e)
}

// touchLocked marks e as just used.
func (s *Store) touchLocked(e *entry) {
	if e.memIn != noList {
		s.list(e.memIn).moveToFront(e)
	}
	if e.diskIn != noList {
		s.diskUnpin.moveToFront(e)
	}
}

// insertMemLocked adds a new in-memory object whose bytes are already
// reserved in s.memUsed: data, or the segments segs when not nil.
func (s *Store) insertMemLocked(c cid.Cid, data []byte, segs [][]byte) *entry {
	e := newEntry(c, memLen(data, segs))
	s.adoptLocked(e, data, segs)
	s.objects[c] = e
	return e
}

// adoptLocked makes data (or segs, when not nil) the in-memory copy of e
// (which must not be in memory); its bytes must already be reserved in
// s.memUsed.
func (s *Store) adoptLocked(e *entry, data []byte, segs [][]byte) {
	if data == nil && segs == nil {
		data = []byte{}
	}
	s.unlinkMemLocked(e)
	e.setMem(data, segs, 0)
	e.inMem = true
	e.verified = true
	s.memData += e.size
	s.memObjects++
	if e.pins > 0 {
		s.memPinned.pushFront(e)
	} else {
		s.memUnpinned.pushFront(e)
	}
}

// releaseMemLocked drops e's in-memory copy (e must be inMem, not
// spilling) and returns its bytes to the budget. It does not remove e.
func (s *Store) releaseMemLocked(e *entry) {
	s.unlinkMemLocked(e)
	s.memUsed -= e.size + e.slack()
	e.setMem(nil, nil, 0)
	e.inMem = false
	s.memData -= e.size
	s.memObjects--
}

// memLen returns the number of bytes in data, or in segs when not nil.
func memLen(data []byte, segs [][]byte) int64 {
	if segs == nil {
		return int64(len(data))
	}
	var n int64
	for _, b := range segs {
		n += int64(len(b))
	}
	return n
}

// bufs returns e's in-memory bytes as a list of buffers (one, unless the
// object is held in segments). The buffers are immutable.
func (e *entry) bufs() [][]byte {
	if segs := e.segs(); segs != nil {
		return segs
	}
	return [][]byte{e.data}
}

// removeLocked forgets e; the caller has released its memory and file.
func (s *Store) removeLocked(e *entry) {
	s.unlinkLocked(e)
	if e.pins > 0 {
		s.pinned--
	}
	e.deleted = true
	if s.objects[e.c] == e {
		delete(s.objects, e.c)
	}
}

// forgetIfGoneLocked removes e when it holds its bytes nowhere any more.
func (s *Store) forgetIfGoneLocked(e *entry) {
	if !e.inMem && !e.onDisk && !e.spilling && !e.deleted {
		s.removeLocked(e)
	}
}

// waitSpillLocked waits, with s.mu released, until some in-flight spill
// finishes, ctx is done or the store closes.
func (s *Store) waitSpillLocked(ctx context.Context) error {
	ch := s.spillDone
	s.mu.Unlock()
	defer s.mu.Lock()
	if hookSpillWait != nil {
		hookSpillWait()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrClosed
	}
}
