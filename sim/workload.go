package sim

import (
	"math"
	"slices"
	"strconv"

	"github.com/dray-project/dray/sched"
)

// Task states, as the owner sees them.
const (
	tNew       uint8 = iota // not submitted yet
	tSubmitted              // in the owner's scheduler (or rebuilding)
	tDone                   // output exists
	tFailed                 // failed: a dependency failed, or the owner died
	tAbandoned              // nested task whose owner died; its parent re-runs
)

// taskRec is one task: its spec (duration, output size, dependencies,
// nested children) and where it stands. Task IDs are base-36 counters, and
// a task's output object has the task's ID.
type taskRec struct {
	id       sched.TaskID
	dur      int64 // ns of work
	out      int64 // output bytes
	input    int64 // bytes of a put argument held by the owner (map input)
	submitAt int64
	doneAt   int64 // when the owner first had the output
	startAt  int64 // first start of a run
	owner    int32
	exec     int32 // peer placed on (owner: run here), -1 none
	parent   int32 // nested: the task that submitted it; -1 top-level
	holder   int32 // output's holder once done
	depOff   int32 // dependencies: Sim.deps[depOff : depOff+nDeps]
	nDeps    int32
	refs     int32 // dependents not finished: the output is still needed
	kids     int32 // fib: children not done
	epoch    uint16
	pEpoch   uint16 // nested: the parent's run epoch it belongs to
	runs     uint16
	state    uint8
	fibN     int8
	top      bool // submitted by the user (not nested)
	final    bool // no dependents: the user gets it
	lost     bool // output lost with its holder; being rebuilt
}

// genWorkload creates the top-level tasks of sc and their submission
// times and owners.
func (s *Sim) genWorkload() {
	w := s.sc.Workload
	r := s.rng
	nInit := s.sc.Peers
	submitters := []int32{0}
	if s.sc.Submit.From == "all" {
		submitters = make([]int32, nInit)
		for i := range submitters {
			submitters[i] = int32(i)
		}
	}
	for _, p := range submitters {
		s.peers[p].submitter = true
	}
	var jobs int
	var perJob int
	switch w.Kind {
	case "bag":
		jobs, perJob = w.Tasks, 1
	case "chain":
		perJob = w.Length
		jobs = max(1, w.Tasks/perJob)
	case "tree":
		// A tree over L leaves has about L*f/(f-1) tasks.
		perJob = int(math.Ceil(float64(w.Leaves) * float64(w.Fanin) / float64(w.Fanin-1)))
		jobs = max(1, w.Tasks/perJob)
	case "mapreduce":
		perJob = w.Maps + w.Reduces
		jobs = max(1, w.Tasks/perJob)
	case "fib":
		jobs = max(1, w.Jobs)
	}
	// Arrival times: Poisson at Rate jobs/s, or from Load for a bag.
	rate := s.sc.Submit.Rate
	if rate == 0 && w.Load > 0 {
		mean := meanOf(w.Duration)
		if mean > 0 {
			rate = w.Load * float64(s.totalSlots) / (mean / 1e9) / float64(perJob)
		}
	}
	t := 0.0
	for j := range jobs {
		if rate > 0 && j > 0 {
			t += -math.Log(1-r.Float64()) / rate * 1e9
		}
		at := satAdd(s.t0, ns(t))
		owner := submitters[j%len(submitters)]
		switch w.Kind {
		case "bag":
			s.addTop(owner, at, -1, nil)
		case "chain":
			prev := int32(-1)
			for range perJob {
				var deps []int32
				if prev >= 0 {
					deps = []int32{prev}
				}
				prev = s.addTop(owner, at, -1, deps)
			}
		case "tree":
			level := make([]int32, 0, w.Leaves)
			for range w.Leaves {
				level = append(level, s.addTop(owner, at, -1, nil))
			}
			for len(level) > 1 {
				var next []int32
				for i := 0; i < len(level); i += w.Fanin {
					next = append(next, s.addTop(owner, at, -1, level[i:min(i+w.Fanin, len(level))]))
				}
				level = next
			}
		case "mapreduce":
			maps := make([]int32, w.Maps)
			for i := range maps {
				maps[i] = s.addTop(owner, at, -1, nil)
				s.tasks[maps[i]].input = int64(w.InputSize)
			}
			for range w.Reduces {
				s.addTop(owner, at, -1, maps)
			}
		case "fib":
			s.addTop(owner, at, int8(w.FibN), nil)
		}
	}
	for i := range s.tasks {
		s.tasks[i].final = s.tasks[i].refs == 0
	}
	s.subs = make([]int32, len(s.tasks))
	for i := range s.subs {
		s.subs[i] = int32(i)
	}
	slices.SortStableFunc(s.subs, func(a, b int32) int {
		ta, tb := s.tasks[a].submitAt, s.tasks[b].submitAt
		switch {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	s.topTasks = len(s.tasks)
}

// newTask appends a task record and returns its index.
func (s *Sim) newTask(owner int32, at int64, fibN int8, parent int32, deps []int32) int32 {
	i := int32(len(s.tasks))
	w := s.sc.Workload
	d := sample(w.Duration, s.rng)
	s.maxDur = max(s.maxDur, d)
	rec := taskRec{
		id: sched.TaskID(strconv.FormatInt(int64(i), 36)), dur: d, out: int64(w.OutputSize), submitAt: at,
		owner: owner, exec: -1, parent: parent, holder: -1, depOff: int32(len(s.deps)), nDeps: int32(len(deps)),
		fibN: fibN, top: parent < 0,
	}
	if w.Kind == "fib" {
		rec.out = 8
	}
	s.deps = append(s.deps, deps...)
	for _, d := range deps {
		s.tasks[d].refs++
	}
	s.tasks = append(s.tasks, rec)
	s.peers[owner].owned = append(s.peers[owner].owned, i)
	return i
}

func (s *Sim) addTop(owner int32, at int64, fibN int8, deps []int32) int32 {
	return s.newTask(owner, at, fibN, -1, deps)
}

// depsOf returns t's dependencies.
func (s *Sim) depsOf(t *taskRec) []int32 { return s.deps[t.depOff : t.depOff+t.nDeps] }

// taskIndex parses a task ID back to its index.
func taskIndex(id sched.TaskID) int32 {
	var n int64
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
			n = n*36 + int64(c-'0')
		default:
			n = n*36 + int64(c-'a'+10)
		}
	}
	return int32(n)
}

// criticalPath returns, over the tasks that finished, the ideal makespan
// bound from dependencies: the latest submission time plus the longest
// chain of work after it (dependencies and nested children).
func (s *Sim) criticalPath() int64 {
	cp := make([]int64, len(s.tasks))
	// Dependencies point to lower indices, children to higher: children
	// first (reverse), then dependencies (forward).
	child := make([]int64, len(s.tasks))
	for i := len(s.tasks) - 1; i >= 0; i-- {
		t := &s.tasks[i]
		if t.state != tDone {
			continue
		}
		if t.parent >= 0 && s.tasks[t.parent].state == tDone {
			child[t.parent] = max(child[t.parent], t.dur+child[i])
		}
	}
	var best int64
	for i := range s.tasks {
		t := &s.tasks[i]
		if t.state != tDone {
			continue
		}
		var dep int64
		for _, d := range s.depsOf(t) {
			dep = max(dep, cp[d])
		}
		cp[i] = max(dep, t.submitAt) + t.dur + child[i]
		if t.top {
			best = max(best, cp[i])
		}
	}
	return max(best-s.t0, 0)
}
