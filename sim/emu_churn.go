package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// The DES model's churn plan and partitions, carried out on the real
// nodes in real time: crashes and graceful leaves, joins, and partitions
// cut and healed on the mocknet links.

// churn carries out the DES model's churn plan and partitions in real
// time.
func (e *emu) churn() {
	type step struct {
		at   int64
		plan *plannedChurn
		part int // partition k+1 starts; -(k+1) heals
	}
	var steps []step
	for k := range e.model.plan {
		steps = append(steps, step{at: e.model.plan[k].at, plan: &e.model.plan[k]})
	}
	for k, p := range e.sc.Partitions {
		steps = append(steps, step{at: int64(p.At), part: k + 1}, step{at: int64(p.Heal), part: -(k + 1)})
	}
	slices.SortStableFunc(steps, func(a, b step) int { return int(min(max(a.at-b.at, -1), 1)) })
	rng := rand.New(rand.NewPCG(mix(e.sc.Seed^0xe3a1), e.sc.Seed))
	next := e.sc.Peers
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for _, s := range steps {
		if wait := time.Duration(s.at) - time.Since(e.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-e.ctx.Done():
				return
			case <-timer.C:
			}
		}
		switch {
		case s.part > 0:
			e.partition(s.part-1, rng)
		case s.part < 0:
			e.heal()
		case s.plan.act == actJoin:
			for range s.plan.count {
				if err := e.join(next); err != nil {
					e.log.Warn("emu: join", "err", err)
				}
				next++
			}
		default:
			e.disturb(s.plan, rng)
		}
	}
}

// victims picks count (or fraction of the live) peers, never a submitter
// unless the scenario allows it.
func (e *emu) victims(count int, fraction float64, rng *rand.Rand) []*emuPeer {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	var cands []*emuPeer
	live := 0
	for _, p := range peers {
		if !p.alive.Load() {
			continue
		}
		live++
		if e.model.peers[p.idx].submitter && !e.sc.Churn.CrashSubmitters {
			continue
		}
		cands = append(cands, p)
	}
	if count == 0 {
		count = int(math.Round(fraction * float64(live)))
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands[:min(count, len(cands))]
}

// disturb crashes or closes the victims of a churn step. A crash cuts the
// victim's links abruptly (its peers see the connections drop), then
// stops its node; a graceful leave closes the node first.
func (e *emu) disturb(c *plannedChurn, rng *rand.Rand) {
	for _, p := range e.victims(c.count, c.fraction, rng) {
		p.alive.Store(false)
		p.last = p.count()
		if c.act == actCrash {
			e.cut(p)
			e.closing.Go(p.close)
			continue
		}
		e.closing.Go(func() {
			_ = p.n.Close()
			e.cut(p)
			_ = p.net.Close()
			_ = p.h.Close()
		})
	}
}

// cut unlinks and disconnects p from every peer.
func (e *emu) cut(p *emuPeer) {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, q := range peers {
		if q != p {
			_ = e.mn.UnlinkPeers(p.h.ID(), q.h.ID())
			_ = e.mn.DisconnectPeers(p.h.ID(), q.h.ID())
		}
	}
}

// join adds peer i mid-run, linked and connected to every live peer.
func (e *emu) join(i int) error {
	if i >= len(e.model.peers) {
		return fmt.Errorf("sim: emu: join of peer %d beyond the plan", i)
	}
	if err := e.addPeer(e.ctx, i); err != nil {
		return err
	}
	for _, q := range e.peers[:i] {
		if q.alive.Load() && e.side[q.idx] == e.side[i] {
			if err := e.link(q.idx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition cuts a fraction of the live non-submitting peers off from
// the rest: links across are removed and connections closed.
func (e *emu) partition(k int, rng *rand.Rand) {
	minority := e.victims(0, e.sc.Partitions[k].Fraction, rng)
	e.mu.Lock()
	for _, p := range minority {
		e.side[p.idx] = 1
	}
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, p := range minority {
		for _, q := range peers {
			if e.side[q.idx] == 0 {
				_ = e.mn.UnlinkPeers(p.h.ID(), q.h.ID())
				_ = e.mn.DisconnectPeers(p.h.ID(), q.h.ID())
			}
		}
	}
}

// heal links the two sides again and reconnects the live peers.
func (e *emu) heal() {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	for _, p := range peers {
		if e.side[p.idx] != 1 {
			continue
		}
		for _, q := range peers {
			if e.side[q.idx] == 0 && p.alive.Load() && q.alive.Load() {
				if err := e.link(p.idx, q.idx); err != nil {
					e.log.Warn("emu: heal", "err", err)
				}
			}
		}
	}
	e.mu.Lock()
	for i := range e.side {
		e.side[i] = 0
	}
	e.mu.Unlock()
}
