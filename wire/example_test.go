package wire_test

import (
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/wire"
)

// A fetcher asks a holder for an object from byte 1024 on: it encodes a
// Want as the payload of a FrameWant; the holder decodes it.
func Example() {
	ref := codec.Sum([]byte("an object"))
	payload, err := codec.Marshal(wire.Want{Ref: ref.Bytes(), Offset: 1024})
	if err != nil {
		panic(err)
	}

	var w wire.Want
	if err := codec.Unmarshal(payload, &w); err != nil {
		panic(err)
	}
	got, err := cid.Cast(w.Ref)
	if err != nil {
		panic(err)
	}
	fmt.Println(got == ref, w.Offset)

	// Decoded without a target, the payload says which message it is.
	var v any
	if err := codec.Unmarshal(payload, &v); err != nil {
		panic(err)
	}
	fmt.Printf("%T %d bytes\n", v, len(payload))
	// Output:
	// true 1024
	// wire.Want 61 bytes
}
