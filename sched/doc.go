// Package sched is dray's scheduler as a deterministic state machine.
//
// A Scheduler never does I/O, starts no goroutines, reads no clock and
// draws no randomness of its own: like etcd's raft core, it takes events
// (a task was submitted, an object became ready, a task finished, a task
// blocked in Get, ...) through Step and hands back actions (run this task
// here, fail that one because its dependency failed) through TakeActions
// (HasActions says whether any are pending). The caller performs the actions. The node drives it with real workers; the
// simulator drives the very same code against a virtual clock, which is
// what makes both deterministic to test.
//
// Slots model the worker pool: a task holds a slot while it runs, gives it
// back while it is blocked waiting for another object (so nested tasks
// cannot deadlock the pool, as in Ray), and takes it again when it resumes,
// even if that briefly oversubscribes the pool; no new task starts until the
// pool is back under its size.
//
// Tasks that wait for no object run in submission order (FIFO), except
// that tasks submitted by running tasks (nested) go to the front: nested
// work runs depth-first, so a recursive function such as fib keeps a number
// of blocked parents proportional to its depth rather than to its total
// work. A task with dependencies joins the queue when the last of them is
// ready. A task whose dependency fails is failed without running.
//
// Across peers, a task that finds no local slot goes by power-of-two
// choices to a peer whose load beacon shows room (PeerLoad), preferring
// the peer holding more of its input bytes; a peer's completion gives its
// place back at once. Work nobody takes is offered (Offer, Claim). With
// Config.ProbeBatch set, work that finds no known peer with room also asks
// for probes of peers it does not know (Probe, ProbeReply), so a peer that
// hears only a neighbourhood's beacons still reaches the whole swarm.
package sched
