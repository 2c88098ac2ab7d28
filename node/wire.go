package node

import (
	"fmt"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
)

// beacon is what a peer gossips about its load.
type beacon struct {
	Slots int    `codec:"s"`
	Free  int    `codec:"f"`
	Queue int    `codec:"q"`
	Funcs uint64 `codec:"h"`
	Held  int64  `codec:"b"` // bytes of objects in the store
}

// handoff hands a task to another peer: the spec (whose CID is the task
// ID) and every argument, inline or by reference.
type handoff struct {
	Spec []byte    `codec:"spec"`
	Args []handArg `codec:"args"`
}

// handArg is one argument of a handed-off task: its encoded value (Data),
// or, for a value above inlineMax or one this peer does not hold, its
// content CID, size and the peers that hold it.
type handArg struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Holders [][]byte `codec:"p"`
}

// completion reports a forwarded task's outcome to its owner.
type completion struct {
	Task    []byte   `codec:"task"`
	Results []result `codec:"results"`
	Error   string   `codec:"error"`
	Stack   string   `codec:"stack"`
	// FromFunc: the function itself failed (TaskError.FromFunc).
	FromFunc bool `codec:"u,omitempty"`
}

// result is one result of a completed task: its encoded value (Data), or,
// above inlineMax, the content CID and size of the bytes the executor
// keeps for the owner, with the refs inside the value.
type result struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Links   [][]byte `codec:"l"`
}

// refusal says why an executor did not take a task.
type refusal struct {
	Task []byte `codec:"t"`
	Why  string `codec:"w"`
	// Arg, when not 0, is the 1-based index of an argument passed by
	// reference that the executor could fetch from nobody: the owner
	// makes it available again (fetching it itself, or rebuilding it
	// from its lineage) before it places the task again.
	Arg int `codec:"a,omitempty"`
}

// offer announces a task nobody took: an idle peer with the same function
// table claims it on a session to the owner, and the owner hands it to
// the first claimer.
type offer struct {
	Task  []byte `codec:"t"`
	Funcs uint64 `codec:"h"`
	Bytes int64  `codec:"n"` // input bytes (locality)
}

func init() {
	codec.MustRegister[beacon]("dray/beacon/1")
	codec.MustRegister[handoff]("dray/handoff/1")
	codec.MustRegister[handArg]("dray/arg/1")
	codec.MustRegister[completion]("dray/completion/1")
	codec.MustRegister[result]("dray/result/1")
	codec.MustRegister[refusal]("dray/refusal/1")
	codec.MustRegister[offer]("dray/offer/1")
}

// RemoteError is the cause of a TaskError for a task that failed on
// another peer.
type RemoteError struct {
	Peer    string
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("on peer %s: %s", e.Peer, e.Message) }

// load is what b says about the load (the bytes held change with every
// object and alone do not warrant a beacon).
func (b beacon) load() sched.Load {
	return sched.Load{Slots: b.Slots, Free: b.Free, Queue: b.Queue, Funcs: b.Funcs}
}
