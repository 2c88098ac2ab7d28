package wire

import "fmt"

// The swarm's protocols and topics.
const (
	// SessionProtocol carries tasks, their acknowledgements and
	// completions, claims of offered tasks, releases and takes of lent
	// results, probes and pings between two peers. A peer opens one
	// session stream to each peer it hands tasks to and keeps it; the
	// other peer answers on the same stream, and either may send any
	// frame on it. Frame types FrameSubmit to FramePong, payloads up to
	// MaxSessionFrame.
	//
	// One long-lived stream per peer, rather than a stream per exchange,
	// keeps a remote call at one network round trip (submit out, done
	// back; the acknowledgement travels alongside), keeps the stream count
	// per peer at one or two whatever the task rate, and lets the writer
	// batch frames that queue up while a write is in flight into one
	// write.
	SessionProtocol = "/dray/session/1"
	// FetchProtocol serves objects: the fetcher sends a FrameWant naming a
	// ref (a put value's content CID or a task output's descriptor CID);
	// the holder answers with a FrameHave, then the raw bytes from the
	// wanted offset on, which the fetcher verifies against the content CID
	// as they stream in; or with a FrameMissing.
	FetchProtocol = "/dray/fetch/1"
	// LoadTopic is the GossipSub topic of Beacons (per shard: ShardTopic).
	LoadTopic = "/dray/load/1"
	// OfferTopic is the GossipSub topic of Offers (per shard: ShardTopic).
	OfferTopic = "/dray/offer/1"
)

// ShardTopic names base's topic (LoadTopic, OfferTopic) for shard i of
// count: the plain name for a single shard, so a LAN is unchanged.
func ShardTopic(base string, count, i int) string {
	if count <= 1 {
		return base
	}
	return fmt.Sprintf("%s/%d/%d", base, count, i)
}

// The limits a receiver enforces on frame payloads.
const (
	// MaxTableFuncs bounds the functions of a Table a peer accepts.
	MaxTableFuncs = 100_000
	// MaxSessionFrame bounds every session frame, so it bounds inline
	// arguments and results too; larger values travel by reference.
	MaxSessionFrame = 16 << 20
	// MaxWantFrame bounds a FrameWant's payload.
	MaxWantFrame = 256
	// MaxHaveFrame bounds the payload of a holder's answer to a want (a
	// FrameHave or FrameMissing).
	MaxHaveFrame = 1024
)

// Frame types on a session.
const (
	FrameSubmit    uint8 = iota + 1 // owner → executor: a Handoff
	FrameAck                        // executor → owner: task CID; the task is accepted (a FrameDone implies it)
	FrameRefuse                     // executor → owner: a Refusal
	FrameDone                       // executor → owner: a Completion
	FrameRelease                    // owner → holder: output ref whose lent bytes may go
	FrameClaim                      // idle peer → owner: task CID of an Offer it claims
	FrameTake                       // leaving holder → owner: output ref to fetch now
	FrameProbe                      // either way: empty; asks for the peer's load
	FrameLoad                       // answer to a FrameProbe: a Beacon
	FramePing                       // owner → executor: empty; the lease is running out
	FramePong                       // executor → owner: empty; answer to a FramePing
	FrameTableWant                  // either way: empty; asks for the peer's function Table
	FrameTable                      // answer to a FrameTableWant: a Table
)

// Frame types on a fetch stream.
const (
	FrameWant    uint8 = iota + 10 // fetcher → holder: a Want
	FrameHave                      // holder → fetcher: a Have, then the bytes
	FrameMissing                   // holder → fetcher: why it has nothing to send, as text
)

// SpecVersion starts every task spec (Handoff.Spec), so the format can
// change later. A spec is the canonical encoding of
//
//	[SpecVersion, function name, function ID, [[0, value] | [1, ref link], ...], results, nonce | null]
//
// and its CID is the task's ID. The function ID (FuncInfo.ID) names the
// function's identity — name, signature, version — so a deterministic
// call's memo key includes it, and an executor that has the name under
// another identity refuses the task.
const SpecVersion = "dray.task/2"
