package wire_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/wire"
)

// TestEncodingsUnchanged pins the bytes of every message: peers of other
// versions must read them. The hex is what the node sends; a change here
// is a protocol change (a new registered name, not an edit): placement by
// function made dray/handoff/2 (it carries the resources a task needs)
// and dray/offer/2 (it names the task's function, not the owner's table).
func TestEncodingsUnchanged(t *testing.T) {
	c := codec.Sum([]byte("x")).Bytes()
	for _, tc := range []struct {
		msg any
		hex string
	}{
		{wire.Beacon{Slots: 8, Free: 3, Queue: 2, Funcs: 1 << 40, Held: 1 << 30},
			"d81b826d647261792f626561636f6e2f31a561621a4000000061660361681b0000010000000000617102617308"},
		{wire.Handoff{Spec: []byte{0x80}, Args: []wire.Arg{{Data: []byte{1}}, {Content: c, Size: 70000, Holders: [][]byte{[]byte("peer")}}}},
			"d81b826e647261792f68616e646f66662f32a3646172677382d81b826a647261792f6172672f31a46163f661644101616e006170f6d81b826a647261792f6172672f31a461635824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a48816164f6616e1a00011170617081447065657264737065634180656e65656473f6"},
		{wire.Completion{Task: c, Results: []wire.Result{{Data: []byte{2}}, {Content: c, Size: 9, Links: [][]byte{c}}}, Error: "e", Stack: "s", FromFunc: true},
			"d81b8271647261792f636f6d706c6574696f6e2f31a56175f5647461736b5824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881656572726f72616565737461636b617367726573756c747382d81b826d647261792f726573756c742f31a46163f661644102616cf6616e00d81b826d647261792f726573756c742f31a461635824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a48816164f6616c815824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881616e09"},
		{wire.Completion{Task: c},
			"d81b8271647261792f636f6d706c6574696f6e2f31a56175f4647461736b5824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881656572726f726065737461636b6067726573756c7473f6"},
		{wire.Refusal{Task: c, Why: "busy", Arg: 2},
			"d81b826e647261792f7265667573616c2f31a361610261745824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488161776462757379"},
		{wire.Refusal{Task: c, Why: "busy"},
			"d81b826e647261792f7265667573616c2f31a361610061745824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488161776462757379"},
		{wire.Offer{Task: c, Func: 7, Bytes: 100},
			"d81b826c647261792f6f666665722f32a3616807616e186461745824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{wire.Want{Ref: c, Offset: 5},
			"d81b826b647261792f77616e742f31a2616f0561725824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{wire.Have{Content: c, Size: 1 << 20},
			"d81b826b647261792f686176652f31a261635824015112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881616e1a00100000"},
	} {
		data, err := codec.Marshal(tc.msg)
		require.NoError(t, err)
		assert.Equal(t, tc.hex, hex.EncodeToString(data), "%T", tc.msg)
	}
}

// TestFrameTypes pins the frame type numbers, which travel.
func TestFrameTypes(t *testing.T) {
	assert.Equal(t, []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []uint8{
		wire.FrameSubmit, wire.FrameAck, wire.FrameRefuse, wire.FrameDone, wire.FrameRelease, wire.FrameClaim,
		wire.FrameTake, wire.FrameProbe, wire.FrameLoad, wire.FramePing, wire.FramePong,
	})
	assert.Equal(t, []uint8{10, 11, 12}, []uint8{wire.FrameWant, wire.FrameHave, wire.FrameMissing})
}

func TestShardTopic(t *testing.T) {
	assert.Equal(t, wire.LoadTopic, wire.ShardTopic(wire.LoadTopic, 1, 0))
	assert.Equal(t, wire.LoadTopic+"/16/3", wire.ShardTopic(wire.LoadTopic, 16, 3))
	assert.Equal(t, wire.OfferTopic+"/2/1", wire.ShardTopic(wire.OfferTopic, 2, 1))
}
