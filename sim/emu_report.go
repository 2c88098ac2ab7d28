package sim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// What an emulation measures and how it reports it: the peers' message
// counters, the sampled time series, the Result built from them, the
// summary table, and the protocol messages per task that the calibration
// compares with the DES's (Result.ProtocolMsgsPerTask).

type emuCount struct {
	msgs, bytes, records, lookups uint64
}

func (c emuCount) sub(o emuCount) emuCount {
	return emuCount{c.msgs - o.msgs, c.bytes - o.bytes, c.records - o.records, c.lookups - o.lookups}
}

func (p *emuPeer) count() emuCount {
	st := p.n.Stats().Net
	as := p.net.AnnounceStats()
	return emuCount{msgs: st.MsgsRecv, bytes: st.BytesRecv, records: as.Records, lookups: as.Lookups}
}

// sampler records a time series row every period.
func (e *emu) sampler(every time.Duration, stop <-chan struct{}) {
	e.sample(0)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.sample(time.Since(e.t0))
			if e.opts.Progress != nil {
				e.opts.Progress(time.Since(e.t0), int(e.resolved.Load()), e.model.topTasks)
			}
		}
	}
}

func (e *emu) sample(at time.Duration) {
	e.mu.Lock()
	peers := slices.Clone(e.peers)
	e.mu.Unlock()
	row := sampleRow{t: int64(at), completed: e.completed.Load()}
	keep := len(e.model.peers) <= maxQueuePeers
	var per []int32
	if keep {
		per = make([]int32, len(e.model.peers))
	}
	qs := make([]int, 0, len(peers))
	for _, p := range peers {
		c := p.last
		if p.alive.Load() {
			st := p.n.Stats()
			row.live++
			row.running += st.Sched.Running
			row.queued += st.Sched.Queued
			qs = append(qs, st.Sched.Queued)
			if keep {
				per[p.idx] = int32(st.Sched.Queued)
			}
			c = p.count()
		}
		row.msgs += c.sub(p.base).msgs
	}
	if len(qs) > 0 {
		slices.Sort(qs)
		row.queueMax = qs[len(qs)-1]
		row.queueP50 = qs[len(qs)/2]
		row.queueP95 = qs[min(len(qs)-1, len(qs)*95/100)]
	}
	e.mu.Lock()
	e.series = append(e.series, row)
	if keep {
		e.queues = append(e.queues, per)
	}
	e.mu.Unlock()
}

// result fills a Result with what the emulation measured.
func (e *emu) result() *EmuResult {
	m := e.model
	r := &Result{
		Scenario: e.sc.Name, Seed: e.sc.Seed, Workload: e.sc.Workload.Kind, Peers: e.sc.Peers, Slots: m.totalSlots,
		BeaconScope: "all", Tasks: m.topTasks, TasksRun: int(e.completed.Load()),
		Shards: m.shards, ProbeBatch: e.sc.ProbeBatch, MaxRetries: e.sc.MaxRetries,
		series: e.series, queues: e.queues, sampleEvery: int64(time.Second),
	}
	if m.shards > 1 {
		r.BeaconScope = strconv.Itoa(m.shards) + " shards"
	}
	if len(e.series) > 1 {
		r.sampleEvery = e.series[1].t - e.series[0].t
	}
	var makespan, work int64
	for i := range m.tasks {
		t := &m.tasks[i]
		et := &e.tasks[i]
		switch {
		case et.failed.Load():
			r.FailedOwner++
		case et.done.Load() > 0:
			work += t.dur
			makespan = max(makespan, et.done.Load())
			// the DES criticalPath reads doneAt and state
			t.state, t.doneAt = tDone, m.t0+et.done.Load()
		default:
			r.Lost++
		}
	}
	r.Makespan = time.Duration(makespan)
	r.IdealWork = time.Duration(work / int64(max(m.totalSlots, 1)))
	r.CriticalPath = time.Duration(m.criticalPath())
	r.Ideal = max(r.IdealWork, r.CriticalPath)
	if r.Ideal > 0 {
		r.Ratio = float64(r.Makespan) / float64(r.Ideal)
	}
	slices.Sort(e.latency)
	slices.Sort(e.schedDelay)
	if work > 0 && e.sc.Workload.Kind == "bag" {
		var lat float64
		for _, l := range e.latency {
			lat += float64(l)
		}
		r.Stretch = lat / float64(work)
	}
	if makespan > 0 {
		r.Throughput = float64(r.TasksRun) / (float64(makespan) / 1e9)
	}
	r.latencies = e.latency
	r.LatencyP50, r.LatencyP95, r.LatencyP99 = time.Duration(pct(e.latency, .5)), time.Duration(pct(e.latency, .95)), time.Duration(pct(e.latency, .99))
	r.DelayP50, r.DelayP95, r.DelayP99 = time.Duration(pct(e.schedDelay, .5)), time.Duration(pct(e.schedDelay, .95)), time.Duration(pct(e.schedDelay, .99))
	res := &EmuResult{Result: r, Nondeterministic: EmuNondeterminism}
	var maxBusy, sumBusy int64
	for _, p := range e.peers {
		c := p.last.sub(p.base)
		res.ProtocolMsgs += c.msgs
		res.ProtocolBytes += c.bytes
		res.DHTRecords += c.records
		res.DHTLookups += c.lookups
		busy := p.busy.Load()
		r.peerRows = append(r.peerRows, peerRow{name: peerName(int32(p.idx)), slots: p.slots, busy: busy, ran: p.ran.Load(), alive: p.alive.Load()})
		if p.idx < e.sc.Peers {
			maxBusy = max(maxBusy, busy)
			sumBusy += busy
		}
		if !p.alive.Load() {
			r.Crashed++ // left and crashed alike: both stop the node
		}
	}
	if sumBusy > 0 {
		r.Imbalance = float64(maxBusy) / (float64(sumBusy) / float64(e.sc.Peers))
	}
	r.Joined = len(e.peers) - e.sc.Peers
	r.Partitions = len(e.sc.Partitions)
	r.Messages = res.ProtocolMsgs + res.DHTRecords
	r.Bytes = int64(res.ProtocolBytes)
	r.Lookups = res.DHTLookups
	r.ByKind = []KindCount{
		{Kind: "node (session+gossip)", Messages: res.ProtocolMsgs, Bytes: int64(res.ProtocolBytes)},
		{Kind: "dht-record", Messages: res.DHTRecords},
	}
	if r.TasksRun > 0 {
		r.MsgsPerTask = float64(r.Messages) / float64(r.TasksRun)
		r.BytesPerTask = float64(r.Bytes) / float64(r.TasksRun)
	}
	return res
}

// ProtocolMsgsPerTask is the node's session and gossip messages per
// finished task: the figure the calibration compares with the DES's
// messages other than DHT lookups, records and retransmissions.
func (r *EmuResult) ProtocolMsgsPerTask() float64 {
	if r.TasksRun == 0 {
		return 0
	}
	return float64(r.ProtocolMsgs) / float64(r.TasksRun)
}

// ProtocolMsgsPerTask is the DES's count of what the node's session and
// gossip protocols send (everything but DHT lookups, provider records and
// retransmissions) per finished task: the figure comparable with
// EmuResult.ProtocolMsgsPerTask.
func (r *Result) ProtocolMsgsPerTask() float64 {
	if r.TasksRun == 0 {
		return 0
	}
	var n uint64
	for _, k := range r.ByKind {
		switch k.Kind {
		case "dht-lookup", "dht-record", "retransmit":
		default:
			n += k.Messages
		}
	}
	return float64(n) / float64(r.TasksRun)
}

// WriteSummary writes the summary table of an emulation: the DES rows
// that emu measures, "n/a (emu)" for those it cannot (DHT hops, tasks
// re-run, outputs rebuilt), and what was nondeterministic.
func (r *EmuResult) WriteSummary(w io.Writer) error {
	var b []byte
	row := func(k, v string) { b = fmt.Appendf(b, "%-28s %s\n", k, v) }
	row("mode", fmt.Sprintf("emu: %d real nodes over mocknet, %s wall", r.Peers, r.Wall.Round(time.Millisecond)))
	row("scenario", fmt.Sprintf("%s (seed %d, %s)", r.Scenario, r.Seed, r.Workload))
	row("peers / slots", fmt.Sprintf("%d / %d (beacon scope %s)", r.Peers, r.Slots, r.BeaconScope))
	row("tasks", fmt.Sprintf("%d top-level, %d finished in all", r.Tasks, r.TasksRun))
	row("makespan", fmt.Sprintf("%s (%.3fx ideal)", ms(r.Makespan), r.Ratio))
	r.timingRows(row)
	row("messages per task", fmt.Sprintf("%.2f (%d in all: %d node session+gossip as received, %d DHT records)",
		r.MsgsPerTask, r.Messages, r.ProtocolMsgs, r.DHTRecords))
	row("bytes per task", fmt.Sprintf("%.0f (%d in all, node payloads)", r.BytesPerTask, r.Bytes))
	row("messages by kind", "n/a (emu): the node counts all its frames and gossip together")
	row("DHT lookup hops p50/p99", fmt.Sprintf("n/a (emu) (%d announcer lookups)", r.Lookups))
	row("load imbalance (max/mean)", fmt.Sprintf("%.3f", r.Imbalance))
	row("tasks re-run", "n/a (emu)")
	row("tasks failed", fmt.Sprintf("%d (owner died or failed)", r.FailedOwner))
	row("tasks lost", strconv.Itoa(r.Lost))
	if r.Crashed+r.Joined+r.Partitions > 0 {
		row("churn", fmt.Sprintf("%d crashed or left, %d joined, %d partitions", r.Crashed, r.Joined, r.Partitions))
	}
	row("nondeterministic", r.Nondeterministic)
	_, err := w.Write(b)
	if err != nil {
		return fmt.Errorf("sim: write summary: %w", err)
	}
	return nil
}
