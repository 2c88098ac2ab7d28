package node

import (
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/wire"
)

// FuzzSessionPayloads feeds arbitrary bytes to every decoder of the
// session and fetch protocols' payloads (what a hostile peer controls) and
// to the rebuilding of a handed-off task: nothing may panic, and a task
// that is accepted must be well formed (its ID is its spec's CID, one
// argument per parameter, each a value or a content CID).
func FuzzSessionPayloads(f *testing.F) {
	reg := NewRegistry()
	if err := reg.Register("add", func(a, b int64) int64 { return a + b }); err != nil {
		f.Fatal(err)
	}
	n := &Node{reg: reg}
	spec := codec.NewBuilder(64)
	spec.Array(5)
	spec.Text(wire.SpecVersion)
	spec.Text("add")
	spec.Array(2)
	for range 2 {
		spec.Array(2)
		spec.Uint(0)
		spec.Uint(7)
	}
	spec.Uint(1)
	spec.Null()
	content := codec.Sum([]byte{0x07})
	seeds := []any{
		wire.Handoff{Spec: spec.Bytes(), Args: []wire.Arg{{Data: []byte{0x07}}, {Content: content.Bytes(), Size: 1, Holders: [][]byte{[]byte("x")}}}},
		wire.Completion{Task: content.Bytes(), Results: []wire.Result{{Data: []byte{0x01}}, {Content: content.Bytes(), Size: 9}}},
		wire.Completion{Task: content.Bytes(), Error: "boom", Stack: "trace"},
		wire.Refusal{Task: content.Bytes(), Why: "busy"},
		wire.Want{Ref: content.Bytes(), Offset: 3},
		wire.Have{Content: content.Bytes(), Size: 1 << 20},
		wire.Offer{Task: content.Bytes(), Func: 1, Bytes: 2},
		wire.Beacon{Slots: 2, Free: 1, Queue: 3, Funcs: 4, Held: 5},
	}
	for _, s := range seeds {
		data, err := codec.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{0xd8, 0x1b, 0x82})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h wire.Handoff
		if codec.Unmarshal(data, &h) == nil {
			if task, err := n.taskFromSpec(h.Spec, h.Args); err == nil {
				if task.id != codec.Sum(h.Spec) || len(task.args) != len(task.fn.Params) || len(task.outputs) != len(task.fn.Results) {
					t.Fatalf("malformed task accepted: %+v", task)
				}
				for i, a := range task.args {
					if len(a.raw) == 0 && !a.content.Defined() {
						t.Fatalf("argument %d is neither a value nor a content CID", i)
					}
				}
			}
		}
		var c wire.Completion
		if codec.Unmarshal(data, &c) == nil {
			_, _ = cid.Cast(c.Task)
			for _, r := range c.Results {
				_, _ = cid.Cast(r.Content)
			}
		}
		var r wire.Refusal
		_ = codec.Unmarshal(data, &r)
		var w wire.Want
		_ = codec.Unmarshal(data, &w)
		var hv wire.Have
		_ = codec.Unmarshal(data, &hv)
		var o wire.Offer
		_ = codec.Unmarshal(data, &o)
		var b wire.Beacon
		_ = codec.Unmarshal(data, &b)
	})
}
