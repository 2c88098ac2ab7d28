// Package store is dray's content-addressed object store on one peer: it
// keeps bytes by CID within a memory budget, counts pins (references),
// evicts unpinned objects in least-recently-used order and spills pinned
// ones to files under a data directory. It is the embedded default object
// store: there is no external server.
//
// # Names and ownership
//
// Put names an object by the CID of its bytes: CIDv1, codec cbor (0x51),
// sha2-256. Bytes that come from other peers are stored with PutVerified
// or PutStreamVerified, which hash them with the claimed CID's own hash
// function and refuse a mismatch (*MismatchError) without storing
// anything.
//
// Put takes ownership of the slice it is given and does not copy it; Get
// returns that same slice to every caller. Neither side may modify it.
// (A large object that PutStream read without an accurate size hint is
// held in segments, to avoid copying it while it grows; its first Get
// joins them into one slice, reserved in the memory budget, and returns
// that slice from then on. Open streams the segments without joining.)
//
// # Memory and eviction
//
// The bytes of the objects held in memory never add up to more than
// Config.MemoryBudget (memory reserved by in-flight operations included).
// When an object does not fit, the store makes room the way Ray's object
// store does:
//
//  1. Unpinned objects are a cache: the least recently used are dropped
//     (Get, Put and Open count as use). If an unpinned object also has a
//     spill file, the file stays.
//  2. Pinned objects are never lost: if there is still no room, the least
//     recently used pinned objects are spilled to Dir/objects/<cid>
//     (written to a temp file outside the lock, then renamed; no fsync)
//     and dropped from memory.
//  3. If that is impossible (no Dir, or the disk budget is taken by pinned
//     spill files) the operation fails with an error wrapping ErrFull that
//     names the object's size, both budgets and what takes them, and says
//     how to get room.
//
// An object larger than the whole memory budget goes straight to a spill
// file when Dir is set, and fails with ErrFull otherwise. PutStream keeps
// a stream in memory while it fits the budget and continues it in a spill
// file once it does not (or fails with ErrFull without Dir). Memory that
// streams and joins allocate is reserved in the budget before it is
// allocated, transient copies included, so the budget bounds the heap the
// store's objects use.
//
// # Spill files
//
// Get reads a spilled object back and restores it to memory when it fits
// after dropping unpinned objects (it never spills to restore); the spill
// file is kept, so spilling the object again costs nothing. Open streams a
// spilled object from its file without loading it into memory.
//
// Spill files outlive the Store: Open indexes the files already in
// Dir/objects (by name and size, without reading them) and removes temp
// files left by a crash. Pins are not persisted, so after a restart every
// object is unpinned; files from an earlier run are verified against their
// CID the first time they are read, and a corrupt one is removed (the read
// fails with ErrNotFound). Spill files stay until Delete, except that when
// writing a file would exceed Config.DiskBudget the least recently used
// unpinned spill files are removed to make room; pinned ones never are.
// One Store at a time may use a data directory (it is locked): a second
// Open of the directory, from this or another process, fails with
// ErrLocked.
//
// # Pins and deletion
//
// Pin and Unpin count references. Delete removes an object from memory and
// disk at once, but refuses a pinned object with ErrPinned: unpin it first.
// Owners that pin each object they put and drop it with their last
// reference use PutPinned and Release, which do put+pin and unpin+delete
// each in one critical section, so two owners of equal content cannot
// delete it under each other.
//
// # Concurrency
//
// A Store is safe for concurrent use. One mutex guards its index; hashing
// and file I/O happen outside it, so concurrent Puts hash in parallel and
// a spill does not stall Gets of other objects. PutStream and
// PutStreamVerified hash (and write their spill file) on goroutines of
// their own while they read, so storing a stream from the network costs
// about the slower of receiving and hashing it, not their sum.
package store
