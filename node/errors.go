package node

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/ipfs/go-cid"
)

// Sentinel errors of the node.
var (
	ErrClosed     = errors.New("node: closed")
	ErrUnknownRef = errors.New("node: unknown ref")
	ErrArgCount   = errors.New("node: wrong number of arguments")
	// ErrNoSwarm reports a call pinned to another peer (CallOptions.On)
	// on a node that has no network.
	ErrNoSwarm = errors.New("node: this node is not in a swarm")
	// ErrObjectLost is matched by an ObjectLostError.
	ErrObjectLost = errors.New("node: object lost")
	// ErrReleased is matched by a ReleasedError: a ref used after
	// ObjectRef.Release.
	ErrReleased = errors.New("node: ref released")
)

// ReleasedError reports a ref used after Release was called on it or a
// copy of it (errors.Is ErrReleased).
type ReleasedError struct {
	Op  string  // what was being done: "get", "call add: argument 1", ...
	Ref cid.Cid // the ref
}

func (e *ReleasedError) Error() string {
	return fmt.Sprintf("node: %s: ref %s was released (Release was called on it or a copy of it): "+
		"keep the ref, or get a new one with Node.Ref, while you use it", e.Op, e.Ref)
}

// Is makes errors.Is(err, ErrReleased) true.
func (e *ReleasedError) Is(target error) bool { return target == ErrReleased }

// UnknownRefError reports a ref this node has no object for (errors.Is
// ErrUnknownRef).
type UnknownRefError struct {
	Op  string  // what was being done: "get", "call add: argument 1", ...
	Ref cid.Cid // the ref
}

func (e *UnknownRefError) Error() string {
	return fmt.Sprintf("node: %s: unknown ref %s: this node has no object with that ID "+
		"(it was released when the last ref to it was dropped, or another peer made it); "+
		"keep a ref alive while you need its object", e.Op, e.Ref)
}

// Is makes errors.Is(err, ErrUnknownRef) true.
func (e *UnknownRefError) Is(target error) bool { return target == ErrUnknownRef }

// TaskError is what every Get of a failed task's outputs returns: the
// function returned an error, panicked, or could not decode its arguments,
// or one of its dependencies failed.
type TaskError struct {
	Func  string  // function name
	Task  cid.Cid // task CID
	Cause error   // what went wrong
	// Panic is the recovered value when the function panicked, and Stack
	// the goroutine's stack at the panic.
	Panic any
	Stack string
	// FromFunc says the function itself failed: it returned the error or
	// panicked (not a lost executor, a failed dependency or arguments it
	// could not decode). Only such failures are retried, and only when
	// asked (RetryErrors, CallOptions.RetryErrors).
	FromFunc bool
}

func (e *TaskError) Error() string {
	msg := fmt.Sprintf("node: task %s (%s) failed: %v", e.Func, e.Task, e.Cause)
	if e.Stack != "" {
		msg += "\n" + e.Stack
	}
	return msg
}

// Unwrap returns the cause.
func (e *TaskError) Unwrap() error { return e.Cause }

// PanicError is the cause of a TaskError when the function panicked.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// DependencyError is the cause of a TaskError when an argument's producer
// failed, so the task never ran.
type DependencyError struct {
	Arg int     // 0-based argument index
	Ref cid.Cid // the argument's ref
	Err error   // the producer's error
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("argument %d (%s) failed: %v", e.Arg+1, e.Ref, e.Err)
}

// Unwrap returns the producer's error.
func (e *DependencyError) Unwrap() error { return e.Err }

// ArgumentError reports an argument that does not decode into the
// parameter type the function declares.
type ArgumentError struct {
	Index int // 0-based
	Want  reflect.Type
	Err   error
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("argument %d: cannot use value as %s: %v", e.Index+1, typeName(e.Want), e.Err)
}

// Unwrap returns the decode error.
func (e *ArgumentError) Unwrap() error { return e.Err }

// ExecutorLostError is the cause of a TaskError for a task whose executor
// was lost (its peer, or the session to it, gone) more often than the
// task's MaxRetries allowed.
type ExecutorLostError struct {
	Peer       string // the executor lost last
	Runs       int    // executors lost
	MaxRetries int
}

func (e *ExecutorLostError) Error() string {
	return fmt.Sprintf("executor %s lost; %d executor(s) lost in all, max retries %d (raise it with CallOptions.MaxRetries or the MaxRetries function option)",
		e.Peer, e.Runs, e.MaxRetries)
}

// OwnerDiedError is why a task handed to this node stops: the peer that
// owns it (that submitted it and keeps its results' records) is gone, so
// its results have nowhere to go (fate-sharing, as in Ray). The function
// sees it as context.Cause of its context; the owner, if it comes back,
// places its tasks again itself.
type OwnerDiedError struct {
	Owner string // the owner's peer ID
}

func (e *OwnerDiedError) Error() string {
	return fmt.Sprintf("owner %s is gone: the task's results have nowhere to go, so it stops (the owner places its tasks again if it comes back)", e.Owner)
}

// ObjectLostError reports a ref whose value no reachable peer holds: its
// holders are gone and it cannot be rebuilt here (this node does not own
// it, or no longer has its lineage). errors.Is(err, ErrObjectLost) holds.
type ObjectLostError struct {
	Ref cid.Cid
	Err error // the last fetch error
}

func (e *ObjectLostError) Error() string {
	return fmt.Sprintf("object %s is lost: no reachable peer holds it (its holders left; only its owner can rebuild it — call the function that made it again): %v", e.Ref, e.Err)
}

// Is matches ErrObjectLost.
func (e *ObjectLostError) Is(target error) bool { return target == ErrObjectLost }

// Unwrap returns the fetch error.
func (e *ObjectLostError) Unwrap() error { return e.Err }

// RemoteError is the cause of a TaskError for a task that failed on
// another peer.
type RemoteError struct {
	Peer    string
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("on peer %s: %s", e.Peer, e.Message) }
