// Package wire is what dray peers say to each other: the messages of the
// swarm protocols, the frame types that carry them, the protocol and topic
// names, and the limits a receiver enforces. The node speaks it; the
// simulator sizes its messages from it. It depends on codec alone.
//
// A peer talks to another on two stream protocols and two GossipSub topics:
//
//   - SessionProtocol, one long-lived stream per pair of peers: tasks
//     handed off (Handoff), acknowledged, refused (Refusal) and completed
//     (Completion), offers claimed, lent results released and taken, loads
//     probed (Beacon) and leases pinged. Frame types FrameSubmit to
//     FramePong.
//   - FetchProtocol, one stream per fetch: a Want, answered by a Have and
//     the object's bytes, or by FrameMissing. Frame types FrameWant to
//     FrameMissing.
//   - LoadTopic and OfferTopic (per shard, see ShardTopic): Beacons and
//     Offers gossiped to every peer.
//
// Frames are p2p frames ([uvarint length][type byte][payload], see
// p2p.WriteFrame); a payload is a message's codec encoding, a raw CID, a
// reason in plain text, or nothing, as each frame type says. Messages are
// registered codec structs: what travels is their registered name (such
// as "dray/beacon/1") and their fields' `codec` names, never Go names, so
// renaming a Go type or field changes nothing on the wire while changing a
// registered name or a field tag breaks every older peer. A change of
// format is a new name (".../2").
package wire
