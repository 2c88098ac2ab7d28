// Package p2p is dray's networking layer: everything a dray node needs from the
// network, built from real libp2p parts. It does not define dray's task and object
// protocols; the node does, with the frame helpers here.
//
// # Network
//
// Network is what a dray node uses of the network, and all it sees: streams of named
// protocols (OpenStream, Handle), the peers connected and in the routing table, a
// size estimate, announcing and finding the holders of CIDs, and gossip topics.
// Stream, Topic and Subscription are interfaces too, so no libp2p type but peer.ID
// crosses it. Host implements it over libp2p; package memnet implements it in memory
// for tests and simulations.
//
// # Host
//
// New builds a Host: a libp2p host with
//
//   - a persistent Ed25519 identity in Config.DataDir/identity.key (mode 0600), so the
//     peer ID survives restarts (LoadOrCreateIdentity);
//   - TCP and QUIC (quic-v1) transports, TLS 1.3 and Noise security (TLS preferred: it
//     is the faster of the two on TCP here), the yamux stream multiplexer;
//   - DefaultListen (port 4001 on all interfaces, IPv4 and IPv6, TCP and QUIC); a port
//     that is taken falls back to a random port, logged;
//   - an optional private network: with Config.SwarmKeyFile set (a libp2p PSK file,
//     "/key/swarm/psk/1.0.0/" format, see LoadSwarmKey and GenerateSwarmKey) the host
//     only talks to peers holding the same key. Private networks run over TCP only,
//     because QUIC has no PSK support: QUIC listen addresses are dropped;
//   - a connection manager (Config.ConnLow/ConnHigh watermarks, 30 s grace period);
//   - a resource manager with explicit limits (ResourceLimits): libp2p's defaults scaled
//     to 1/8 of RAM and 1/2 of the descriptor limit, at most 8 connections per peer and
//     at most a quarter of the memory budget per peer; nothing is allow-listed.
//
// Relays, hole punching, NAT port mapping and Prometheus metrics are off: dray runs on
// LANs and reachable hosts.
//
// # Discovery and routing
//
// Peers are found by mDNS on the LAN (service name "_dray._udp", MDNSServiceName, so
// dray peers only see each other) and by bootstrap addresses, dialled at start and
// re-dialled with backoff while the host has no peers. A Kademlia DHT runs in server
// mode with the protocol prefix Config.ProtocolPrefix ("/dray" by default, so the
// protocol is /dray/kad/1.0.0 and dray never joins IPFS's DHT). Provide and
// FindProviders put and look up provider records for CIDs.
//
// # Announcing many CIDs
//
// Provide costs a DHT lookup and a round of record sends per CID, a few hundred
// microseconds to milliseconds: too slow for objects made thousands of times a second.
// Announce queues CIDs instead and never blocks: duplicates coalesce (queued, in
// flight, or announced before and still kept), the backlog is bounded
// (Config.AnnounceBacklog; when full the oldest queued CID is dropped and counted), and
// AnnounceStats and Flush report and wait for progress.
//
// The records are placed by go-libp2p-kad-dht's sweeping provider
// (provider.SweepingProvider), which the host starts when it first has a peer. Queued
// CIDs are handed to it in batches, at most 200 ms after they were queued (at once
// when Flush waits, or when 16384 are queued). The provider groups them by keyspace
// region, finds the peers of each region with a few DHT lookups, and sends the record
// of every CID to its k closest peers, one ADD_PROVIDER message each on the DHT's
// stream to that peer. In networks of at most k (20) peers the keyspace is a single
// region and every CID goes to every peer. The provider retries failed sends itself.
// While the host has no peer, or the provider finds itself disconnected, the backlog
// waits (and drops its oldest when full). Records are findable a few milliseconds
// after Flush on a LAN: a sent record is stored as the peer reads its stream.
//
// Provider records expire after ProviderRecordTTL (48 h). The provider keeps every CID
// it announced in its keystore, in memory (some 160 bytes a CID), and reprovides the
// keystore region by region over DefaultReprovideInterval (22 h). StartReprovider takes
// a KeySource listing the CIDs the host still holds and syncs the keystore with it at
// once and then periodically: CIDs no longer held stop being reprovided, and held CIDs
// the keystore lacks (after a restart) join the sweep.
//
// # Gossip
//
// Host's Join returns a GossipSub Topic (signed messages, strict verification). Payloads are
// limited to Config.MaxMessageSize (64 KiB by default): Publish refuses larger ones
// with ErrMessageTooLarge and receivers reject them. Subscriptions deliver messages of
// other peers on a channel.
//
// # Peer events
//
// PeerEvents delivers connected/disconnected notifications for the scheduler; they
// never block the network and are coalesced per peer while the consumer lags.
//
// # Frames
//
// WriteFrame and ReadFrame (or a pooled FrameReader) carry dray's stream protocol
// messages as [uvarint 1+len(payload)][type byte][payload]. ReadFrame is bounded: a
// frame longer than the caller's limit is refused (FrameTooLargeError) before anything
// is allocated, and truncated or malformed frames give typed errors.
//
// # Simulation
//
// Config.Host accepts a ready host, such as a mocknet host, in which case identity,
// listening, private network and resource options are ignored and Close leaves that
// host open.
package p2p
