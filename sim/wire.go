package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/wire"
)

// The sizes in bytes of the node's messages as they travel, measured once
// on representative messages of package wire (see samples): the codec
// encoding in its p2p frame for what travels on a session or a fetch
// stream, in its signed GossipSub message (StrictSign, as p2p.Host
// publishes) for what is gossiped. Below them, libp2p's own framing and
// encryption are not counted. A change of package wire changes them.
var (
	sizes = measure(samples())

	// beaconBytes is a Beacon gossiped on the load topic.
	beaconBytes = sizes.beacon
	// loadBytes is a Beacon answering a probe (wire.FrameLoad).
	loadBytes = sizes.load
	// offerBytes is an Offer gossiped on the offer topic.
	offerBytes = sizes.offer
	// handoffBytes is a hand-off (wire.FrameSubmit) of a task with a
	// value and two arguments by reference; the simulation adds the
	// bytes of arguments that travel inline.
	handoffBytes = sizes.handoff
	// completionBytes is a completion (wire.FrameDone) of a task whose
	// one result is lent; the simulation adds the bytes of a result that
	// travels inline.
	completionBytes = sizes.completion
	// refusalBytes is a refusal (wire.FrameRefuse) of a full queue.
	refusalBytes = sizes.refusal
	// smallBytes is the largest of the small frames: ack, claim,
	// release, take (a CID), probe (empty), a fetch's want and the have
	// before the object's bytes.
	smallBytes = sizes.small
)

// wireSizes are the sizes of the messages the simulation models.
type wireSizes struct {
	beacon, load, offer, handoff, completion, refusal, small int64
}

// wireSamples are representative messages of the swarm: realistic IDs,
// CIDs and values, each as the node makes it.
type wireSamples struct {
	key        crypto.PrivKey // the sender's
	from       peer.ID
	beacon     wire.Beacon
	offer      wire.Offer
	handoff    wire.Handoff
	completion wire.Completion
	refusal    wire.Refusal
	want       wire.Want
	have       wire.Have
	task, ref  cid.Cid // a task ID and one of its output refs
}

// samples returns the representative messages: a task of a function of a
// value and two dependencies held by another peer, its output of 1 MiB
// lent by its executor, an 8-slot peer with a few tasks queued. Peer IDs
// are ed25519 (as p2p.Host's), CIDs the node's: tasks and values codec
// CIDs, output refs DAG-CBOR descriptors.
func samples() wireSamples {
	key, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		panic(fmt.Sprintf("sim: sample key: %v", err))
	}
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("sim: sample peer ID: %v", err))
	}
	// A function's ID and a table's digest are 64-bit hashes (node's
	// Function.ID, Registry.table): any large value encodes alike.
	funcs := fnv.New64a()
	fmt.Fprint(funcs, "emu.w2(int64, bytes, bytes) bytes")
	value := codec.Sum([]byte("a dependency's value"))
	out := codec.Sum([]byte("a task's result"))
	deps := [2]cid.Cid{outputRef(value, 0), outputRef(value, 1)}

	// The spec as node.encodeSpec makes it: [version, function, function
	// ID, args, results, nonce].
	spec := codec.NewBuilder(256)
	spec.Array(6)
	spec.Text(wire.SpecVersion)
	spec.Text("emu.w2")
	spec.Uint(funcs.Sum64())
	spec.Array(3)
	spec.Array(2)
	spec.Uint(0)
	duration := codec.NewBuilder(16)
	duration.Int(int64(25e6))
	spec.Raw(duration.Bytes())
	for _, d := range deps {
		spec.Array(2)
		spec.Uint(1)
		spec.Link(d)
	}
	spec.Uint(1)
	var nonce [16]byte
	binary.BigEndian.PutUint64(nonce[8:], 12345)
	spec.ByteString(nonce[:])
	task := codec.Sum(spec.Bytes())
	ref := outputRef(task, 0)

	byRef := wire.Arg{Content: value.Bytes(), Size: 1 << 20, Holders: [][]byte{[]byte(from)}}
	return wireSamples{
		key:  key,
		from: from,
		beacon: wire.Beacon{Slots: 8, Free: 2, Queue: 5, Funcs: funcs.Sum64(),
			Held: 300 << 20},
		offer:   wire.Offer{Task: task.Bytes(), Func: funcs.Sum64(), Bytes: 2 << 20},
		handoff: wire.Handoff{Spec: spec.Bytes(), Args: []wire.Arg{{Data: duration.Bytes()}, byRef, byRef}},
		completion: wire.Completion{Task: task.Bytes(),
			Results: []wire.Result{{Content: out.Bytes(), Size: 1 << 20}}},
		refusal: wire.Refusal{Task: task.Bytes(),
			Why: fmt.Sprintf("queue full (%d tasks wait for a slot)", node.DefaultQueuePerSlot*8)},
		want: wire.Want{Ref: ref.Bytes()},
		have: wire.Have{Content: out.Bytes(), Size: 1 << 20},
		task: task,
		ref:  ref,
	}
}

// outputRef is output i of task as the node names it: the CID of the
// DAG-CBOR descriptor [task link, i].
func outputRef(task cid.Cid, i int) cid.Cid {
	b := codec.NewBuilder(64)
	b.Array(2)
	b.Link(task)
	b.Uint(uint64(i))
	d := sha256.Sum256(b.Bytes())
	mh, err := multihash.Encode(d[:], multihash.SHA2_256)
	if err != nil {
		panic(fmt.Sprintf("sim: output ref: %v", err))
	}
	return cid.NewCidV1(cid.DagCBOR, mh)
}

// measure encodes the samples as they travel.
func measure(s wireSamples) wireSizes {
	gossip := func(topic string, m any) int64 {
		return int64(len(gossipMessage(s.key, s.from, topic, encode(m))))
	}
	small := max(
		frameSize(wire.FrameAck, s.task.Bytes()),
		frameSize(wire.FrameClaim, s.task.Bytes()),
		frameSize(wire.FrameRelease, s.ref.Bytes()),
		frameSize(wire.FrameTake, s.ref.Bytes()),
		frameSize(wire.FrameProbe, nil),
		frameSize(wire.FrameWant, encode(s.want)),
		frameSize(wire.FrameHave, encode(s.have)),
	)
	return wireSizes{
		beacon:     gossip(wire.LoadTopic, s.beacon),
		load:       frameSize(wire.FrameLoad, encode(s.beacon)),
		offer:      gossip(wire.OfferTopic, s.offer),
		handoff:    frameSize(wire.FrameSubmit, encode(s.handoff)),
		completion: frameSize(wire.FrameDone, encode(s.completion)),
		refusal:    frameSize(wire.FrameRefuse, encode(s.refusal)),
		small:      small,
	}
}

func encode(m any) []byte {
	data, err := codec.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sim: encode %T: %v", m, err))
	}
	return data
}

// frameSize is the size of a p2p frame of type typ carrying payload.
func frameSize(typ uint8, payload []byte) int64 {
	var b bytes.Buffer
	if err := p2p.WriteFrame(&b, typ, payload); err != nil {
		panic(fmt.Sprintf("sim: frame: %v", err))
	}
	return int64(b.Len())
}

// gossipMessage is data published on topic by from, as GossipSub sends it
// to a peer: a length-prefixed RPC holding one message signed by key
// (sender, sequence number, topic, signature; an ed25519 key is inside
// the peer ID, so no key travels).
func gossipMessage(key crypto.PrivKey, from peer.ID, topic string, data []byte) []byte {
	seqno := make([]byte, 8)
	binary.BigEndian.PutUint64(seqno, 1_700_000_000_000_000_000)
	m := &pb.Message{From: []byte(from), Data: data, Seqno: seqno, Topic: &topic}
	unsigned, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sim: gossip message: %v", err))
	}
	if m.Signature, err = key.Sign(append([]byte(pubsub.SignPrefix), unsigned...)); err != nil {
		panic(fmt.Sprintf("sim: sign gossip message: %v", err))
	}
	rpc, err := proto.Marshal(&pb.RPC{Publish: []*pb.Message{m}})
	if err != nil {
		panic(fmt.Sprintf("sim: gossip RPC: %v", err))
	}
	return append(binary.AppendUvarint(nil, uint64(len(rpc))), rpc...)
}
