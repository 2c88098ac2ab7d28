package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/dray-project/dray/sim"
)

// simFlags are the flags of `dray sim`.
type simFlags struct {
	mode, scenario, out, from, workload string
	peers, tasks, scope                 int
	shards, probes, retries             int
	seed                                uint64
	load                                float64
	quiet, baseline                     bool
}

func newSimCmd(opts *options) *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a swarm: how a workload behaves on N peers, with churn and partitions",
		Long: `Simulate a swarm of virtual peers running a workload, before you deploy.

--mode des (discrete event) drives the real scheduler (package sched) of
every virtual peer against a virtual clock and a network model: latency,
bandwidth, loss, DHT lookups over Kademlia routing tables, churn and
partitions. It reaches 10,000 peers and 1,000,000 tasks, and the same
scenario and seed give byte-identical output.

--mode emu (emulation) runs one real node per peer — real libp2p hosts,
the DHT, GossipSub and the node's session protocols — in this process over
go-libp2p's in-memory network, whose links take the latency and bandwidth
of the scenario's network model. Tasks sleep their drawn durations in real
time, so a run takes as long as its makespan. It reaches 100 peers and
10,000 tasks; its summary says which parts of it are nondeterministic.

With no --scenario, it runs a bag of tasks on a LAN (see sim.DefaultScenario);
a scenario is a YAML or JSON file (examples in sim/scenarios). The flags
below override the scenario's fields; --slots sets every peer's slots.

It prints a summary: makespan and its ratio to the ideal, throughput, task
latency and scheduling delay percentiles, messages and bytes per task, DHT
lookup hops, load imbalance, tasks re-run, failed and lost. --out DIR also
writes CSV time series and SVG plots there.`,
		Example: `  dray sim
  dray sim --peers 1000 --tasks 100000 --seed 7
  dray sim --mode emu --peers 20 --tasks 2000
  dray sim --scenario sim/scenarios/churn-200.yaml --out /tmp/churn`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd, opts, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mode, "mode", "des", "des (discrete event) or emu (real nodes over an in-memory network)")
	fl.IntVar(&f.peers, "peers", 0, "peers at the start (default: the scenario's, else 50)")
	fl.IntVar(&f.tasks, "tasks", 0, "tasks to run (default: the scenario's, else 10000)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (default: the scenario's, else 1)")
	fl.StringVar(&f.scenario, "scenario", "", "scenario file (.yaml, .yml or .json)")
	fl.StringVar(&f.out, "out", "", "directory for CSV time series and SVG plots")
	fl.IntVar(&f.shards, "shards", 0, "load shards: 0 from the peer count (as the node does), 1 one topic (every peer hears every other), or a power of two")
	fl.IntVar(&f.scope, "beacon-scope", 0, "instead of shards, a fixed random neighbourhood of N peers hears each beacon (0: shards)")
	fl.IntVar(&f.probes, "probe-batch", 0, "probes in flight for work no peer heard has room for (default: the scenario's, else 32 as the node; 0 off)")
	fl.IntVar(&f.retries, "max-retries", 0, "times a task whose executor is lost is placed again before it fails (default: the scenario's, else 3 as the node; -1 no limit)")
	fl.StringVar(&f.workload, "workload", "", "workload kind: bag, mapreduce, tree, chain or fib")
	fl.StringVar(&f.from, "submit-from", "", "who submits: one or all")
	fl.Float64Var(&f.load, "load", 0, "bag arrival rate as a share of the swarm's capacity (0: all at once)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fl.BoolVar(&f.baseline, "baseline", false, "with churn or partitions, also run without them and show the makespan penalty")
	return cmd
}

func runSim(cmd *cobra.Command, opts *options, f simFlags) error {
	switch f.mode {
	case "des", "emu":
	default:
		return fmt.Errorf("--mode %q: want des or emu", f.mode)
	}
	sc := sim.DefaultScenario()
	if f.scenario != "" {
		var err error
		if sc, err = sim.LoadScenario(f.scenario); err != nil {
			return err
		}
	}
	fl := cmd.Flags()
	if fl.Changed("peers") {
		sc.Peers = f.peers
	}
	if fl.Changed("tasks") {
		sc.Workload.Tasks = f.tasks
	}
	if fl.Changed("seed") {
		sc.Seed = f.seed
	}
	if fl.Changed("slots") {
		sc.Slots, sc.SlotClasses = opts.slots, nil
	}
	if fl.Changed("beacon-scope") {
		sc.BeaconScope = f.scope
	}
	if fl.Changed("shards") {
		sc.Shards = f.shards
	}
	if fl.Changed("probe-batch") {
		sc.ProbeBatch = f.probes
	}
	if fl.Changed("max-retries") {
		sc.MaxRetries = f.retries
	}
	if fl.Changed("workload") {
		sc.Workload.Kind = f.workload
	}
	if fl.Changed("submit-from") {
		sc.Submit.From = f.from
	}
	if fl.Changed("load") {
		sc.Workload.Load = f.load
	}
	if err := sc.Validate(); err != nil {
		return err
	}
	var bar progress = nopProgress{}
	if !f.quiet && isTerminal(cmd.ErrOrStderr()) {
		bar = newProgress(cmd.ErrOrStderr())
	}
	if f.mode == "emu" {
		if f.baseline {
			return errors.New("sim --mode emu: --baseline is for --mode des (an emulation run is not repeatable)")
		}
		res, err := sim.RunEmu(cmd.Context(), sc, sim.EmuOptions{Progress: bar.update})
		bar.done()
		if err != nil {
			return err
		}
		return writeSim(cmd, f, res, res.Result)
	}
	s, err := sim.New(sc, sim.Options{Progress: bar.update})
	if err != nil {
		return err
	}
	res, err := s.Run(cmd.Context())
	bar.done()
	if err != nil {
		return err
	}
	if f.baseline && sc.Disturbed() {
		b, err := sim.New(sc.Undisturbed(), sim.Options{})
		if err != nil {
			return err
		}
		base, err := b.Run(cmd.Context())
		if err != nil {
			return err
		}
		res.Baseline = base.Makespan
	}
	return writeSim(cmd, f, res, res)
}

// writeSim prints the summary and writes the --out files of a run.
func writeSim(cmd *cobra.Command, f simFlags, summary interface{ WriteSummary(io.Writer) error }, res *sim.Result) error {
	if err := summary.WriteSummary(cmd.OutOrStdout()); err != nil {
		return err
	}
	if f.out != "" {
		if err := res.WriteCSV(f.out); err != nil {
			return err
		}
		if err := res.WritePlots(f.out); err != nil {
			return err
		}
	}
	if res.Lost > 0 {
		return fmt.Errorf("sim: %d tasks lost (neither finished nor reported failed)", res.Lost)
	}
	return nil
}

// progress shows a run's progress on stderr.
type progress interface {
	update(virtual time.Duration, resolved, total int)
	done()
}

type nopProgress struct{}

func (nopProgress) update(time.Duration, int, int) {}
func (nopProgress) done()                          {}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// barProgress shows an mpb progress bar of the top-level tasks resolved,
// from the first second of wall time on (shorter runs show nothing).
type barProgress struct {
	w       io.Writer
	start   time.Time
	p       *mpb.Progress
	bar     *mpb.Bar
	virtual atomic.Int64 // read by the bar's goroutine
}

func newProgress(w io.Writer) *barProgress { return &barProgress{w: w, start: time.Now()} }

func (b *barProgress) update(virtual time.Duration, resolved, total int) {
	if total == 0 {
		return
	}
	b.virtual.Store(int64(virtual))
	if b.bar == nil {
		if time.Since(b.start) < time.Second {
			return
		}
		b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithAutoRefresh(), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
		b.bar = b.p.AddBar(int64(total),
			mpb.PrependDecorators(decor.Name("sim "), decor.CountersNoUnit("%d/%d tasks")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return " " + time.Duration(b.virtual.Load()).Truncate(time.Millisecond).String() + " virtual"
			}), decor.Name(" "), decor.Elapsed(decor.ET_STYLE_GO)))
	}
	b.bar.SetCurrent(int64(resolved))
}

func (b *barProgress) done() {
	if b.bar == nil {
		return
	}
	if !b.bar.Completed() {
		b.bar.Abort(false)
	}
	b.p.Wait()
}
