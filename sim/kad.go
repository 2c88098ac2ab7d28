package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
)

// Kademlia parameters, as in libp2p's DHT.
const (
	kadK     = 20 // bucket size and result size
	kadAlpha = 3  // queries in flight per round
)

// kadID is a 256-bit Kademlia key; distances compare the first two words
// (ties beyond 128 bits do not occur among the IDs of one run).
type kadID [4]uint64

func kadKey(b []byte) kadID {
	h := sha256.Sum256(b)
	var id kadID
	for i := range id {
		id[i] = binary.BigEndian.Uint64(h[8*i:])
	}
	return id
}

// less reports whether a is closer to t than b.
func (t kadID) less(a, b kadID) bool {
	x, y := a[0]^t[0], b[0]^t[0]
	if x != y {
		return x < y
	}
	return a[1]^t[1] < b[1]^t[1]
}

// cpl is the length of the common prefix of a and b.
func cpl(a, b kadID) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return 64*i + bits.LeadingZeros64(x)
		}
	}
	return 256
}

// bit returns bit i (0: most significant) of id.
func (id kadID) bit(i int) uint64 { return id[i/64] >> (63 - i%64) & 1 }

// kad is the Kademlia model: every peer's routing table (k-buckets over
// the IDs of all peers of the run, including those that join later), and
// iterative lookups over them. A query to a peer that is down costs a
// message and returns nothing.
type kad struct {
	ids    []kadID
	sorted []int32 // peer indices sorted by ID
	// table of peer p: entries[off[p]:off[p+1]], bucket b of it
	// entries[off[p]+boff[p][b] : ...], buckets by common prefix length.
	entries []int32
	off     []int32
	bstart  [][]int32 // per peer: start of each bucket (relative), len nb+1
	// scratch
	short  []kadEntry
	cand   []int32
	dist   []kadDist
	seen   map[int32]struct{}
	region int // announce region prefix length
}

type kadEntry struct {
	p       int32
	queried bool
}

// newKad builds the routing tables of peers whose IDs are names, in
// O(N log N · (log N + k)): peers sharing a prefix with p are a contiguous
// run of the sorted IDs, so each bucket is a binary search away. A bucket
// with more than k candidates keeps k of them, picked by a hash of the
// owner (Kademlia keeps the oldest it met; any fixed choice will do).
func newKad(names []string, seed uint64) *kad {
	n := len(names)
	k := &kad{ids: make([]kadID, n), sorted: make([]int32, n), off: make([]int32, n+1), bstart: make([][]int32, n),
		seen: make(map[int32]struct{})}
	for i, nm := range names {
		k.ids[i] = kadKey([]byte(nm))
		k.sorted[i] = int32(i)
	}
	slices.SortFunc(k.sorted, func(a, b int32) int {
		x, y := k.ids[a], k.ids[b]
		for i := range x {
			if x[i] != y[i] {
				if x[i] < y[i] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	for n>>k.region > kadK {
		k.region++
	}
	for p := range n {
		id := k.ids[p]
		start := int32(len(k.entries))
		k.off[p] = start
		var bs []int32
		for b := 0; b < 255; b++ {
			// Peers whose first b bits equal p's and whose bit b differs.
			lo, hi := prefixRange(id, b)
			from := sort.Search(n, func(i int) bool { return !kadLess(k.ids[k.sorted[i]], lo) })
			to := sort.Search(n, func(i int) bool { return kadLess(hi, k.ids[k.sorted[i]]) })
			bs = append(bs, int32(len(k.entries))-start)
			cnt := to - from
			if cnt <= kadK {
				k.entries = append(k.entries, k.sorted[from:to]...)
			} else {
				h := mix(seed ^ uint64(p)<<8 ^ uint64(b))
				step := cnt / kadK
				off := int(h % uint64(step))
				for j := range kadK {
					k.entries = append(k.entries, k.sorted[from+off+j*step])
				}
			}
			// Deeper buckets are empty once no other peer shares b+1 bits.
			same := sharedRange(id, b+1, k, n)
			if same <= 1 {
				break
			}
		}
		bs = append(bs, int32(len(k.entries))-start)
		k.bstart[p] = bs
	}
	k.off[n] = int32(len(k.entries))
	return k
}

// prefixRange returns the smallest and largest IDs whose first b bits equal
// id's and whose bit b is the opposite of id's.
func prefixRange(id kadID, b int) (lo, hi kadID) {
	lo, hi = prefixBounds(id, b)
	w, s := b/64, 63-b%64
	if id.bit(b) == 1 {
		lo[w] &^= 1 << s
		hi[w] &^= 1 << s
	} else {
		lo[w] |= 1 << s
		hi[w] |= 1 << s
	}
	return lo, hi
}

// prefixBounds returns the smallest and largest IDs whose first b bits
// equal id's.
func prefixBounds(id kadID, b int) (lo, hi kadID) {
	for i := range 4 {
		var keep uint64 // mask of the bits before b in word i
		switch {
		case (i+1)*64 <= b:
			keep = ^uint64(0)
		case i*64 >= b:
			keep = 0
		default:
			keep = ^uint64(0) << (64 - (b - i*64))
		}
		lo[i] = id[i] & keep
		hi[i] = id[i]&keep | ^keep
	}
	return lo, hi
}

// sharedRange counts peers whose first b bits equal id's.
func sharedRange(id kadID, b int, k *kad, n int) int {
	lo, hi := prefixBounds(id, b)
	from := sort.Search(n, func(i int) bool { return !kadLess(k.ids[k.sorted[i]], lo) })
	to := sort.Search(n, func(i int) bool { return kadLess(hi, k.ids[k.sorted[i]]) })
	return to - from
}

// kadLess orders IDs as unsigned 256-bit numbers.
func kadLess(a, b kadID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// closest appends to dst the (up to) k entries of p's table closest to t.
func (k *kad) closest(dst []int32, p int32, t kadID) []int32 {
	bs := k.bstart[p]
	base := k.off[p]
	nb := len(bs) - 1
	c := cpl(k.ids[p], t)
	// Bucket c and the deeper ones hold every peer of the table closer to
	// t than the rest; shallower buckets are farther, bucket by bucket.
	d := k.dist[:0]
	add := func(from, to int32) {
		for _, q := range k.entries[base+from : base+to] {
			id := k.ids[q]
			d = append(d, kadDist{hi: id[0] ^ t[0], lo: id[1] ^ t[1], p: q})
		}
	}
	if c < nb {
		add(bs[c], bs[nb])
	}
	for b := min(c, nb) - 1; b >= 0 && len(d) < kadK; b-- {
		add(bs[b], bs[b+1])
	}
	slices.SortFunc(d, func(a, b kadDist) int {
		if a.hi != b.hi {
			if a.hi < b.hi {
				return -1
			}
			return 1
		}
		if a.lo < b.lo {
			return -1
		}
		if a.lo > b.lo {
			return 1
		}
		return 0
	})
	for _, x := range d[:min(len(d), kadK)] {
		dst = append(dst, x.p)
	}
	k.dist = d
	return dst
}

// kadDist is a table entry with its distance to a key (first 128 bits).
type kadDist struct {
	hi, lo uint64
	p      int32
}

// lookup runs an iterative lookup for t from peer src: each round queries
// the alpha closest peers not yet queried; it ends after a round that
// brings no peer closer than the closest known. It returns the rounds
// (hops) and the queries sent (each a request and, from a live peer, a
// response).
func (k *kad) lookup(src int32, t kadID, alive func(int32) bool) (hops, queries, answered int) {
	k.short = k.short[:0]
	clear(k.seen)
	k.seen[src] = struct{}{}
	k.cand = k.closest(k.cand[:0], src, t)
	for _, p := range k.cand {
		if !alive(p) {
			continue
		}
		k.seen[p] = struct{}{}
		k.short = append(k.short, kadEntry{p: p})
	}
	for {
		if len(k.short) == 0 {
			return hops, queries, answered
		}
		best := k.short[0].p
		asked := 0
		var ask [kadAlpha]int32
		for i := range k.short {
			if !k.short[i].queried {
				k.short[i].queried = true
				ask[asked] = k.short[i].p
				asked++
				if asked == kadAlpha {
					break
				}
			}
		}
		if asked == 0 {
			return hops, queries, answered
		}
		hops++
		k.cand = k.cand[:0]
		for _, q := range ask[:asked] {
			queries++
			if !alive(q) {
				continue
			}
			answered++
			k.cand = k.closest(k.cand, q, t)
		}
		for _, p := range k.cand {
			if _, ok := k.seen[p]; ok {
				continue
			}
			k.seen[p] = struct{}{}
			if alive(p) {
				k.short = append(k.short, kadEntry{p: p})
			}
		}
		slices.SortStableFunc(k.short, func(a, b kadEntry) int {
			if t.less(k.ids[a.p], k.ids[b.p]) {
				return -1
			}
			if t.less(k.ids[b.p], k.ids[a.p]) {
				return 1
			}
			return 0
		})
		if len(k.short) > kadK {
			k.short = k.short[:kadK]
		}
		if k.short[0].p == best {
			return hops, queries, answered // no closer peer: converged
		}
	}
}

// regionOf is the keyspace region of t that one lookup serves for a batch
// of announcements (the prefix whose peers are about k).
func (k *kad) regionOf(t kadID) uint64 {
	if k.region == 0 {
		return 0
	}
	return t[0] >> (64 - min(k.region, 63))
}
