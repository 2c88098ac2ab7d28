// Package node is a dray peer: it wires the scheduler (sched), the object
// store (store) and the value codec (codec) into a worker pool behind Ray's
// remote-function API.
//
// Register Go functions in a Registry, start a Node, and call them: a call
// returns one ref per result at once and never runs the function in the
// caller; Get waits for a value, Put stores one, Wait returns the refs that
// are ready. A ref passed as a top-level argument is a dependency (the task
// waits for it and receives the value); a ref nested inside a value arrives
// as a ref. Functions can call functions: a task blocked in Get gives its
// worker slot back, so nested calls cannot deadlock the pool.
//
// IDs are CIDs. A task's ID is the CID of its spec (function, arguments,
// and a nonce unless the function is Deterministic); output i's ref is the
// CID of {task, i}, known before the task runs; a put value's ref is the
// CID of its encoding. Calls of a deterministic function with equal
// arguments share one task and are answered from the store.
//
// A failed task (error, panic, undecodable argument, failed dependency)
// fails every Get of its refs with a *TaskError naming the function, the
// task and the cause; the node keeps running. Refs are counted: when no copy
// of a ref is reachable any more, the garbage collector's cleanup releases
// the object and its bytes leave the store. ObjectRef.Release does that at
// once, without waiting for a collection; a ref used after it fails with a
// *ReleasedError. Node.Shutdown stops a node gracefully, Close at once.
package node
