package store

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Sentinel errors. Errors returned by the Store wrap one of these with
// details (the CID, sizes, what to do); test for them with errors.Is.
var (
	// ErrNotFound reports that the store holds no object with the CID.
	ErrNotFound = errors.New("store: not found")
	// ErrMismatch reports bytes that do not hash to the CID they were
	// claimed to have. The concrete error is a *MismatchError.
	ErrMismatch = errors.New("store: content does not match cid")
	// ErrFull reports that an object cannot be stored within the memory
	// and disk budgets, even after evicting and spilling everything that
	// may be evicted or spilled.
	ErrFull = errors.New("store: full")
	// ErrPinned reports an attempt to delete a pinned object.
	ErrPinned = errors.New("store: object is pinned")
	// ErrNotPinned reports an Unpin of an object whose pin count is zero.
	ErrNotPinned = errors.New("store: object is not pinned")
	// ErrClosed reports use of a Store after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned by Open when another Store (in this or another
	// process) uses the data directory.
	ErrLocked = errors.New("store: data directory is in use by another store")
	// ErrUnsupportedHash reports a CID whose hash function the store
	// refuses to verify (unknown, non-cryptographic, or truncated).
	ErrUnsupportedHash = errors.New("store: unsupported hash")
	// ErrInvalidConfig reports a Config that fails Validate.
	ErrInvalidConfig = errors.New("store: invalid config")
)

// MismatchError reports bytes whose hash (Got) differs from the CID they
// were claimed to have (Want). errors.Is(err, ErrMismatch) holds for it.
type MismatchError struct {
	Want cid.Cid // the CID the bytes were claimed to have
	Got  cid.Cid // the CID the bytes actually have (same prefix as Want)
}

// Error implements error.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("store: content does not match cid: want %s, got %s", e.Want, e.Got)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

func notFound(c cid.Cid) error { return fmt.Errorf("%w: %s", ErrNotFound, c) }
