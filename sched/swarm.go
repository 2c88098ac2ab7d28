package sched

import "time"

// The timings and defaults of a swarm peer. The node runs by them and the
// simulator models them, from this one source: a change here changes
// both.
const (
	// TickEvery is the wall time of one Tick.
	TickEvery = time.Second
	// BeaconEvery is how often a peer looks at its load: it beacons when
	// the load changed, at most this often...
	BeaconEvery = 250 * time.Millisecond
	// BeaconIdle ... and at least this often.
	BeaconIdle = 2 * time.Second
	// AckDelay is how long an executor waits to acknowledge a hand-off: a
	// task that finishes sooner is acknowledged by its completion.
	AckDelay = 5 * time.Millisecond
	// AnnounceAge is how long an object must live before it is announced
	// in the DHT (short-lived intermediates never are).
	AnnounceAge = time.Second
	// InlineMax is the largest value that travels inside a hand-off or a
	// completion; a larger result stays with its executor, lent to the
	// owner, and a larger argument is fetched from its holder.
	InlineMax = 64 << 10
	// DefaultProbeBatch is a swarm peer's Config.ProbeBatch.
	DefaultProbeBatch = 32
	// DefaultMaxRetries is a swarm peer's Config.MaxRetries, as Ray's
	// max_retries.
	DefaultMaxRetries = 3
	// DefaultLeaseTicks is a node's Config.LeaseTicks: a peer holding its
	// tasks that says nothing for 6 ticks (pinged after 2) is dropped.
	DefaultLeaseTicks = 6
	// DefaultSilenceTicks is a node's Config.SilenceTicks: a peer dropped
	// by its lease is given no work for a minute.
	DefaultSilenceTicks = 60
)

// SwarmConfig returns the Config a swarm peer self with slots worker
// slots runs (the node and every virtual peer of the simulator): beacons
// valid for 5 ticks, nested tasks waiting a tick for a local slot, offers
// after 2 ticks, DefaultProbeBatch and DefaultMaxRetries. Set Seed. It
// sets no lease (LeaseTicks, SilenceTicks): a node does, from its
// LeaseTimeout; the simulator models connection loss, not hung peers.
func SwarmConfig(slots int, self PeerID) Config {
	return Config{
		Slots:      slots,
		Self:       self,
		BeaconTTL:  5,
		NestedWait: 1,
		OfferAfter: 2,
		ProbeBatch: DefaultProbeBatch,
		MaxRetries: DefaultMaxRetries,
	}
}

// BeaconDue reports whether a peer that last beaconed last, sinceLast
// ago, beacons now that its load is cur (looked at every BeaconEvery):
// when the load changed, or when BeaconIdle passed.
func BeaconDue(last, cur Load, sent bool, sinceLast time.Duration) bool {
	return !sent || cur != last || sinceLast >= BeaconIdle
}
