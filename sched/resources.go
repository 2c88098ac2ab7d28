package sched

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Resources, as Ray's custom resources: a peer has named quantities
// beside its slots (Config.Resources: gpu=1, license=2), and a task may
// need some (Submit's Needs). A task runs here only while what it needs is
// free, and holds it until it is done (a blocked task keeps it); it goes
// only to peers whose tables (Offers' Resources) have that much at all,
// and waits in their queues for it. Tasks of one function with one set of
// needs form one class: the queue a class keeps is first in, first out.

// Need is a quantity of a named resource a task needs.
type Need struct {
	Name string
	N    int
}

// needsOf returns m sorted by name, and its canonical text ("gpu=1,x=2").
func needsOf(m map[string]int) ([]Need, string, error) {
	if len(m) == 0 {
		return nil, "", nil
	}
	ns := make([]Need, 0, len(m))
	for name, n := range m {
		if name == "" || n <= 0 {
			return nil, "", fmt.Errorf("%w: need %q=%d: want a name and a positive quantity", ErrEvent, name, n)
		}
		ns = append(ns, Need{name, n})
	}
	slices.SortFunc(ns, func(a, b Need) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for i, n := range ns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n.Name + "=" + strconv.Itoa(n.N))
	}
	return ns, b.String(), nil
}

// fitsFree reports whether needs are free on this peer now.
func (s *Scheduler) fitsFree(needs []Need) bool {
	for _, n := range needs {
		if s.cfg.Resources[n.Name]-s.used[n.Name] < n.N {
			return false
		}
	}
	return true
}

// fitsTotal reports whether have holds needs at all.
func fitsTotal(have map[string]int, needs []Need) bool {
	for _, n := range needs {
		if have[n.Name] < n.N {
			return false
		}
	}
	return true
}

// hold takes t's needs as it starts running here.
func (s *Scheduler) hold(t *task) {
	for _, n := range t.needs {
		s.used[n.Name] += n.N
	}
}

// give returns t's needs as it stops running here.
func (s *Scheduler) give(t *task) {
	for _, n := range t.needs {
		if s.used[n.Name] -= n.N; s.used[n.Name] == 0 {
			delete(s.used, n.Name)
		}
	}
}

// Used reports the resources held by the tasks running here.
func (s *Scheduler) Used() map[string]int {
	out := make(map[string]int, len(s.used))
	for k, v := range s.used {
		out[k] = v
	}
	return out
}

// checkResources panics if the resources held disagree with the tasks
// running (Config.Check).
func (s *Scheduler) checkResources() {
	want := make(map[string]int)
	for _, t := range s.tasks {
		if t.state == running || t.state == blocked {
			for _, n := range t.needs {
				want[n.Name] += n.N
			}
		}
	}
	for name, n := range want {
		if s.used[name] != n {
			panic(fmt.Errorf("%w: resource %s: %d held, running tasks need %d", ErrInvariant, name, s.used[name], n))
		}
	}
	if len(want) != len(s.used) {
		panic(fmt.Errorf("%w: resources held %v, running tasks need %v", ErrInvariant, s.used, want))
	}
}

// needsMap is needs as Event.Needs says them.
func needsMap(needs []Need) map[string]int {
	if len(needs) == 0 {
		return nil
	}
	m := make(map[string]int, len(needs))
	for _, n := range needs {
		m[n.Name] = n.N
	}
	return m
}
