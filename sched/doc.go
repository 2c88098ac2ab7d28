// Package sched is one dray peer's brain: its scheduler and the task
// lifecycle around it, as a deterministic state machine.
//
// A Scheduler never does I/O, starts no goroutines, reads no clock and
// draws no randomness of its own: like etcd's raft core, it takes events
// (a task was submitted, an object became ready, a task finished, a task
// blocked in Get, a hand-off was lost, a peer is gone, ...) through Step
// and hands back actions (run this task here, forward that one, fail a
// third because its dependency failed) through TakeActions. The caller
// performs the actions. The node drives it with real workers and
// sessions; the simulator drives the very same code for each virtual
// peer against a virtual clock, which is what makes both deterministic
// to test. The timings and defaults both run by are here too
// (SwarmConfig, TickEvery, InlineMax, ...).
//
// Where a task runs is the scheduler's record alone (HandedTo): a
// completion, refusal or loss reported by any other peer does not fit
// it. A task this peer owns has one retry budget (Config.MaxRetries, or
// the submission's), spent by executors lost (Lost, PeerGone) and, when
// it retries errors, by the function's own failures (Done with
// Retryable, a Retry action); past it the task fails (Fail, FailLost).
// A peer gone is one step: the tasks handed to it are placed again or
// failed, and the tasks it handed us stop (Cancel). Tasks handed to us
// (Submit with Owner) are refused while leaving or with a full queue
// (Refuse); Leave hands back those not started. Offers heard are
// claimed while slots are idle (OfferHeard, ClaimOffer). With
// Config.Check every step verifies the invariants and panics naming the
// one broken.
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
//
// Peers run only the functions they offer. A task names its function
// (Submit's Func, a hash of its identity) and the resources it needs
// (Needs); each peer's beacon names its function table by a digest, which
// a peer that has not seen it asks for (FetchFuncs) and steps (Offers).
// Ready tasks wait in one queue per function and needs (a class, as in
// Ray), so work no peer with room can run does not hold up the rest; a
// task goes only to peers whose tables offer its function and hold its
// needs, runs here only while its needs are free (Config.Resources), and
// fails (FailNoPeer) if no known peer offers it for Config.FuncWait ticks.
// See funcs.go and resources.go.
package sched
