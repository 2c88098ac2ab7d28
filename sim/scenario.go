package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dray-project/dray/sched"
)

// ErrScenario marks a scenario that cannot be run; the wrapped message names
// the field and says what to do.
var ErrScenario = errors.New("sim: bad scenario")

// Duration is a time.Duration that reads "250ms", "2s" or a number of
// seconds from YAML and JSON, and writes the string form.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns d in time.Duration's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return d.set(v)
}

// UnmarshalYAML reads a duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	return d.set(v)
}

// maxSeconds is the longest duration given as a number of seconds: about
// 292 years, what a time.Duration holds.
const maxSeconds = float64(math.MaxInt64) / float64(time.Second)

func (d *Duration) set(v any) error {
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return fmt.Errorf("duration %q: want a number of seconds or a Go duration such as 250ms or 2s", x)
		}
		*d = Duration(p)
		return nil
	case int:
		if float64(x) < -maxSeconds || float64(x) > maxSeconds {
			break
		}
		*d = Duration(time.Duration(x) * time.Second)
		return nil
	case float64:
		if math.IsNaN(x) || x < -maxSeconds || x > maxSeconds {
			break
		}
		*d = Duration(time.Duration(x * float64(time.Second)))
		return nil
	}
	return fmt.Errorf("duration %v: want a number of seconds (up to 292 years) or a Go duration such as 250ms or 2s", v)
}

// Size is a byte count that reads 1024, "64KiB", "1MB" or "1.5GiB".
type Size int64

// MarshalJSON writes s as a number of bytes.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(int64(s)) }

// UnmarshalJSON reads a byte count or a size string.
func (s *Size) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return s.set(v)
}

// UnmarshalYAML reads a byte count or a size string.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	return s.set(v)
}

func (s *Size) set(v any) error {
	switch x := v.(type) {
	case int:
		*s = Size(x)
		return nil
	case float64:
		if math.IsNaN(x) || math.Abs(x) >= math.MaxInt64 {
			break
		}
		*s = Size(x)
		return nil
	case string:
		n, err := ParseSize(x)
		if err != nil {
			return err
		}
		*s = Size(n)
		return nil
	}
	return fmt.Errorf("size %v: want bytes or a size such as 64KiB or 1MB", v)
}

// ParseSize reads a byte count such as "4096", "64KiB", "1MB" or "1.5GiB".
func ParseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := 1.0
	for _, u := range []struct {
		suf string
		m   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(v, u.suf) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suf)), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want bytes or a size such as 64KiB or 1MB", v)
	}
	return int64(f * mult), nil
}

// Dist is a probability distribution of durations or latencies.
//
//	constant:    Mean
//	uniform:     Min..Max
//	normal:      Mean, Stddev (truncated at Min, default 0)
//	lognormal:   Mean (of the distribution), Sigma (of the underlying normal)
//	exponential: Mean
type Dist struct {
	Kind   string   `yaml:"dist" json:"dist"`
	Mean   Duration `yaml:"mean,omitempty" json:"mean,omitempty"`
	Min    Duration `yaml:"min,omitempty" json:"min,omitempty"`
	Max    Duration `yaml:"max,omitempty" json:"max,omitempty"`
	Stddev Duration `yaml:"stddev,omitempty" json:"stddev,omitempty"`
	Sigma  float64  `yaml:"sigma,omitempty" json:"sigma,omitempty"`
}

// SlotClass is a share of the peers with a number of worker slots.
type SlotClass struct {
	Share float64 `yaml:"share" json:"share"`
	Slots int     `yaml:"slots" json:"slots"`
}

// Region is a share of the peers in one place (for the latency matrix).
type Region struct {
	Name  string  `yaml:"name" json:"name"`
	Share float64 `yaml:"share" json:"share"`
}

// Network is the network model.
type Network struct {
	// Latency is the one-way latency of a link, drawn once per pair of
	// peers (kind "matrix" uses Regions and Matrix instead).
	Latency Dist `yaml:"latency" json:"latency"`
	// Regions and Matrix (one-way milliseconds between regions) make a
	// region model: a link's latency is its regions' entry, spread by
	// ±Jitter (a fraction) per link.
	Regions []Region    `yaml:"regions,omitempty" json:"regions,omitempty"`
	Matrix  [][]float64 `yaml:"matrix_ms,omitempty" json:"matrix_ms,omitempty"`
	Jitter  float64     `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	// BandwidthMbps is each peer's uplink in megabits per second; transfers
	// from one peer queue behind each other.
	BandwidthMbps float64 `yaml:"bandwidth_mbps" json:"bandwidth_mbps"`
	// Loss is the probability that a message is lost and retransmitted
	// after RTO.
	Loss float64  `yaml:"loss,omitempty" json:"loss,omitempty"`
	RTO  Duration `yaml:"rto,omitempty" json:"rto,omitempty"`
}

// Workload is what the peers run.
type Workload struct {
	// Kind is bag, mapreduce, tree, chain or fib.
	Kind string `yaml:"kind" json:"kind"`
	// Tasks is about how many tasks to run (bag, mapreduce, tree, chain:
	// rounded to whole jobs; fib: ignored, see FibN).
	Tasks int `yaml:"tasks" json:"tasks"`
	// Duration is each task's run time.
	Duration Dist `yaml:"duration" json:"duration"`
	// OutputSize is each task's result size.
	OutputSize Size `yaml:"output_size,omitempty" json:"output_size,omitempty"`
	// Load, for a bag with no Rate, sets the arrival rate to this share
	// of the swarm's capacity (slots / mean duration); 0 submits all at once.
	Load float64 `yaml:"load,omitempty" json:"load,omitempty"`
	// Maps, Reduces, InputSize: a map-reduce job has Maps maps, each
	// reading InputSize bytes put by the submitter, and Reduces reduces
	// reading every map's output.
	Maps      int  `yaml:"maps,omitempty" json:"maps,omitempty"`
	Reduces   int  `yaml:"reduces,omitempty" json:"reduces,omitempty"`
	InputSize Size `yaml:"input_size,omitempty" json:"input_size,omitempty"`
	// Fanin: a tree reduction combines Fanin results per task, over
	// Leaves leaf tasks per job.
	Fanin  int `yaml:"fanin,omitempty" json:"fanin,omitempty"`
	Leaves int `yaml:"leaves,omitempty" json:"leaves,omitempty"`
	// Length: a chain is Length tasks, each needing the one before.
	Length int `yaml:"length,omitempty" json:"length,omitempty"`
	// FibN: fib(n) calls fib(n-1) and fib(n-2) as nested tasks and blocks
	// on both; 2*F(n+1)-1 tasks.
	FibN int `yaml:"fib_n,omitempty" json:"fib_n,omitempty"`
	// Jobs is how many fib trees run (each from its submitter).
	Jobs int `yaml:"jobs,omitempty" json:"jobs,omitempty"`
}

// Submit says who submits the workload and how fast.
type Submit struct {
	// From is "one" (peer 0) or "all" (jobs round-robin over the
	// initial peers).
	From string `yaml:"from" json:"from"`
	// Rate is jobs per second across the swarm (Poisson arrivals); 0 uses
	// Workload.Load for a bag, or submits everything at once.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
}

// ChurnEvent is a churn step at a set time.
type ChurnEvent struct {
	At     Duration `yaml:"at" json:"at"`
	Action string   `yaml:"action" json:"action"` // join, leave or crash
	Count  int      `yaml:"count,omitempty" json:"count,omitempty"`
	// Fraction of the live peers, instead of Count.
	Fraction float64 `yaml:"fraction,omitempty" json:"fraction,omitempty"`
}

// Churn is peers joining and leaving during the run.
type Churn struct {
	// Rates are events per second across the swarm, from Start to End
	// (End 0: until the workload is submitted).
	JoinRate  float64  `yaml:"join_rate,omitempty" json:"join_rate,omitempty"`
	LeaveRate float64  `yaml:"leave_rate,omitempty" json:"leave_rate,omitempty"`
	CrashRate float64  `yaml:"crash_rate,omitempty" json:"crash_rate,omitempty"`
	Start     Duration `yaml:"start,omitempty" json:"start,omitempty"`
	End       Duration `yaml:"end,omitempty" json:"end,omitempty"`
	// Events happen at set times.
	Events []ChurnEvent `yaml:"events,omitempty" json:"events,omitempty"`
	// CrashSubmitters lets crashes and leaves hit submitting peers (their
	// unfinished tasks then fail: "owner died"). Off by default.
	CrashSubmitters bool `yaml:"crash_submitters,omitempty" json:"crash_submitters,omitempty"`
}

// Partition splits the swarm at At and heals it at Heal.
type Partition struct {
	At   Duration `yaml:"at" json:"at"`
	Heal Duration `yaml:"heal" json:"heal"`
	// Fraction of the peers on the minority side (the submitters stay on
	// the majority side).
	Fraction float64 `yaml:"fraction" json:"fraction"`
}

// Scenario is one simulation: the swarm, its network, its workload and
// what happens to it. LoadScenario reads a file on top of
// DefaultScenario, so fields a file leaves out keep the defaults (the
// node's, where the node has the setting); a Scenario built in Go should
// start from DefaultScenario too.
type Scenario struct {
	Name  string `yaml:"name,omitempty" json:"name,omitempty"`
	Seed  uint64 `yaml:"seed" json:"seed"`
	Peers int    `yaml:"peers" json:"peers"`
	// Slots per peer, or SlotClasses for a mixed swarm.
	Slots       int         `yaml:"slots,omitempty" json:"slots,omitempty"`
	SlotClasses []SlotClass `yaml:"slot_classes,omitempty" json:"slot_classes,omitempty"`
	Network     Network     `yaml:"network" json:"network"`
	// Shards is how many load shards (GossipSub topics) the swarm's
	// beacons and offers are split into, as the node does (sched.Shards,
	// sched.ShardOf): each peer beacons and offers on its home shard and
	// hears its home shard and one other. 0: auto, sched.Shards(Peers),
	// the node's default (1 up to 64 peers); 1: a single topic, every peer
	// hears every other; k: forced, a power of two. Peers that join mid-run
	// use the same count (the initial peers'), as a node's estimate of the
	// swarm's size would barely move.
	Shards int `yaml:"shards,omitempty" json:"shards,omitempty"`
	// BeaconScope, when not 0, replaces the shards by another model of
	// who hears a peer's beacons and offers: a fixed neighbourhood of
	// about BeaconScope random peers. It cannot be combined with a forced
	// Shards above 1.
	BeaconScope int `yaml:"beacon_scope,omitempty" json:"beacon_scope,omitempty"`
	// ProbeBatch is the scheduler's probe batch (sched.Config.ProbeBatch):
	// work that finds no known peer with room asks up to this many random
	// peers it does not know for their load at once. Default 32, as the
	// node; 0 turns probes off.
	ProbeBatch int `yaml:"probe_batch" json:"probe_batch"`
	// MaxRetries is how many times a task whose executor is lost (crashed,
	// or cut off) is placed again before it fails, as the node's
	// Config.MaxRetries (an ExecutorLostError there). Default 3, as the
	// node; 0 fails a task the first time its executor is lost; -1 places
	// it again without limit.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// DetectionDelay is how long peers take to notice a crashed or
	// partitioned peer (connection loss).
	DetectionDelay Duration    `yaml:"detection_delay,omitempty" json:"detection_delay,omitempty"`
	Workload       Workload    `yaml:"workload" json:"workload"`
	Submit         Submit      `yaml:"submit" json:"submit"`
	Churn          Churn       `yaml:"churn,omitempty" json:"churn,omitempty"`
	Partitions     []Partition `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// Warmup is how long the swarm runs before the workload starts, so
	// that beacons have been heard (default 1s). Churn and partition
	// times count from the end of the warm-up, as do the makespan and the
	// time series.
	Warmup Duration `yaml:"warmup,omitempty" json:"warmup,omitempty"`
	// SampleEvery is the period of the CSV time series (0: about 200 rows).
	SampleEvery Duration `yaml:"sample_every,omitempty" json:"sample_every,omitempty"`
	// MaxTime stops a run that has not finished by then (0: 24 h).
	MaxTime Duration `yaml:"max_time,omitempty" json:"max_time,omitempty"`
}

// Defaults the simulated swarm shares with the node (package node's
// DefaultConfig), from their one source.
const (
	// DefaultProbeBatch is the node's probe batch.
	DefaultProbeBatch = sched.DefaultProbeBatch
	// DefaultMaxRetries is the node's DefaultMaxRetries.
	DefaultMaxRetries = sched.DefaultMaxRetries
	// maxShards bounds a forced shard count.
	maxShards = 1 << 20
)

// Bounds of a scenario, so that a valid one cannot ask for more memory
// than the simulator can hold or loop without end.
const (
	maxPeers     = 1_000_000 // initial peers
	maxRunPeers  = 2_000_000 // initial peers and those that join
	maxSlots     = 1 << 20   // per peer
	maxChurnRate = 1e6       // churn events per second
	maxJob       = 10_000_000
	maxRegions   = 256 // network.region is a uint8
	maxSigma     = 4   // lognormal: beyond, draws overflow int64 nanoseconds
)

// DefaultScenario is a bag of 10,000 tasks (exponential, mean 100 ms)
// submitted by one peer to 50 peers with 4 slots on a LAN (0.2 ms
// latency, 1 Gbit/s), with the node's defaults: shards from the swarm's
// size, probes in batches of 32, tasks placed again up to 3 times when
// their executor is lost.
func DefaultScenario() Scenario {
	return Scenario{
		Name:  "default",
		Seed:  1,
		Peers: 50,
		Slots: 4,
		Network: Network{
			Latency:       Dist{Kind: "constant", Mean: Duration(200 * time.Microsecond)},
			BandwidthMbps: 1000,
			RTO:           Duration(200 * time.Millisecond),
		},
		DetectionDelay: Duration(2 * time.Second),
		Warmup:         Duration(time.Second),
		ProbeBatch:     DefaultProbeBatch,
		MaxRetries:     DefaultMaxRetries,
		Workload: Workload{
			Kind:       "bag",
			Tasks:      10000,
			Duration:   Dist{Kind: "exponential", Mean: Duration(100 * time.Millisecond)},
			OutputSize: 1 << 10,
			// Parameters of the other kinds, used when Kind is changed.
			Maps: 16, Reduces: 4, InputSize: 1 << 20,
			Fanin: 2, Leaves: 64, Length: 10, FibN: 20, Jobs: 1,
		},
		Submit: Submit{From: "one"},
	}
}

// LoadScenario reads a scenario from a .yaml, .yml or .json file (see
// ParseScenario); a scenario without a name takes the file's.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("sim: read scenario: %w", err)
	}
	var format string
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		format = "yaml"
	case ".json":
		format = "json"
	default:
		return Scenario{}, fmt.Errorf("%w: %s: extension %q: want .yaml, .yml or .json", ErrScenario, path, ext)
	}
	s, err := parseScenario(data, format, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseScenario reads a scenario in format "yaml" or "json" on top of
// DefaultScenario, and validates it. Unknown fields, trailing documents
// and invalid values are errors wrapping ErrScenario.
func ParseScenario(data []byte, format string) (Scenario, error) {
	return parseScenario(data, format, "")
}

func parseScenario(data []byte, format, name string) (Scenario, error) {
	s := DefaultScenario()
	if name != "" {
		s.Name = name
	}
	switch format {
	case "yaml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err := dec.Decode(&s)
		if err == nil {
			// Another document is an error, an empty one after "---" not.
			var extra any
			for err == nil {
				if e := dec.Decode(&extra); errors.Is(e, io.EOF) {
					break
				} else if e != nil {
					err = e
				} else if extra != nil {
					err = errors.New("more than one YAML document: want one scenario")
				}
			}
		} else if errors.Is(err, io.EOF) {
			err = errors.New("no YAML document: want a scenario")
		}
		if err != nil {
			return Scenario{}, fmt.Errorf("%w: %s", ErrScenario, oneLine(err))
		}
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err := dec.Decode(&s)
		if err == nil {
			var extra json.RawMessage
			if dec.Decode(&extra) != io.EOF {
				err = errors.New("data after the JSON object: want one scenario")
			}
		} else if errors.Is(err, io.EOF) {
			err = errors.New("no JSON object: want a scenario")
		}
		if err != nil {
			return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, err)
		}
	default:
		return Scenario{}, fmt.Errorf("%w: format %q: want yaml or json", ErrScenario, format)
	}
	if err := s.Validate(); err != nil {
		return Scenario{}, err
	}
	return s, nil
}

// oneLine flattens yaml's multi-line errors.
func oneLine(err error) string {
	f := strings.Fields(strings.ReplaceAll(err.Error(), "\n", " "))
	return strings.Join(f, " ")
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrScenario}, args...)...)
}

// Validate reports the first problem with s, naming the field and what to
// do about it.
func (s *Scenario) Validate() error {
	if s.Peers < 1 || s.Peers > maxPeers {
		return bad("peers is %d: want 1 to 1,000,000", s.Peers)
	}
	if len(s.SlotClasses) == 0 && (s.Slots < 1 || s.Slots > maxSlots) {
		return bad("slots is %d: want 1 to %d (or give slot_classes)", s.Slots, maxSlots)
	}
	share := 0.0
	for i, c := range s.SlotClasses {
		if c.Slots < 1 || c.Slots > maxSlots || !(c.Share > 0) || math.IsInf(c.Share, 0) {
			return bad("slot_classes[%d]: want slots 1 to %d and share > 0, got slots %d share %g", i, maxSlots, c.Slots, c.Share)
		}
		share += c.Share
	}
	if len(s.SlotClasses) > 0 && math.Abs(share-1) > 1e-6 {
		return bad("slot_classes: shares add up to %g: make them add up to 1", share)
	}
	if err := s.Network.validate(); err != nil {
		return err
	}
	if s.BeaconScope < 0 {
		return bad("beacon_scope is %d: want 0 (shards decide who hears a beacon) or a neighbourhood size", s.BeaconScope)
	}
	if s.Shards < 0 || s.Shards > maxShards || s.Shards&(s.Shards-1) != 0 {
		return bad("shards is %d: want 0 (auto, from the number of peers), 1 (one topic) or a power of two up to %d", s.Shards, maxShards)
	}
	if s.BeaconScope > 0 && s.Shards > 1 {
		return bad("beacon_scope %d with shards %d: both say who hears a beacon; set one of them", s.BeaconScope, s.Shards)
	}
	if s.ProbeBatch < 0 {
		return bad("probe_batch is %d: want 0 (no probes) or how many probes may be in flight", s.ProbeBatch)
	}
	if s.MaxRetries < -1 {
		return bad("max_retries is %d: want -1 (no limit), 0 (never place a task again) or a number of re-placements", s.MaxRetries)
	}
	if s.DetectionDelay <= 0 {
		return bad("detection_delay is %s: want a positive duration such as 2s", s.DetectionDelay)
	}
	if err := s.Workload.validate(); err != nil {
		return err
	}
	switch s.Submit.From {
	case "one", "all":
	default:
		return bad("submit.from is %q: want one or all", s.Submit.From)
	}
	if !(s.Submit.Rate >= 0) || math.IsInf(s.Submit.Rate, 0) {
		return bad("submit.rate is %g: want jobs per second >= 0", s.Submit.Rate)
	}
	c := s.Churn
	for _, r := range []float64{c.JoinRate, c.LeaveRate, c.CrashRate} {
		if !(r >= 0 && r <= maxChurnRate) {
			return bad("churn rates are %g, %g and %g (join, leave, crash): want events per second from 0 to %g", c.JoinRate, c.LeaveRate, c.CrashRate, float64(maxChurnRate))
		}
	}
	if c.Start < 0 || c.End < 0 || c.End != 0 && c.End < c.Start {
		return bad("churn.start (%s) and churn.end (%s): want 0 <= start <= end (end 0: until the workload is submitted)", c.Start, c.End)
	}
	joins := 0
	for i, e := range c.Events {
		switch e.Action {
		case "join", "leave", "crash":
		default:
			return bad("churn.events[%d].action is %q: want join, leave or crash", i, e.Action)
		}
		if e.At < 0 || (e.Count < 0 || e.Count > maxPeers || !(e.Fraction >= 0 && e.Fraction <= 1)) || (e.Count == 0 && e.Fraction == 0) {
			return bad("churn.events[%d]: want at >= 0 and a count or a fraction in (0,1] (a count up to %d)", i, maxPeers)
		}
		if e.Action == "join" {
			joins += max(e.Count, int(math.Round(e.Fraction*float64(s.Peers))))
		}
	}
	if s.Peers+joins > maxRunPeers {
		return bad("churn.events: %d peers join the %d initial ones: want at most %d in a run", joins, s.Peers, maxRunPeers)
	}
	for i, p := range s.Partitions {
		if !(p.Fraction > 0 && p.Fraction < 1) {
			return bad("partitions[%d].fraction is %g: want a share of the peers in (0,1)", i, p.Fraction)
		}
		if p.At < 0 {
			return bad("partitions[%d].at is %s: must not be negative", i, p.At)
		}
		if p.Heal <= p.At {
			return bad("partitions[%d]: heal (%s) must come after at (%s)", i, p.Heal, p.At)
		}
		if i > 0 && p.At < s.Partitions[i-1].Heal {
			return bad("partitions[%d] starts before partitions[%d] heals: one partition at a time", i, i-1)
		}
	}
	if s.SampleEvery < 0 || s.MaxTime < 0 || s.Warmup < 0 {
		return bad("warmup, sample_every and max_time must not be negative")
	}
	return nil
}

func (n *Network) validate() error {
	if n.Latency.Kind == "matrix" {
		if len(n.Regions) == 0 || len(n.Matrix) != len(n.Regions) {
			return bad("network: latency matrix needs regions and a matrix_ms with one row per region (%d regions, %d rows)", len(n.Regions), len(n.Matrix))
		}
		if len(n.Regions) > maxRegions {
			return bad("network.regions: %d regions: want at most %d", len(n.Regions), maxRegions)
		}
		share := 0.0
		for i, r := range n.Regions {
			if !(r.Share > 0) || math.IsInf(r.Share, 0) {
				return bad("network.regions[%d] (%s): share must be > 0", i, r.Name)
			}
			share += r.Share
			if len(n.Matrix[i]) != len(n.Regions) {
				return bad("network.matrix_ms row %d has %d entries: want %d", i, len(n.Matrix[i]), len(n.Regions))
			}
			for _, v := range n.Matrix[i] {
				if !(v >= 0 && v <= maxSeconds*1e3) {
					return bad("network.matrix_ms row %d: latencies must be milliseconds >= 0", i)
				}
			}
		}
		if !(math.Abs(share-1) <= 1e-6) {
			return bad("network.regions: shares add up to %g: make them add up to 1", share)
		}
		if !(n.Jitter >= 0 && n.Jitter < 1) {
			return bad("network.jitter is %g: want a fraction in [0,1)", n.Jitter)
		}
	} else if err := n.Latency.validate("network.latency"); err != nil {
		return err
	}
	if !(n.BandwidthMbps > 0) || math.IsInf(n.BandwidthMbps, 0) {
		return bad("network.bandwidth_mbps is %g: want a positive uplink speed in Mbit/s", n.BandwidthMbps)
	}
	if !(n.Loss >= 0 && n.Loss < 1) {
		return bad("network.loss is %g: want a probability in [0,1)", n.Loss)
	}
	if n.Loss > 0 && n.RTO <= 0 {
		return bad("network.rto is %s: with loss, want a positive retransmission timeout such as 200ms", n.RTO)
	}
	return nil
}

func (d *Dist) validate(field string) error {
	switch d.Kind {
	case "constant", "exponential":
		if d.Mean < 0 {
			return bad("%s.mean is %s: must not be negative", field, d.Mean)
		}
	case "uniform":
		if d.Max < d.Min || d.Min < 0 {
			return bad("%s: uniform needs 0 <= min <= max (min %s, max %s)", field, d.Min, d.Max)
		}
	case "normal":
		if d.Mean < 0 || d.Stddev < 0 || d.Min < 0 {
			return bad("%s: normal needs mean >= 0, stddev >= 0 and min >= 0", field)
		}
	case "lognormal":
		if d.Mean <= 0 || !(d.Sigma > 0 && d.Sigma <= maxSigma) {
			return bad("%s: lognormal needs mean > 0 and sigma in (0, %g]", field, float64(maxSigma))
		}
	case "":
		return bad("%s.dist is missing: want constant, uniform, normal, lognormal or exponential", field)
	default:
		return bad("%s.dist is %q: want constant, uniform, normal, lognormal or exponential", field, d.Kind)
	}
	return nil
}

func (w *Workload) validate() error {
	if err := w.Duration.validate("workload.duration"); err != nil {
		return err
	}
	if w.OutputSize < 0 || w.InputSize < 0 {
		return bad("workload sizes must not be negative")
	}
	if !(w.Load >= 0 && w.Load <= 10) {
		return bad("workload.load is %g: want a share of capacity such as 0.8", w.Load)
	}
	switch w.Kind {
	case "bag", "chain", "tree", "mapreduce":
		if w.Tasks < 1 || w.Tasks > 100_000_000 {
			return bad("workload.tasks is %d: want 1 to 100,000,000", w.Tasks)
		}
	}
	switch w.Kind {
	case "bag":
	case "chain":
		if w.Length < 1 || w.Length > maxJob {
			return bad("workload.length is %d: a chain needs length 1 to %d", w.Length, maxJob)
		}
	case "tree":
		if w.Fanin < 2 || w.Leaves < 2 || w.Leaves > maxJob {
			return bad("workload: a tree reduction needs fanin >= 2 and leaves 2 to %d (got %d, %d)", maxJob, w.Fanin, w.Leaves)
		}
	case "mapreduce":
		if w.Maps < 1 || w.Reduces < 1 || w.Maps > maxJob || w.Reduces > maxJob || int64(w.Maps)*int64(w.Reduces) > maxJob {
			return bad("workload: mapreduce needs maps >= 1 and reduces >= 1, maps x reduces up to %d (got %d, %d)", maxJob, w.Maps, w.Reduces)
		}
	case "fib":
		if w.FibN < 1 || w.FibN > 32 {
			return bad("workload.fib_n is %d: want 1 to 32", w.FibN)
		}
		if w.Jobs < 0 || w.Jobs > maxJob {
			return bad("workload.jobs is %d: want 1 to %d fib trees (0: 1)", w.Jobs, maxJob)
		}
	case "":
		return bad("workload.kind is missing: want bag, mapreduce, tree, chain or fib")
	default:
		return bad("workload.kind is %q: want bag, mapreduce, tree, chain or fib", w.Kind)
	}
	return nil
}

// Undisturbed returns s without churn and partitions: the baseline its
// makespan penalty is measured against.
func (s Scenario) Undisturbed() Scenario {
	s.Churn = Churn{}
	s.Partitions = nil
	return s
}

// Disturbed reports whether s has churn or partitions.
func (s *Scenario) Disturbed() bool {
	c := s.Churn
	return len(s.Partitions) > 0 || len(c.Events) > 0 || c.CrashRate > 0 || c.LeaveRate > 0 || c.JoinRate > 0
}

// slotsOf returns the slots of peer i of n (slot classes are laid out in
// order over the peer indices, deterministically).
func (s *Scenario) slotsOf(i, n int) int {
	if len(s.SlotClasses) == 0 {
		return s.Slots
	}
	x := (float64(i) + 0.5) / float64(n)
	acc := 0.0
	for _, c := range s.SlotClasses {
		acc += c.Share
		if x < acc {
			return c.Slots
		}
	}
	return s.SlotClasses[len(s.SlotClasses)-1].Slots
}
