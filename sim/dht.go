package sim

import "slices"

// The DHT as the node uses it: outputs announced (node.announceLoop,
// p2p.Host.Announce) and the lookups, run on the Kademlia model of kad.go
// and counted by hop and message.

// announce models node.announceLoop + p2p.Host.Announce: outputs queued a
// second ago that still exist here are announced (output ref and content
// CID); the provider batches them by keyspace region, one DHT lookup per
// region, and sends each CID's record to its k closest peers.
func (s *Sim) announce(p *vpeer) {
	cut := s.now - announceAge
	var regions []uint64
	n := 0
	for p.annHead < len(p.annq) && p.annq[p.annHead].at <= cut {
		i := p.annq[p.annHead].t
		p.annHead++
		t := &s.tasks[i]
		if t.state != tDone || t.holder != p.idx || (!t.final && t.refs == 0) {
			continue // consumed or moved: nobody could fetch it
		}
		for c := uint64(0); c < 2; c++ {
			regions = append(regions, s.kad.regionOf(objectKey(s.sc.Seed, i, c)))
		}
		n++
	}
	if p.annHead == len(p.annq) {
		p.annq, p.annHead = p.annq[:0], 0
	} else if p.annHead > 1024 && p.annHead > len(p.annq)/2 {
		p.annq = append(p.annq[:0], p.annq[p.annHead:]...)
		p.annHead = 0
	}
	if n == 0 {
		return
	}
	slices.Sort(regions)
	regions = slices.Compact(regions)
	for _, r := range regions {
		key := kadID{r << (64 - min(s.kad.region, 63)), mix(r)}
		if s.kad.region == 0 {
			key[0] = mix(r ^ 0xabc)
		}
		s.dhtLookup(p.idx, key)
	}
	// Each CID's record goes to its k closest peers: every other peer in
	// a swarm of k or fewer.
	recs := uint64(2*n) * uint64(min(kadK, max(s.live-1, 0)))
	s.m.msgs[mDHTRecord] += recs
	s.m.bytes[mDHTRecord] += int64(recs) * 120
	s.m.announced += uint64(2 * n)
}

// objectKey is the DHT key of task i's output ref (c=0) or content (c=1).
func objectKey(seed uint64, i int32, c uint64) kadID {
	h := mix(seed ^ uint64(i)<<2 ^ c)
	return kadID{h, mix(h), mix(h + 1), mix(h + 2)}
}

// dhtLookup runs (or, past the first lookups, samples) an iterative DHT
// lookup from p and counts its hops and messages.
func (s *Sim) dhtLookup(p int32, key kadID) {
	s.m.lookups++
	var hops, queries, answered int
	if s.m.lookups <= 20000 || s.m.lookups%8 == 0 || len(s.m.lookupRing) == 0 {
		hops, queries, answered = s.kad.lookup(p, key, func(q int32) bool { return s.peers[q].alive && s.side[q] == s.side[p] })
		r := lookupRec{hops: uint8(min(hops, 255)), queries: uint16(queries), answered: uint16(answered)}
		if len(s.m.lookupRing) < 4096 {
			s.m.lookupRing = append(s.m.lookupRing, r)
		} else {
			s.m.lookupRing[s.m.lookups%4096] = r
		}
	} else {
		r := s.m.lookupRing[mix(s.m.lookups)%uint64(len(s.m.lookupRing))]
		hops, queries, answered = int(r.hops), int(r.queries), int(r.answered)
	}
	s.m.hops = append(s.m.hops, uint8(min(hops, 255)))
	s.m.msgs[mDHTLookup] += uint64(queries + answered)
	s.m.bytes[mDHTLookup] += int64(queries)*smallBytes + int64(answered)*kadK*40
}
