package wire

import "github.com/dray-project/dray/codec"

// Beacon is what a peer says about its load: gossiped on its load topic
// and sent on a session in answer to a probe (FrameLoad).
type Beacon struct {
	Slots int    `codec:"s"` // worker slots
	Free  int    `codec:"f"` // slots free
	Queue int    `codec:"q"` // tasks waiting for a slot
	Funcs uint64 `codec:"h"` // digest of the function Table: a peer that has not seen it asks for it (FrameTableWant)
	Held  int64  `codec:"b"` // bytes of objects in the store
}

// Handoff hands a task to another peer (FrameSubmit): the spec (whose CID
// is the task ID, see SpecVersion) and every argument, inline or by
// reference.
type Handoff struct {
	Spec []byte `codec:"spec"`
	Args []Arg  `codec:"args"`
	// Needs are the resources the task needs where it runs (gpu: 1).
	Needs map[string]int `codec:"needs,omitempty"`
}

// Arg is one argument of a handed-off task: its encoded value (Data), or,
// for a value above the inline limit or one the owner does not hold, its
// content CID, size and the peers that hold it (peer IDs as bytes).
type Arg struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Holders [][]byte `codec:"p"`
}

// Completion reports a handed-off task's outcome to its owner
// (FrameDone): one Result per output, or the error.
type Completion struct {
	Task    []byte   `codec:"task"`
	Results []Result `codec:"results"`
	Error   string   `codec:"error"`
	Stack   string   `codec:"stack"`
	// FromFunc: the function itself failed (node.TaskError.FromFunc).
	FromFunc bool `codec:"u,omitempty"`
}

// Result is one result of a completed task: its encoded value (Data), or,
// above the inline limit, the content CID and size of the bytes the
// executor keeps for the owner (lends it), with the refs inside the value.
type Result struct {
	Data    []byte   `codec:"d"`
	Content []byte   `codec:"c"`
	Size    int64    `codec:"n"`
	Links   [][]byte `codec:"l"`
}

// Refusal says why an executor did not take a task, or gives it back
// (FrameRefuse).
type Refusal struct {
	Task []byte `codec:"t"`
	Why  string `codec:"w"`
	// Arg, when not 0, is the 1-based index of an argument passed by
	// reference that the executor could fetch from nobody: the owner
	// makes it available again (fetching it itself, or rebuilding it
	// from its lineage) before it places the task again.
	Arg int `codec:"a,omitempty"`
}

// Offer announces a task nobody took (gossiped on the offer topic): an
// idle peer that offers its function claims it on a session to the owner
// (FrameClaim), and the owner hands it to the first claimer.
type Offer struct {
	Task  []byte `codec:"t"`
	Func  uint64 `codec:"h"` // the task's function (FuncInfo.ID): peers that offer it claim it
	Bytes int64  `codec:"n"` // input bytes (locality)
}

// Want asks a holder for an object's bytes from Offset on (FrameWant; a
// fetch that lost its holder resumes from another at the offset it
// reached).
type Want struct {
	Ref    []byte `codec:"r"`
	Offset int64  `codec:"o"`
}

// Have announces the bytes that follow on a fetch stream (FrameHave): the
// whole object's content CID and size; the bytes start at the wanted
// offset.
type Have struct {
	Content []byte `codec:"c"`
	Size    int64  `codec:"n"`
}

func init() {
	codec.MustRegister[Beacon]("dray/beacon/1")
	codec.MustRegister[Handoff]("dray/handoff/2")
	codec.MustRegister[Arg]("dray/arg/1")
	codec.MustRegister[Completion]("dray/completion/1")
	codec.MustRegister[Result]("dray/result/1")
	codec.MustRegister[Refusal]("dray/refusal/1")
	codec.MustRegister[Offer]("dray/offer/2")
	codec.MustRegister[Want]("dray/want/1")
	codec.MustRegister[Have]("dray/have/1")
	codec.MustRegister[Table]("dray/table/1")
	codec.MustRegister[FuncInfo]("dray/funcinfo/1")
}

// Table is a peer's function table (FrameTable): what it offers, named by
// Digest in its Beacons (Beacon.Funcs). A peer fetches it once per digest.
type Table struct {
	Digest uint64     `codec:"d"`
	Funcs  []FuncInfo `codec:"f"`
	// Resources are the peer's named quantities beside its slots.
	Resources map[string]int `codec:"r,omitempty"`
}

// FuncInfo is one function a peer offers: its identity (name, the codec
// names of its parameter and result types, version), hashed into ID, and
// what `dray functions` shows of it.
type FuncInfo struct {
	ID            uint64   `codec:"i"`
	Name          string   `codec:"n"`
	Params        []string `codec:"p"`
	Results       []string `codec:"r"`
	Version       string   `codec:"v,omitempty"`
	Deterministic bool     `codec:"x,omitempty"`
	Doc           string   `codec:"o,omitempty"`
}
