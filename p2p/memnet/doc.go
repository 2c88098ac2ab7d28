// Package memnet is an in-memory p2p.Network: many peers in one process, for
// tests, examples and simulations of dray nodes without libp2p. It is real
// code, not a mock: streams carry bytes with flow control, half-close, reset
// and deadlines; topics deliver to subscribers; connections come and go with
// peer events; content routing is a shared provider table. A node test over
// memnet needs no sockets, no DHT and no waiting for libp2p's timing.
//
// A Network holds the peers (AddPeer, AddPeers). Each Peer implements
// p2p.Network and is handed to a node as its Config.Network:
//
//   - Streams: OpenStream connects to the peer if needed (as a libp2p dial
//     does) and hands the other end to the peer's handler of the protocol in
//     a new goroutine. Each direction buffers up to Window bytes. Close
//     closes both directions (the peer reads the bytes sent, then io.EOF);
//     Reset, or the connection's end, fails both ends with ErrReset.
//   - Membership: Peers are the connected peers; RoutingPeers every open
//     peer not cut off; NetworkSize the open peers of the Network.
//     PeerEvents delivers every connect and disconnect, in order.
//   - ContentRouting: Announce records at once; FindHolders reads the
//     shared table. Records outlive their peer, as in a DHT.
//   - PubSub: a message published goes to every subscription to the topic
//     on the peers connected to the publisher (flood publishing, no relay),
//     and never to the publisher's own.
//
// Faults are the Network's: Disconnect closes one connection (the peers may
// dial again), Partition cuts links until Heal, Peer.Close takes a peer
// away.
//
// Peer IDs are real Ed25519 peer IDs derived from the order peers are added:
// the same in every run, so tests that draw from them are reproducible.
package memnet
