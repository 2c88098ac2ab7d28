package api

import (
	"errors"
	"fmt"
)

// ErrNoNode is matched (errors.Is) by the error of a Client call when
// nothing answers at the API address (see NoNodeError).
var ErrNoNode = errors.New("api: no dray node")

// Error codes of RemoteError.Code: what kind of request failed.
const (
	CodeBadRequest      = "bad_request"      // malformed body, bad parameter
	CodeTooLarge        = "too_large"        // request body above the limit
	CodeUnknownFunction = "unknown_function" // no function of that name
	CodeArgCount        = "arg_count"        // wrong number of arguments
	CodeBadArgument     = "bad_argument"     // an argument does not fit its parameter
	CodeUnknownRef      = "unknown_ref"      // no object with that CID
	CodeTaskFailed      = "task_failed"      // the task (or a dependency) failed
	CodeNotBytes        = "not_bytes"        // raw bytes asked of a value that is not a byte string
	CodeTimeout         = "timeout"          // the wait timed out
	CodeClosed          = "closed"           // the node is shutting down
	CodeBusy            = "busy"             // too many requests in flight: retry after the Retry-After seconds
	CodeNotFound        = "not_found"        // no such endpoint
	CodeUnauthorized    = "unauthorized"     // missing or wrong API token
	CodeNoSwarm         = "no_swarm"         // a call pinned to a peer on a node without a network
	CodeInternal        = "internal"         // anything else
)

// NoNodeError reports that nothing answered at Addr. It matches ErrNoNode.
type NoNodeError struct {
	Addr string // the API address dialled
	Err  error  // the dial error
}

// Error implements error.
func (e *NoNodeError) Error() string {
	return fmt.Sprintf("api: no dray node at %s: %v", e.Addr, e.Err)
}

// Unwrap returns the dial error.
func (e *NoNodeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoNode) true.
func (e *NoNodeError) Is(target error) bool { return target == ErrNoNode }

// RemoteError is an error answer of the server: its HTTP status, a code
// (one of the Code constants, or "" from a server that sent none) and the
// server's message, which Error returns unchanged.
type RemoteError struct {
	Status  int
	Code    string
	Message string
}

// Error implements error.
func (e *RemoteError) Error() string { return e.Message }
