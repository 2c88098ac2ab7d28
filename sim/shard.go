package sim

import (
	"github.com/dray-project/dray/sched"
)

// Load shards, as the node splits its beacons and offers (sched.Shards,
// sched.ShardOf): a peer publishes on its home shard's topic and listens
// to its home shard and one other, so q hears p iff home(p) is q's home
// or extra shard. Each shard has a log of the beacons published on it;
// a listener reads the logs of its two shards from its own cursors (see
// flushShards), so a beacon costs one entry however many peers hear it.

// beaconLog is the beacons published on one shard: msgs[i-base] is the
// i-th since the start, in arrival order (gossip delivery takes the same
// time for all).
type beaconLog struct {
	msgs []beaconMsg
	base int
}

func (l *beaconLog) end() int { return l.base + len(l.msgs) }

// trimMin is how long a shard's log grows before trimLogs looks at it.
const trimMin = 4096

// shardCount returns the shards a run of sc uses: 0 with a beacon scope
// (neighbourhoods instead), sc.Shards when forced, else the node's
// default for the initial number of peers.
func (sc *Scenario) shardCount() int {
	switch {
	case sc.BeaconScope > 0:
		return 0
	case sc.Shards > 0:
		return sc.Shards
	}
	return sched.Shards(sc.Peers)
}

// buildShards gives every peer of the run (those that join later too) its
// home and extra shard, and every shard its listeners.
func (s *Sim) buildShards() {
	s.shards = s.sc.shardCount()
	if s.shards == 0 {
		return
	}
	s.listeners = make([][]int32, s.shards)
	s.logs = make([]beaconLog, s.shards)
	if s.shards == 1 {
		all := make([]int32, len(s.peers))
		for i, p := range s.peers {
			all[i] = p.idx
		}
		s.listeners[0] = all
		return
	}
	for _, p := range s.peers {
		h, x := sched.ShardOf(p.name, s.shards)
		p.home, p.extra = int32(h), int32(x)
		s.listeners[h] = append(s.listeners[h], p.idx)
		s.listeners[x] = append(s.listeners[x], p.idx)
	}
}

// publishShard sends p's beacon on its home shard: one message to every
// live listener on p's side of a partition, applied by each when it next
// steps its scheduler (flushShards), or when it arrives at a listener with
// queued tasks, for which it may matter at once.
func (s *Sim) publishShard(p *vpeer, l sched.Load) {
	side := s.side[p.idx]
	arr := s.now + s.gossip
	var n int
	if s.shards == 1 {
		n = s.sideCount(side) - 1
		for _, r := range s.queued {
			if r != p.idx {
				s.scheduleFlush(s.peers[r], arr)
			}
		}
	} else {
		for _, r := range s.listeners[p.home] {
			rp := s.peers[r]
			if r == p.idx || !rp.alive || s.side[r] != side {
				continue
			}
			n++
			if s.qpos[r] >= 0 {
				s.scheduleFlush(rp, arr)
			}
		}
	}
	s.m.msgs[mBeacon] += uint64(n)
	s.m.bytes[mBeacon] += int64(n) * beaconBytes
	lg := &s.logs[p.home]
	lg.msgs = append(lg.msgs, beaconMsg{at: arr, from: p.idx, side: side, load: l})
}

// flushShards steps the beacons that reached p on its two shards since it
// last looked, in arrival order (the home shard's first on a tie), as
// node.hearLoop does. It returns how many it stepped.
func (s *Sim) flushShards(p *vpeer) int {
	home, extra := &s.logs[p.home], &s.logs[p.extra]
	two := p.extra != p.home
	n := 0
	for {
		var b *beaconMsg
		if p.cursor[0] < home.end() {
			if m := &home.msgs[p.cursor[0]-home.base]; m.at <= s.now {
				b = m
			}
		}
		fromExtra := false
		if two && p.cursor[1] < extra.end() {
			if m := &extra.msgs[p.cursor[1]-extra.base]; m.at <= s.now && (b == nil || m.at < b.at) {
				b, fromExtra = m, true
			}
		}
		if b == nil {
			return n
		}
		if fromExtra {
			p.cursor[1]++
		} else {
			p.cursor[0]++
		}
		if b.from == p.idx || b.side != s.side[p.idx] {
			continue
		}
		if err := p.s.Step(sched.Event{Kind: sched.PeerLoad, Peer: s.peers[b.from].name, Load: b.load}); err != nil {
			s.m.schedErr(err)
		}
		n++
	}
}

// trimLogs drops the log entries every live listener of their shard has
// read: once a second of virtual time, over every peer.
func (s *Sim) trimLogs() {
	if s.shards == 0 || s.now < s.nextTrim {
		return
	}
	s.nextTrim = s.now + tickEvery
	if cap(s.lowScr) < s.shards {
		s.lowScr = make([]int, s.shards)
	}
	low := s.lowScr[:s.shards]
	for h := range low {
		low[h] = s.logs[h].end()
	}
	for _, p := range s.peers {
		if p.alive {
			low[p.home] = min(low[p.home], p.cursor[0])
			if p.extra != p.home {
				low[p.extra] = min(low[p.extra], p.cursor[1])
			}
		}
	}
	for h := range s.logs {
		lg := &s.logs[h]
		if len(lg.msgs) < trimMin {
			continue
		}
		if k := low[h] - lg.base; k > len(lg.msgs)/2 {
			lg.msgs = append(lg.msgs[:0], lg.msgs[k:]...)
			lg.base = low[h]
		}
	}
}
