package node

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
)

// Config configures a Node. DefaultConfig gives the embedded default: all
// CPUs as worker slots and an object store holding 25% of system memory in
// memory only (set Store.Dir for it to spill to files there when full). A
// Config handed to New is not changed afterwards.
type Config struct {
	// ID names this peer (whoami reports it). Empty: a random ID is made.
	ID string
	// Network joins the node to a swarm: it beacons its load, hands tasks
	// to peers with room and runs tasks peers hand it. nil: a single peer.
	// A *p2p.Host runs over libp2p; a peer of a memnet.Network in memory.
	// The node does not close it.
	Network p2p.Network
	// Slots is the number of tasks that run at once (default: runtime.NumCPU()).
	Slots int
	// Store configures the object store. Store.Dir is the data directory
	// for spilled objects; empty keeps everything in memory.
	Store store.Config
	// Functions are the remote functions this node can run; nil means the
	// Default registry.
	Functions *Registry
	// MemoEntries bounds how many results of deterministic functions are
	// remembered for memoization after their refs are dropped.
	MemoEntries int
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxQueue bounds the tasks queued here for a slot: beyond it, tasks
	// other peers hand over are refused, and their owners place them
	// elsewhere (this node's own calls always queue). 0: 64 per slot.
	MaxQueue int
	// MaxRetries is how many times a task whose executor is lost (its
	// peer or the session to it gone) is placed again before it fails
	// with an ExecutorLostError; a function (MaxRetries option) or a call
	// (CallOptions.MaxRetries) may say otherwise. Errors the function
	// returns are never retried. DefaultConfig: 3.
	MaxRetries int
	// PeerTaskRate bounds how many tasks each other peer may hand this
	// node a second (a token bucket holding a second's worth); beyond it
	// hand-offs are refused. 0: 20,000 a second.
	PeerTaskRate float64
	// MaxPending bounds the unfinished tasks a node tracks (its own and
	// those peers handed it): a Call beyond it waits until one finishes
	// or its context ends (backpressure; calls from running tasks never
	// wait). 0: DefaultMaxPending.
	MaxPending int
	// Shards splits the swarm's load beacons and offers into shard
	// topics (see sched.Shards): a peer beacons on its home shard and
	// hears its home and one other, so it hears about 128 peers however
	// large the swarm. 0: from the network size the DHT estimates,
	// rechecked every shardEvery (1 up to 64 peers: one topic, every
	// peer hears every other); else a power of two, fixed.
	Shards int
	// ProbeBatch bounds the probes in flight (sched.Config.ProbeBatch):
	// while work waits and no peer this node hears has room, it asks
	// random peers it does not hear (from its DHT routing table and
	// connections) for their load on a session. DefaultConfig: 32, and
	// at least 2 per shard (sched.ProbeBatchFor); 0 turns probing off.
	ProbeBatch int
	// LeaseTimeout bounds how long a peer holding tasks this node handed
	// it may stay silent: the node pings it after a third of it and,
	// when nothing at all comes back within LeaseTimeout, drops the
	// session and places the tasks again (as when the connection is
	// lost). 0: DefaultLeaseTimeout.
	LeaseTimeout time.Duration
	// FuncWait bounds how long a call of a function no known peer offers
	// waits for one to appear before it fails with a *NoPeerOffersError.
	// 0: DefaultFuncWait.
	FuncWait time.Duration
	// Resources are this peer's named quantities beside its slots (gpu: 1,
	// license: 2), as Ray's custom resources: a task that needs some (the
	// Needs function option, CallOptions.Needs) runs only on a peer that
	// has them, while they are free there.
	Resources map[string]int
}

// Defaults of the hand-off limits and retries (see Config); those the
// simulator models too are sched's.
const (
	DefaultMaxRetries   = sched.DefaultMaxRetries
	DefaultQueuePerSlot = 64
	DefaultPeerTaskRate = 20_000
	DefaultProbeBatch   = sched.DefaultProbeBatch
	DefaultMaxPending   = 100_000
	DefaultLeaseTimeout = sched.DefaultLeaseTicks * sched.TickEvery
	DefaultFuncWait     = 10 * time.Second
)

func (c Config) maxPending() int {
	if c.MaxPending > 0 {
		return c.MaxPending
	}
	return DefaultMaxPending
}

func (c Config) leaseTimeout() time.Duration {
	if c.LeaseTimeout > 0 {
		return c.LeaseTimeout
	}
	return DefaultLeaseTimeout
}

func (c Config) funcWait() time.Duration {
	if c.FuncWait > 0 {
		return c.FuncWait
	}
	return DefaultFuncWait
}

func (c Config) maxQueue() int {
	if c.MaxQueue > 0 {
		return c.MaxQueue
	}
	return DefaultQueuePerSlot * c.Slots
}

func (c Config) peerTaskRate() float64 {
	if c.PeerTaskRate > 0 {
		return c.PeerTaskRate
	}
	return DefaultPeerTaskRate
}

// DefaultConfig returns the embedded default configuration.
func DefaultConfig() Config {
	return Config{
		Slots:       runtime.NumCPU(),
		Store:       store.DefaultConfig(),
		MemoEntries: 1 << 16,
		MaxRetries:  DefaultMaxRetries,
		ProbeBatch:  DefaultProbeBatch,
	}
}

// Validate reports whether c can be used, naming the offending field.
func (c Config) Validate() error {
	if c.Slots < 1 {
		return fmt.Errorf("node: Slots is %d: must be at least 1", c.Slots)
	}
	if c.MemoEntries < 0 {
		return fmt.Errorf("node: MemoEntries is %d: must not be negative", c.MemoEntries)
	}
	if c.MaxRetries < 0 {
		return fmt.Errorf("node: MaxRetries is %d: must not be negative", c.MaxRetries)
	}
	if c.MaxQueue < 0 {
		return fmt.Errorf("node: MaxQueue is %d: must not be negative (0: %d per slot)", c.MaxQueue, DefaultQueuePerSlot)
	}
	if c.PeerTaskRate < 0 {
		return fmt.Errorf("node: PeerTaskRate is %g: must not be negative (0: %d a second)", c.PeerTaskRate, DefaultPeerTaskRate)
	}
	if c.Shards < 0 || c.Shards&(c.Shards-1) != 0 {
		return fmt.Errorf("node: Shards is %d: must be 0 (from the network size) or a power of two", c.Shards)
	}
	if c.MaxPending < 0 {
		return fmt.Errorf("node: MaxPending is %d: must not be negative (0: %d)", c.MaxPending, DefaultMaxPending)
	}
	if c.ProbeBatch < 0 {
		return fmt.Errorf("node: ProbeBatch is %d: must not be negative (0: no probes)", c.ProbeBatch)
	}
	for name, n := range c.Resources {
		if name == "" || n < 0 {
			return fmt.Errorf("node: resource %q=%d: want a name and a quantity not negative", name, n)
		}
	}
	if c.FuncWait < 0 {
		return fmt.Errorf("node: FuncWait is %v: must not be negative (0: %v)", c.FuncWait, DefaultFuncWait)
	}
	if c.LeaseTimeout < 0 {
		return fmt.Errorf("node: LeaseTimeout is %v: must not be negative (0: %v)", c.LeaseTimeout, DefaultLeaseTimeout)
	}
	if err := c.Store.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}
