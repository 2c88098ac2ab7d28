package sched

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// ShardPeers is the number of peers a load shard aims at: a swarm of N
// peers is split into Shards(N) shards of about ShardPeers/2..ShardPeers
// peers, and each peer hears its own shard and one other, so it hears
// about 2 x ShardPeers/2..ShardPeers peers whatever N is.
const ShardPeers = 64

// Shards returns the number of load shards for a swarm of about n peers:
// the smallest power of two S with n/S <= ShardPeers (1 for n <= 64, so
// a LAN has a single shard and every peer hears every other).
func Shards(n int) int {
	if n <= ShardPeers {
		return 1
	}
	q := (n + ShardPeers - 1) / ShardPeers
	return 1 << bits.Len(uint(q-1))
}

// ShardOf returns the shard peer p beacons on (home) and the other shard
// it also listens to (extra), out of shards (a power of two; anything
// below 2 gives 0, 0). Both come from a hash of the peer ID, so every peer
// computes the same shards for p; home is the hash's low bits, so when
// shards doubles a peer's new home is one of the two halves of its old
// one. extra differs from home whenever shards > 1, which links the
// shards into one overlay: work a shard cannot run is seen by peers in
// other shards that listen to it.
func ShardOf(p PeerID, shards int) (home, extra int) {
	if shards < 2 {
		return 0, 0
	}
	sum := sha256.Sum256([]byte(p))
	mask := uint64(shards - 1)
	home = int(binary.LittleEndian.Uint64(sum[0:8]) & mask)
	// extra: any shard but home, uniformly.
	extra = int(binary.LittleEndian.Uint64(sum[8:16]) % uint64(shards-1))
	if extra >= home {
		extra++
	}
	return home, extra
}

// ProbeBatchFor is the probe batch (Config.ProbeBatch) for a peer on
// shards shards whose configured batch is base: base, but at least 2 per
// shard, since the peers a lone submitter must find to keep a swarm busy
// grow with the swarm while the peers it hears do not. At 10,000 peers
// (256 shards) a batch of 32 left a lone submitter's tasks waiting 77 ms
// (p50) for peers to be found; 512 brings that to 0.2 ms. base 0 (no
// probes) stays 0.
func ProbeBatchFor(shards, base int) int {
	if base <= 0 {
		return 0
	}
	return max(base, 2*shards)
}
