package sim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// msgKind classifies the messages the protocols send.
type msgKind int

const (
	mBeacon msgKind = iota
	mOffer
	mClaim
	mHandoff
	mAck
	mRefuse
	mCompletion
	mRelease
	mFetch
	mDHTLookup
	mDHTRecord
	mRetransmit
	mProbe
	mProbeReply
	mTake
	numKinds
)

var msgNames = [numKinds]string{"beacon", "offer", "claim", "handoff", "ack", "refuse", "completion", "release",
	"fetch", "dht-lookup", "dht-record", "retransmit", "probe", "probe-reply", "take"}

type lookupRec struct {
	hops              uint8
	queries, answered uint16
}

type sampleRow struct {
	t                               int64
	completed                       uint64
	running, queued, queueMax, live int
	queueP50, queueP95              int
	msgs                            uint64
}

// metrics are the counters of a run.
type metrics struct {
	msgs                   [numKinds]uint64
	bytes                  [numKinds]int64
	dropped, stale         uint64
	reruns, rebuilds       uint64
	completed, runsDone    uint64
	failedDep, failedOwner uint64
	failedLost             uint64
	abandoned              uint64
	crashed, left, joined  int
	partitions, heals      int
	handoffs, tasksIn      uint64
	fetched                int64
	lookups, announced     uint64
	lookupRing             []lookupRec
	hops                   []uint8
	latency, schedDelay    []int64
	beaconsApplied, events uint64
	schedErrors            uint64
	firstSchedErr          string
	sampleEvery            int64
	series                 []sampleRow
	queues                 [][]int32 // per sample, per peer (swarms up to maxQueuePeers)
}

// maxQueuePeers bounds the swarms whose per-peer queue lengths are kept.
const maxQueuePeers = 200

func (m *metrics) schedErr(err error) {
	m.schedErrors++
	if m.firstSchedErr == "" {
		m.firstSchedErr = err.Error()
	}
}

// sample records one row of the time series.
func (s *Sim) sample() {
	if len(s.m.series) == 0 {
		// The warm-up's traffic (first beacons) is not the workload's.
		s.m.msgs, s.m.bytes = [numKinds]uint64{}, [numKinds]int64{}
	}
	row := sampleRow{t: s.now - s.t0, completed: s.m.completed, live: s.live}
	qs := make([]int, 0, len(s.peers))
	var per []int32
	keep := len(s.peers) <= maxQueuePeers
	if keep {
		per = make([]int32, len(s.peers))
	}
	for _, p := range s.peers {
		if !p.alive {
			continue
		}
		st := p.s.Stats()
		row.running += st.Running
		row.queued += st.Queued
		qs = append(qs, st.Queued)
		if keep {
			per[p.idx] = int32(st.Queued)
		}
	}
	if len(qs) > 0 {
		slices.Sort(qs)
		row.queueMax = qs[len(qs)-1]
		row.queueP50 = qs[len(qs)/2]
		row.queueP95 = qs[min(len(qs)-1, len(qs)*95/100)]
	}
	for _, n := range s.m.msgs {
		row.msgs += n
	}
	s.m.series = append(s.m.series, row)
	if keep {
		s.m.queues = append(s.m.queues, per)
	}
}

// KindCount is the traffic of one kind of message.
type KindCount struct {
	Kind     string
	Messages uint64
	Bytes    int64
}

// Result is what a run measured. Durations are virtual time.
type Result struct {
	Scenario string
	Seed     uint64
	Workload string
	Peers    int // initial peers
	Slots    int // their slots
	// BeaconScope says who hears a peer's beacons and offers: "all" (one
	// shard), "N shards" (its home shard's listeners) or a neighbourhood
	// size (Scenario.BeaconScope).
	BeaconScope string
	// Shards is the number of load shards (0 with a beacon scope);
	// ProbeBatch and MaxRetries are the scenario's.
	Shards, ProbeBatch, MaxRetries int
	// Tasks is the number of top-level tasks; TasksRun counts every task
	// that finished, nested ones included.
	Tasks, TasksRun int
	Makespan        time.Duration
	// Baseline, when set by the caller, is the makespan of the same
	// scenario without churn and partitions: the summary then shows the
	// makespan penalty.
	Baseline time.Duration
	// Ideal is max(IdealWork, CriticalPath): total work over total slots,
	// and the longest chain of work after its submission.
	Ideal, IdealWork, CriticalPath time.Duration
	Ratio                          float64 // Makespan / Ideal
	Throughput                     float64 // tasks finished per virtual second
	LatencyP50, LatencyP95         time.Duration
	LatencyP99                     time.Duration
	// Stretch is the mean task latency over the mean task work, for a
	// bag of tasks: 1 for a scheduler that never lets a task wait (what an
	// ideal one achieves at moderate load).
	Stretch                      float64
	DelayP50, DelayP95, DelayP99 time.Duration // scheduling delay: ready to started
	Messages                     uint64
	Bytes                        int64
	MsgsPerTask, BytesPerTask    float64
	ByKind                       []KindCount
	Lookups                      uint64
	HopsP50, HopsP99             int
	Imbalance                    float64 // max/mean busy time over the initial peers
	Reruns, Rebuilds             uint64
	FailedDep, FailedOwner       uint64
	// FailedLost counts the tasks that failed because their executor was
	// lost more than MaxRetries times (the node's ExecutorLostError).
	FailedLost            uint64
	Abandoned             uint64
	Lost                  int
	Crashed, Left, Joined int
	Partitions            int
	Dropped, Stale        uint64
	Stalled               bool
	Events                uint64
	SchedErrors           uint64
	FirstSchedError       string

	series      []sampleRow
	queues      [][]int32
	latencies   []int64
	peerRows    []peerRow
	sampleEvery int64
}

type peerRow struct {
	name  string
	slots int
	busy  int64
	ran   uint32
	alive bool
}

func pct(xs []int64, p float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(len(xs)-1, int(p*float64(len(xs))))]
}

func (s *Sim) result(stalled bool) *Result {
	m := &s.m
	r := &Result{
		Scenario: s.sc.Name, Seed: s.sc.Seed, Workload: s.sc.Workload.Kind, Peers: s.sc.Peers, Slots: s.totalSlots,
		BeaconScope: "all", Tasks: s.topTasks, TasksRun: int(m.completed),
		Reruns: m.reruns, Rebuilds: m.rebuilds, FailedDep: m.failedDep, FailedOwner: m.failedOwner, FailedLost: m.failedLost,
		Shards: s.shards, ProbeBatch: s.sc.ProbeBatch, MaxRetries: s.sc.MaxRetries,
		Abandoned: m.abandoned, Crashed: m.crashed, Left: m.left, Joined: m.joined, Partitions: m.partitions,
		Dropped: m.dropped, Stale: m.stale, Stalled: stalled, Events: m.events, Lookups: m.lookups,
		SchedErrors: m.schedErrors, FirstSchedError: m.firstSchedErr,
		series: m.series, queues: m.queues, sampleEvery: m.sampleEvery,
	}
	switch {
	case s.sc.BeaconScope > 0:
		r.BeaconScope = strconv.Itoa(s.sc.BeaconScope)
	case s.shards > 1:
		r.BeaconScope = strconv.Itoa(s.shards) + " shards"
	}
	var makespan, work int64
	var lat float64
	nDone := 0
	for i := range s.tasks {
		t := &s.tasks[i]
		if t.state == tDone {
			work += t.dur
			lat += float64(t.doneAt - t.submitAt)
			nDone++
			if t.top {
				makespan = max(makespan, t.doneAt)
			}
		}
		if t.top && t.state != tDone && t.state != tFailed {
			r.Lost++
		}
	}
	if makespan > 0 {
		makespan -= s.t0
	}
	r.Makespan = time.Duration(makespan)
	r.IdealWork = time.Duration(work / int64(max(s.totalSlots, 1)))
	r.CriticalPath = time.Duration(s.criticalPath())
	r.Ideal = max(r.IdealWork, r.CriticalPath)
	if work > 0 && s.sc.Workload.Kind == "bag" {
		r.Stretch = lat / float64(work)
	}
	if r.Ideal > 0 {
		r.Ratio = float64(r.Makespan) / float64(r.Ideal)
	}
	if makespan > 0 {
		r.Throughput = float64(m.completed) / (float64(makespan) / 1e9)
	}
	slices.Sort(m.latency)
	slices.Sort(m.schedDelay)
	r.latencies = m.latency
	r.LatencyP50, r.LatencyP95, r.LatencyP99 = time.Duration(pct(m.latency, .5)), time.Duration(pct(m.latency, .95)), time.Duration(pct(m.latency, .99))
	r.DelayP50, r.DelayP95, r.DelayP99 = time.Duration(pct(m.schedDelay, .5)), time.Duration(pct(m.schedDelay, .95)), time.Duration(pct(m.schedDelay, .99))
	for k := range numKinds {
		r.Messages += m.msgs[k]
		r.Bytes += m.bytes[k]
		r.ByKind = append(r.ByKind, KindCount{Kind: msgNames[k], Messages: m.msgs[k], Bytes: m.bytes[k]})
	}
	if m.completed > 0 {
		r.MsgsPerTask = float64(r.Messages) / float64(m.completed)
		r.BytesPerTask = float64(r.Bytes) / float64(m.completed)
	}
	hops := slices.Clone(m.hops)
	slices.Sort(hops)
	if len(hops) > 0 {
		r.HopsP50 = int(hops[len(hops)/2])
		r.HopsP99 = int(hops[min(len(hops)-1, len(hops)*99/100)])
	}
	var maxBusy, sumBusy int64
	for i, p := range s.peers {
		r.peerRows = append(r.peerRows, peerRow{name: string(p.name), slots: p.slots, busy: p.busy, ran: p.ran, alive: p.alive})
		if i < s.sc.Peers {
			maxBusy = max(maxBusy, p.busy)
			sumBusy += p.busy
		}
	}
	if sumBusy > 0 {
		r.Imbalance = float64(maxBusy) / (float64(sumBusy) / float64(s.sc.Peers))
	}
	return r
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + " ms" }

// timingRows writes the summary rows both modes share, from the ideal to
// the scheduling delay.
func (r *Result) timingRows(row func(k, v string)) {
	row("ideal", fmt.Sprintf("%s = max(work/slots %s, critical path %s)", ms(r.Ideal), ms(r.IdealWork), ms(r.CriticalPath)))
	row("throughput", fmt.Sprintf("%.1f tasks/s", r.Throughput))
	row("task latency p50/p95/p99", fmt.Sprintf("%s / %s / %s", ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99)))
	if r.Stretch > 0 {
		row("latency stretch", fmt.Sprintf("%.3f (mean latency / mean work)", r.Stretch))
	}
	row("scheduling delay p50/p95/p99", fmt.Sprintf("%s / %s / %s", ms(r.DelayP50), ms(r.DelayP95), ms(r.DelayP99)))
}

// WriteSummary writes the summary table.
func (r *Result) WriteSummary(w io.Writer) error {
	bw := bufio.NewWriter(w)
	row := func(k, v string) { fmt.Fprintf(bw, "%-28s %s\n", k, v) }
	row("scenario", fmt.Sprintf("%s (seed %d, %s)", r.Scenario, r.Seed, r.Workload))
	row("peers / slots", fmt.Sprintf("%d / %d (beacon scope %s)", r.Peers, r.Slots, r.BeaconScope))
	row("tasks", fmt.Sprintf("%d top-level, %d finished in all", r.Tasks, r.TasksRun))
	row("makespan", fmt.Sprintf("%s (%.3fx ideal)", ms(r.Makespan), r.Ratio))
	if r.Baseline > 0 {
		row("makespan penalty", fmt.Sprintf("%+.1f%% (%s without churn and partitions)",
			100*(float64(r.Makespan)/float64(r.Baseline)-1), ms(r.Baseline)))
	}
	r.timingRows(row)
	row("messages per task", fmt.Sprintf("%.2f (%d in all)", r.MsgsPerTask, r.Messages))
	row("bytes per task", fmt.Sprintf("%.0f (%d in all)", r.BytesPerTask, r.Bytes))
	var parts []string
	for _, k := range r.ByKind {
		if k.Messages > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k.Kind, k.Messages))
		}
	}
	for i := 0; i < len(parts); i += 4 {
		label := ""
		if i == 0 {
			label = "messages by kind"
		}
		row(label, joinComma(parts[i:min(i+4, len(parts))]))
	}
	row("DHT lookup hops p50/p99", fmt.Sprintf("%d / %d (%d lookups)", r.HopsP50, r.HopsP99, r.Lookups))
	row("load imbalance (max/mean)", fmt.Sprintf("%.3f", r.Imbalance))
	row("tasks re-run", fmt.Sprintf("%d (%d outputs rebuilt from lineage)", r.Reruns, r.Rebuilds))
	disturbed := r.Crashed+r.Left+r.Joined+r.Partitions > 0
	if disturbed || r.FailedLost > 0 {
		retries := strconv.Itoa(r.MaxRetries)
		if r.MaxRetries < 0 {
			retries = "unlimited"
		}
		row("tasks failed", fmt.Sprintf("%d (owner died), %d (dependency failed), %d (executor lost, max retries %s); %d nested abandoned",
			r.FailedOwner, r.FailedDep, r.FailedLost, retries, r.Abandoned))
	} else {
		row("tasks failed", fmt.Sprintf("%d (owner died), %d (dependency failed); %d nested abandoned", r.FailedOwner, r.FailedDep, r.Abandoned))
	}
	row("tasks lost", strconv.Itoa(r.Lost))
	if disturbed {
		row("churn", fmt.Sprintf("%d crashed, %d left, %d joined, %d partitions", r.Crashed, r.Left, r.Joined, r.Partitions))
		row("messages dropped / stale", fmt.Sprintf("%d / %d", r.Dropped, r.Stale))
	}
	if r.Stalled {
		row("STALLED", "no task finished for 10 minutes of virtual time; the rest is counted lost")
	}
	if r.SchedErrors > 0 {
		row("scheduler errors", fmt.Sprintf("%d (first: %s)", r.SchedErrors, r.FirstSchedError))
	}
	return bw.Flush()
}

func joinComma(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// WriteCSV writes the time series and distributions as CSV files into
// dir: timeseries.csv, latency_cdf.csv, peers.csv, messages.csv and, for
// swarms of up to 200 peers, queues.csv (queue length per peer).
func (r *Result) WriteCSV(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	write := func(name string, f func(w *bufio.Writer)) error {
		file, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		bw := bufio.NewWriter(file)
		f(bw)
		if err := bw.Flush(); err != nil {
			file.Close()
			return fmt.Errorf("sim: write %s: %w", name, err)
		}
		if err := file.Close(); err != nil {
			return fmt.Errorf("sim: write %s: %w", name, err)
		}
		return nil
	}
	return firstErr(
		write("timeseries.csv", r.writeSeries),
		write("latency_cdf.csv", r.writeCDF),
		write("peers.csv", r.writePeers),
		write("messages.csv", r.writeMessages),
		func() error {
			if len(r.queues) == 0 {
				return nil
			}
			return write("queues.csv", r.writeQueues)
		}(),
	)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func sec(t int64) string { return strconv.FormatFloat(float64(t)/1e9, 'f', 3, 64) }

func (r *Result) writeSeries(w *bufio.Writer) {
	w.WriteString("t_s,completed,throughput_per_s,running,queued,queue_p50,queue_p95,queue_max,live_peers,messages\n")
	var prev sampleRow
	for i, row := range r.series {
		rate := 0.0
		if i > 0 && row.t > prev.t {
			rate = float64(row.completed-prev.completed) / (float64(row.t-prev.t) / 1e9)
		}
		fmt.Fprintf(w, "%s,%d,%.1f,%d,%d,%d,%d,%d,%d,%d\n", sec(row.t), row.completed, rate, row.running, row.queued,
			row.queueP50, row.queueP95, row.queueMax, row.live, row.msgs)
		prev = row
	}
}

// cdfPoints is how many rows latency_cdf.csv has at most.
const cdfPoints = 200

func (r *Result) writeCDF(w *bufio.Writer) {
	w.WriteString("latency_ms,fraction\n")
	n := len(r.latencies)
	for k := 1; k <= cdfPoints && n > 0; k++ {
		i := min(n-1, k*n/cdfPoints-1)
		if i < 0 {
			continue
		}
		fmt.Fprintf(w, "%.3f,%.4f\n", float64(r.latencies[i])/1e6, float64(i+1)/float64(n))
	}
}

func (r *Result) writePeers(w *bufio.Writer) {
	w.WriteString("peer,slots,busy_s,tasks_run,alive_at_end\n")
	for _, p := range r.peerRows {
		fmt.Fprintf(w, "%s,%d,%s,%d,%t\n", p.name, p.slots, sec(p.busy), p.ran, p.alive)
	}
}

func (r *Result) writeMessages(w *bufio.Writer) {
	w.WriteString("kind,messages,bytes\n")
	for _, k := range r.ByKind {
		fmt.Fprintf(w, "%s,%d,%d\n", k.Kind, k.Messages, k.Bytes)
	}
}

func (r *Result) writeQueues(w *bufio.Writer) {
	w.WriteString("t_s,peer,queued\n")
	for i, per := range r.queues {
		t := r.series[i].t
		for p, q := range per {
			if q > 0 {
				fmt.Fprintf(w, "%s,%s,%d\n", sec(t), r.peerRows[p].name, q)
			}
		}
	}
}
