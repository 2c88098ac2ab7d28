package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// This file plans where provider records go, for many keys at once. It is a small
// version of the "sweep" in go-libp2p-kad-dht's provider package (which needs modules
// dray does not have): keys are sorted by their Kademlia key, and for each stretch of
// keyspace a few DHT lookups find every peer in a subtree holding at least k peers
// (a "region"). The k closest peers of any key inside that subtree are then among
// the region's peers, so they are computed locally with no lookup per key.
//
// Why that is exact: XOR distance orders peers by the length of the prefix they share
// with the key first, so every peer inside a subtree is closer to a key in it than any
// peer outside. A lookup for target T returning its k closest peers, the farthest of
// which shares c bits with T, has found every peer that shares c+1 bits with T: the
// subtree T[:c+1] is complete. Lookups aimed at the gaps of a region make it complete.

const (
	// sweepLookupTimeout bounds one DHT lookup made while planning.
	sweepLookupTimeout = 30 * time.Second
	// sweepMaxExplore caps the lookups spent completing one region; past it the keys
	// of that region get a lookup each instead.
	sweepMaxExplore = 32
	// sweepSingleThreshold: a region with this few keys of the batch in it is not
	// worth exploring (it costs two or more lookups); its keys get a lookup each.
	sweepSingleThreshold = 2
	// sweepMaxTargetBits is the longest prefix a lookup target is searched for (by
	// hashing, 2^bits tries on average). Regions that deep need a network of millions
	// of peers; past it keys get a lookup each.
	sweepMaxTargetBits = 18
	// regionTTL is how long an explored region is trusted. Peers that leave are
	// noticed sooner (a failed send drops the regions holding them); peers that join
	// are missed until then, and until the next reprovide of the keys.
	regionTTL = 2 * time.Minute
	// regionCacheMax bounds the number of cached regions.
	regionCacheMax = 4096
)

// errNoClosestPeers is returned when a lookup finds no peer at all.
var errNoClosestPeers = errors.New("p2p: DHT lookup found no peers")

// kadKey is a point in the Kademlia keyspace: the SHA-256 of a key or a peer ID.
type kadKey [32]byte

func kadKeyOf(b []byte) kadKey { return sha256.Sum256(b) }

func peerKadKey(p peer.ID) kadKey { return sha256.Sum256([]byte(p)) }

// cpl returns the length of the common prefix of a and b, in bits.
func cpl(a, b kadKey) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return len(a) * 8
}

// closer reports whether a is closer to t than b (XOR metric).
func closer(t, a, b kadKey) bool {
	for i := range t {
		da, db := a[i]^t[i], b[i]^t[i]
		if da != db {
			return da < db
		}
	}
	return false
}

// flipBit returns k with bit i (0 = most significant) inverted.
func flipBit(k kadKey, i int) kadKey {
	k[i/8] ^= 0x80 >> (i % 8)
	return k
}

// prefix is the subtree of keys sharing the first bits bits of key.
type prefix struct {
	key  kadKey
	bits int
}

func (p prefix) contains(k kadKey) bool { return cpl(p.key, k) >= p.bits }

// lookupTarget returns a key string whose Kademlia key lies in p, for
// GetClosestPeers (which hashes the string it is given). ok is false if p is too
// deep to find one by hashing.
func lookupTarget(p prefix) (target string, at kadKey, ok bool) {
	if p.bits > sweepMaxTargetBits {
		return "", kadKey{}, false
	}
	var buf [24]byte
	copy(buf[:], "dray/sweep/")
	binary.BigEndian.PutUint64(buf[11:], rand.Uint64())
	for i := uint32(0); i < 64<<p.bits; i++ {
		binary.BigEndian.PutUint32(buf[19:], i)
		if k := kadKeyOf(buf[:23]); p.contains(k) {
			return string(buf[:23]), k, true
		}
	}
	return "", kadKey{}, false
}

// region is a subtree of the keyspace whose peers are all known: there are at least k
// of them (or the subtree is the whole keyspace and they are all the peers found).
type region struct {
	prefix  prefix
	peers   []peer.ID
	keys    []kadKey // Kademlia keys of peers
	rtSize  int      // routing table size when explored
	expires time.Time
}

// closest returns the k peers of r closest to t. It uses *buf as scratch space.
func (r *region) closest(t kadKey, k int, scratch *[]int) []peer.ID {
	if len(r.peers) <= k {
		return r.peers
	}
	buf := (*scratch)[:0]
	defer func() { *scratch = buf }()
	for i := range r.peers {
		buf = append(buf, i)
	}
	slices.SortFunc(buf, func(a, b int) int {
		switch {
		case closer(t, r.keys[a], r.keys[b]):
			return -1
		case closer(t, r.keys[b], r.keys[a]):
			return 1
		}
		return 0
	})
	out := make([]peer.ID, k)
	for i := range out {
		out[i] = r.peers[buf[i]]
	}
	return out
}

func (r *region) has(p peer.ID) bool { return slices.Contains(r.peers, p) }

// regionCache holds recently explored regions. It is safe for concurrent use.
type regionCache struct {
	mu      sync.Mutex
	regions []*region
}

// rtStable reports whether a routing table of size now still matches one of size
// then: in small networks any change counts (a new peer may be one of the k closest
// of everything), in large ones a drift of up to a tenth is churn.
func rtStable(then, now int) bool {
	d := now - then
	if d < 0 {
		d = -d
	}
	return d <= then/10
}

// find returns a valid region containing k, or nil.
func (c *regionCache) find(k kadKey, rtSize int, now time.Time) *region {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.regions {
		if r.prefix.contains(k) && now.Before(r.expires) && rtStable(r.rtSize, rtSize) {
			return r
		}
	}
	return nil
}

// add caches r, evicting stale regions and regions r covers.
func (c *regionCache) add(r *region, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.regions[:0]
	for _, o := range c.regions {
		inside := o.prefix.bits >= r.prefix.bits && r.prefix.contains(o.prefix.key)
		if now.Before(o.expires) && !inside {
			kept = append(kept, o)
		}
	}
	clear(c.regions[len(kept):])
	c.regions = kept
	if len(c.regions) >= regionCacheMax {
		c.regions = slices.Delete(c.regions, 0, 1)
	}
	c.regions = append(c.regions, r)
}

// dropPeer forgets the regions that hold p (it failed, so the regions are stale).
func (c *regionCache) dropPeer(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regions = slices.DeleteFunc(c.regions, func(r *region) bool { return r.has(p) })
}

// closestPeersRouter is the lookup the sweep needs; *dht.IpfsDHT implements it.
type closestPeersRouter interface {
	GetClosestPeers(ctx context.Context, key string) ([]peer.ID, error)
}

// sweeper plans provider record placement for batches of keys.
type sweeper struct {
	router  closestPeersRouter
	k       int // replication factor: the DHT's bucket size
	cache   regionCache
	lookups func() // counts a lookup
	now     func() time.Time
}

// sweepKey is one key of a batch: the bytes the DHT keys records by (a multihash)
// and its Kademlia key.
type sweepKey struct {
	key []byte
	kad kadKey
}

// plan returns, for each key, the peers its provider record goes to. When a lookup
// fails, planning stops: the keys left without peers have a nil entry and err says why.
func (s *sweeper) plan(ctx context.Context, keys []sweepKey, rtSize int) ([][]peer.ID, error) {
	out := make([][]peer.ID, len(keys))
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a].kad[:], keys[b].kad[:]) })
	var buf []int
	for i := 0; i < len(order); {
		k := keys[order[i]]
		r := s.cache.find(k.kad, rtSize, s.now())
		if r == nil {
			var single []peer.ID
			var err error
			r, single, err = s.explore(ctx, keys, order[i:], rtSize)
			if err != nil {
				return out, err
			}
			if r == nil {
				out[order[i]] = single
				i++
				continue
			}
			s.cache.add(r, s.now())
		}
		// Keys are sorted, so the region's keys follow each other.
		for ; i < len(order) && r.prefix.contains(keys[order[i]].kad); i++ {
			out[order[i]] = r.closest(keys[order[i]].kad, s.k, &buf)
		}
	}
	return out, nil
}

// lookup runs one DHT lookup and returns the peers found, sorted by distance to at,
// with their Kademlia keys.
func (s *sweeper) lookup(ctx context.Context, target string, at kadKey) ([]peer.ID, []kadKey, error) {
	s.lookups()
	lctx, cancel := context.WithTimeout(ctx, sweepLookupTimeout)
	defer cancel()
	ps, err := s.router.GetClosestPeers(lctx, target)
	if err != nil {
		return nil, nil, fmt.Errorf("p2p: DHT lookup: %w", err)
	}
	if len(ps) == 0 {
		return nil, nil, errNoClosestPeers
	}
	ks := make(map[peer.ID]kadKey, len(ps))
	for _, p := range ps {
		ks[p] = peerKadKey(p)
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b peer.ID) int {
		switch {
		case closer(at, ks[a], ks[b]):
			return -1
		case closer(at, ks[b], ks[a]):
			return 1
		}
		return 0
	})
	keys := make([]kadKey, len(ps))
	for i, p := range ps {
		keys[i] = ks[p]
	}
	return ps, keys, nil
}

// explore looks up the first key of rest (keys in sorted order) and completes the
// region around it. It returns either the region, or (when exploring is not worth it
// or not possible) nil and the lookup's peers for that key alone.
func (s *sweeper) explore(ctx context.Context, keys []sweepKey, rest []int, rtSize int) (*region, []peer.ID, error) {
	first := keys[rest[0]]
	ps, pks, err := s.lookup(ctx, string(first.key), first.kad)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if len(ps) < s.k {
		// Fewer than k peers in the whole network: every key goes to all of them.
		return &region{prefix: prefix{bits: 0}, peers: ps, keys: pks, rtSize: rtSize, expires: now.Add(regionTTL)}, nil, nil
	}
	c := min(cpl(first.kad, pks[len(pks)-1]), 255)
	reg := prefix{key: first.kad, bits: c}
	inRegion := 0
	for _, i := range rest {
		if !reg.contains(keys[i].kad) {
			break
		}
		inRegion++
	}
	if inRegion <= sweepSingleThreshold {
		return nil, ps, nil
	}
	known := make(map[peer.ID]kadKey, 2*s.k)
	for i, p := range ps {
		known[p] = pks[i]
	}
	// Known complete: first.kad[:c+1]. The gap is its sibling under reg.
	gaps := []prefix{{key: flipBit(first.kad, c), bits: c + 1}}
	for n := 0; len(gaps) > 0; n++ {
		if n >= sweepMaxExplore {
			return nil, ps, nil
		}
		g := gaps[len(gaps)-1]
		gaps = gaps[:len(gaps)-1]
		target, at, ok := lookupTarget(g)
		if !ok {
			return nil, ps, nil
		}
		gps, gks, err := s.lookup(ctx, target, at)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			return nil, ps, nil // the first key's own lookup is still good
		}
		for i, p := range gps {
			if reg.contains(gks[i]) {
				known[p] = gks[i]
			}
		}
		if len(gps) < s.k {
			break // the lookup saw the whole network
		}
		c2 := min(cpl(at, gks[len(gks)-1]), 255)
		// Complete: at[:c2+1]. What of g lies outside it is new gaps.
		for d := g.bits; d <= c2; d++ {
			gaps = append(gaps, prefix{key: flipBit(at, d), bits: d + 1})
		}
	}
	r := &region{prefix: reg, rtSize: rtSize, expires: now.Add(regionTTL)}
	for p, k := range known {
		r.peers = append(r.peers, p)
		r.keys = append(r.keys, k)
	}
	return r, nil, nil
}
