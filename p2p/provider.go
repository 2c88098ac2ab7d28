package p2p

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/provider"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// The announcer's hand-over to the DHT's sweeping provider: the provider
// started once the host has a peer, with hooks that count its lookups and
// the records it sends, then queued CIDs handed to it in batches (after a
// linger, with a bound on those in flight) and settled as their first
// records go out.

// trackingSender is the DHT's message sender, reporting every provider record sent.
type trackingSender struct {
	pb.MessageSender
	sent func(key []byte)
}

// SendMessage implements pb.MessageSender.
func (s trackingSender) SendMessage(ctx context.Context, p peer.ID, m *pb.Message) error {
	err := s.MessageSender.SendMessage(ctx, p, m)
	if err == nil && m.GetType() == pb.Message_ADD_PROVIDER {
		s.sent(m.GetKey())
	}
	return err
}

// countingRouter is the DHT's lookup, counted.
type countingRouter struct {
	r provider.KadClosestPeersRouter
	n *atomic.Uint64
}

// GetClosestPeers implements provider.KadClosestPeersRouter.
func (c countingRouter) GetClosestPeers(ctx context.Context, key string) ([]peer.ID, error) {
	c.n.Add(1)
	return c.r.GetClosestPeers(ctx, key)
}

// run waits for a first peer, starts the provider, then hands queued CIDs over to it
// until the announcer closes.
func (a *announcer) run() {
	for len(a.h.Network().Peers()) == 0 {
		select {
		case <-a.peer:
		case <-a.ctx.Done():
			return
		}
	}
	sp, err := a.newProvider()
	if err != nil {
		// Only a bad option fails New; there is no announcing without a provider.
		a.log.Error("DHT provider did not start: announcements stay queued", "err", err)
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		_ = sp.Close()
		return
	}
	a.sp = sp
	a.mu.Unlock()
	for {
		batch := a.take()
		if batch == nil {
			return
		}
		a.handOver(sp, batch)
	}
}

// newProvider builds the sweeping provider on the host's DHT, with the hooks that
// feed AnnounceStats and Flush.
func (a *announcer) newProvider() (*provider.SweepingProvider, error) {
	self := a.h.ID()
	sp, err := provider.New(
		provider.WithHost(a.h),
		provider.WithPeerID(self),
		provider.WithRouter(countingRouter{r: a.kad, n: &a.lookups}),
		provider.WithMessageSender(trackingSender{MessageSender: a.kad.MessageSender(), sent: a.recordSent}),
		provider.WithSelfAddrs(a.kad.FilteredAddrs),
		provider.WithAddLocalRecord(func(ctx context.Context, h mh.Multihash) error {
			a.providing(h)
			return a.kad.ProviderStore().AddProvider(ctx, h, peer.AddrInfo{ID: self})
		}),
		provider.WithKeystore(a.ks),
		provider.WithDatastore(a.spStore),
		provider.WithReplicationFactor(a.kad.BucketSize()),
		provider.WithReprovideInterval(a.sweepInterval),
		provider.WithMaxReprovideDelay(min(sweepMaxReprovideDelay, a.sweepInterval)),
		provider.WithOfflineDelay(sweepOfflineDelay),
		provider.WithConnectivityCallbacks(
			func() { a.setOnline(true) },
			func() { a.setOnline(false) },
			func() { a.setOnline(false) },
		),
		provider.WithMaxWorkers(max(a.workers, 2)),
		provider.WithDedicatedPeriodicWorkers(1),
		provider.WithDedicatedBurstWorkers(1),
		provider.WithLoggerName(sweepLoggerName),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: start DHT provider: %w", err)
	}
	return sp, nil
}

// setOnline follows the provider's connectivity. CIDs are handed over only while it
// is online: while it is not, they wait in the bounded backlog rather than in its
// queue. Coming online the first time, the provider estimates the network size and
// reprovides its keystore; CIDs handed over meanwhile go into the keystore and are
// provided by that reprovide.
func (a *announcer) setOnline(on bool) {
	a.mu.Lock()
	a.online = on
	a.mu.Unlock()
	if on {
		a.signal()
	}
}

// take waits until CIDs are due (see dueLocked), then marks them in flight and
// returns them; nil when the announcer closes.
func (a *announcer) take() []mh.Multihash {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return nil
		}
		n, wait := a.dueLocked(time.Now())
		if n > 0 {
			batch := make([]mh.Multihash, n)
			for i := range batch {
				batch[i] = a.queue.popFront()
				a.known[string(batch[i])] = keyInFlight
			}
			a.since = time.Now() // what is left waited less: count afresh
			a.setInflightLocked(a.inflight + n)
			a.mu.Unlock()
			return batch
		}
		a.mu.Unlock()
		var timeout <-chan time.Time
		if wait > 0 {
			t.Reset(wait)
			timeout = t.C
		}
		select {
		case <-a.wake:
		case <-timeout:
		case <-a.ctx.Done():
			return nil
		}
	}
}

// dueLocked returns how many queued CIDs to hand over at now: while the provider is
// online and fewer than bound CIDs are in flight, up to announceMaxBatch once the
// oldest has waited the linger, or at once if there are announceMaxBatch of them or
// Flush waits. Otherwise it returns 0 and how long until they are due (0: until
// something changes).
func (a *announcer) dueLocked(now time.Time) (int, time.Duration) {
	n := min(a.queue.len(), announceMaxBatch, a.bound-a.inflight)
	if n <= 0 || !a.online {
		return 0, 0
	}
	if a.queue.len() < announceMaxBatch && a.flushing == 0 {
		if wait := a.linger - now.Sub(a.since); wait > 0 {
			return 0, wait
		}
	}
	return n, 0
}

// handOver records batch in the keystore and has the provider announce the CIDs
// that were not there yet.
func (a *announcer) handOver(sp *provider.SweepingProvider, batch []mh.Multihash) {
	fresh, err := a.ks.Put(a.ctx, batch...)
	if err != nil {
		if a.ctx.Err() == nil {
			a.log.Warn("DHT announcements: provider keystore", "cids", len(batch), "err", err)
			a.settle(batch, &a.failed)
		}
		return
	}
	if len(fresh) < len(batch) {
		isFresh := make(map[string]struct{}, len(fresh))
		for _, h := range fresh {
			isFresh[string(h)] = struct{}{}
		}
		var kept []mh.Multihash
		for _, h := range batch {
			if _, ok := isFresh[string(h)]; !ok {
				kept = append(kept, h)
			}
		}
		a.settle(kept, &a.coalesced)
	}
	if len(fresh) == 0 {
		return
	}
	if err := sp.StartProviding(true, fresh...); err != nil && a.ctx.Err() == nil {
		// Only a closed provider refuses keys.
		a.log.Warn("DHT announcements: provider refused CIDs", "cids", len(fresh), "err", err)
		a.settle(fresh, &a.dropped)
	}
}

// settle takes in-flight keys out of the queue's books, counting them in c.
func (a *announcer) settle(keys []mh.Multihash, c *atomic.Uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, h := range keys {
		if state, ok := a.known[string(h)]; ok && state == keyInFlight {
			delete(a.known, string(h))
			n++
		}
	}
	// Counted under mu, so that stats is a consistent snapshot.
	c.Add(uint64(n))
	a.setInflightLocked(a.inflight - n)
	a.closeIdleLocked()
	if n > 0 {
		a.signal() // room in flight
	}
}

// recordSent is called for every provider record the provider sends.
func (a *announcer) recordSent(key []byte) {
	a.records.Add(1)
	if a.inflightN.Load() == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if state, ok := a.known[string(key)]; ok && state == keyInFlight {
		delete(a.known, string(key))
		a.announced.Add(1)
		a.setInflightLocked(a.inflight - 1)
		a.closeIdleLocked()
		if a.queue.len() > 0 {
			a.signal() // room in flight
		}
	}
}

// providing is called as the provider is about to send the records of a key.
func (a *announcer) providing(key []byte) {
	if a.inflightN.Load() > 0 {
		a.mu.Lock()
		state, ok := a.known[string(key)]
		a.mu.Unlock()
		if ok && state == keyInFlight {
			return // a first announcement
		}
	}
	a.reprovided.Add(1)
}
