package sim

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/wire"
)

// TestMessageSizes checks every message size the simulation uses against
// the real encoding of its sample: the codec encoding of the package wire
// message in a p2p frame, or in a signed GossipSub RPC that decodes and
// verifies as GossipSub's. It also checks the samples are well formed as
// the node reads them (IDs and CIDs parse, the spec's CID is the task ID).
func TestMessageSizes(t *testing.T) {
	s := samples()
	frame := func(typ uint8, m any) []byte {
		t.Helper()
		var payload []byte
		switch m := m.(type) {
		case nil:
		case []byte:
			payload = m
		default:
			var err error
			payload, err = codec.Marshal(m)
			require.NoError(t, err)
		}
		var b bytes.Buffer
		require.NoError(t, p2p.WriteFrame(&b, typ, payload))
		gotTyp, got, err := p2p.ReadFrame(bytes.NewReader(b.Bytes()), wire.MaxSessionFrame)
		require.NoError(t, err)
		require.Equal(t, typ, gotTyp)
		require.True(t, bytes.Equal(payload, got))
		return b.Bytes()
	}
	size := func(typ uint8, m any) int64 { return int64(len(frame(typ, m))) }

	assert.Equal(t, size(wire.FrameSubmit, s.handoff), handoffBytes, "hand-off")
	assert.Equal(t, size(wire.FrameDone, s.completion), completionBytes, "completion")
	assert.Equal(t, size(wire.FrameRefuse, s.refusal), refusalBytes, "refusal")
	assert.Equal(t, size(wire.FrameLoad, s.beacon), loadBytes, "probe answer")
	small := map[string]int64{
		"ack":     size(wire.FrameAck, s.task.Bytes()),
		"claim":   size(wire.FrameClaim, s.task.Bytes()),
		"release": size(wire.FrameRelease, s.ref.Bytes()),
		"take":    size(wire.FrameTake, s.ref.Bytes()),
		"probe":   size(wire.FrameProbe, nil),
		"want":    size(wire.FrameWant, s.want),
		"have":    size(wire.FrameHave, s.have),
	}
	var largest int64
	for name, n := range small {
		assert.LessOrEqual(t, n, smallBytes, name)
		largest = max(largest, n)
	}
	assert.Equal(t, largest, smallBytes, "the largest small frame")
	assert.LessOrEqual(t, len(encode(s.want)), wire.MaxWantFrame, "a want the holder reads")
	assert.LessOrEqual(t, len(encode(s.have)), wire.MaxHaveFrame, "a have the fetcher reads")

	pk, err := s.from.ExtractPublicKey()
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		topic string
		msg   any
		size  int64
	}{
		{"beacon", wire.LoadTopic, s.beacon, beaconBytes},
		{"offer", wire.OfferTopic, s.offer, offerBytes},
	} {
		data, err := codec.Marshal(tc.msg)
		require.NoError(t, err)
		rpcBytes := gossipMessage(s.key, s.from, tc.topic, data)
		assert.Equal(t, int64(len(rpcBytes)), tc.size, tc.name)
		n, k := binary.Uvarint(rpcBytes)
		require.Positive(t, k)
		require.Equal(t, uint64(len(rpcBytes)-k), n, tc.name)
		var rpc pb.RPC
		require.NoError(t, proto.Unmarshal(rpcBytes[k:], &rpc), tc.name)
		require.Len(t, rpc.Publish, 1)
		m := rpc.Publish[0]
		assert.Equal(t, tc.topic, m.GetTopic())
		assert.Equal(t, data, m.Data)
		assert.Len(t, m.Seqno, 8)
		assert.Empty(t, m.Key, "an ed25519 key travels in the peer ID")
		from, err := peer.IDFromBytes(m.From)
		require.NoError(t, err)
		assert.Equal(t, s.from, from)
		sig := m.Signature
		m.Signature = nil
		unsigned, err := proto.Marshal(m)
		require.NoError(t, err)
		ok, err := pk.Verify(append([]byte(pubsub.SignPrefix), unsigned...), sig)
		require.NoError(t, err)
		assert.True(t, ok, "%s: the signature verifies", tc.name)
	}

	// The samples are what a node sends.
	assert.Len(t, []byte(s.from), 38, "an ed25519 peer ID")
	assert.Equal(t, s.task, codec.Sum(s.handoff.Spec), "the task ID is the spec's CID")
	var spec codec.Tuple
	require.NoError(t, codec.Unmarshal(s.handoff.Spec, &spec))
	require.Len(t, spec, 6)
	assert.Equal(t, wire.SpecVersion, spec[0])
	args, _ := spec[3].([]any)
	assert.Len(t, args, len(s.handoff.Args))
	for i, a := range s.handoff.Args {
		if len(a.Data) > 0 {
			continue
		}
		_, err := cid.Cast(a.Content)
		require.NoError(t, err, "argument %d", i)
		for _, h := range a.Holders {
			_, err := peer.IDFromBytes(h)
			require.NoError(t, err, "argument %d", i)
		}
	}
	for _, b := range [][]byte{s.completion.Task, s.completion.Results[0].Content, s.refusal.Task, s.offer.Task, s.want.Ref, s.have.Content} {
		_, err := cid.Cast(b)
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(cid.DagCBOR), s.ref.Type(), "output refs are DAG-CBOR descriptors")
	assert.Equal(t, codec.Prefix.Codec, s.task.Type(), "task IDs are codec CIDs")
}
