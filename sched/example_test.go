package sched_test

import (
	"fmt"

	"github.com/dray-project/dray/sched"
)

// Example drives the scheduler by hand, as the node does: feed events,
// perform the actions it returns.
func Example() {
	s, err := sched.New(sched.Config{Slots: 1})
	if err != nil {
		panic(err)
	}
	step := func(ev sched.Event) {
		if err := s.Step(ev); err != nil {
			panic(err)
		}
		for _, a := range s.TakeActions(nil) {
			fmt.Println(a.Kind, a.Task)
		}
	}
	step(sched.Event{Kind: sched.Submit, Task: "a"})                              // runs: a slot is free
	step(sched.Event{Kind: sched.Submit, Task: "b", Deps: []sched.ObjectID{"x"}}) // waits for x
	step(sched.Event{Kind: sched.ObjectReady, Object: "x"})                       // b is ready, but the slot is taken
	step(sched.Event{Kind: sched.Done, Task: "a"})                                // a's slot goes to b
	// Output:
	// run a
	// run b
}
