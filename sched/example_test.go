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

// Example_peerGone shows the lifecycle around a hand-off: a peer with
// room takes tasks; when it is gone, a task is placed again within its
// retries, and one without retries fails.
func Example_peerGone() {
	cfg := sched.SwarmConfig(1, "A")
	cfg.Seed, cfg.ProbeBatch = 1, 0
	s, err := sched.New(cfg)
	if err != nil {
		panic(err)
	}
	step := func(ev sched.Event) {
		if err := s.Step(ev); err != nil {
			panic(err)
		}
		for _, a := range s.TakeActions(nil) {
			switch a.Kind {
			case sched.Forward:
				fmt.Println(a.Kind, a.Task, "to", a.Peer)
			case sched.Fail:
				fmt.Println(a.Kind, a.Task, a.Reason, a.Peer)
			default:
				fmt.Println(a.Kind, a.Task)
			}
		}
	}
	step(sched.Event{Kind: sched.PeerLoad, Peer: "B", Load: sched.Load{Slots: 1, Free: 1}})
	step(sched.Event{Kind: sched.Submit, Task: "a"})                 // runs here
	step(sched.Event{Kind: sched.Submit, Task: "b"})                 // goes to B
	step(sched.Event{Kind: sched.Submit, Task: "c", MaxRetries: -1}) // to B's queue
	step(sched.Event{Kind: sched.PeerGone, Peer: "B"})               // b waits here again; c fails
	step(sched.Event{Kind: sched.Done, Task: "a"})                   // b runs here
	// Output:
	// run a
	// forward b to B
	// forward c to B
	// fail c lost B
	// run b
}
