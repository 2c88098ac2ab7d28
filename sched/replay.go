package sched

import (
	"fmt"
	"reflect"
	"slices"
)

// Recording is a scheduler's history: every event stepped, with the
// actions and error it produced. Feeding its events to a new Scheduler
// with the same Config (Seed and Self, or an equally seeded Rand) gives the
// same actions: the core is deterministic, whoever drives it (Replay).
type Recording struct {
	Steps []RecordedStep
}

// RecordedStep is one step of a Recording.
type RecordedStep struct {
	Event   Event
	Actions []Action
	Err     string
}

// Record returns a Trace function (Config.Trace) that appends to r. It
// copies what it keeps, so the caller may reuse its buffers.
func (r *Recording) Record() func(Event, []Action, error) {
	return func(ev Event, acts []Action, err error) {
		ev.Deps = slices.Clone(ev.Deps)
		ev.Inputs = slices.Clone(ev.Inputs)
		ev.Lent = slices.Clone(ev.Lent)
		st := RecordedStep{Event: ev, Actions: slices.Clone(acts)}
		if err != nil {
			st.Err = err.Error()
		}
		r.Steps = append(r.Steps, st)
	}
}

// Replay feeds r's events to a new Scheduler for cfg (its Trace is
// ignored) and reports the first step whose actions or error differ from
// the recording, or nil if none does.
func Replay(cfg Config, r *Recording) error {
	cfg.Trace = nil
	s, err := New(cfg)
	if err != nil {
		return err
	}
	for i, st := range r.Steps {
		n0 := len(s.actions)
		err := s.Step(st.Event)
		got := s.actions[n0:]
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if msg != st.Err || !reflect.DeepEqual(slices.Clip(got), st.Actions) && !(len(got) == 0 && len(st.Actions) == 0) {
			return fmt.Errorf("sched: replay differs at step %d (%s): recorded %v %q, replayed %v %q",
				i, st.Event.Kind, st.Actions, st.Err, got, msg)
		}
		s.actions = s.actions[:0]
	}
	return nil
}
