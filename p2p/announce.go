package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p-kad-dht/provider"
	"github.com/libp2p/go-libp2p-kad-dht/provider/keystore"
	"github.com/libp2p/go-libp2p/core/host"
	mh "github.com/multiformats/go-multihash"
)

// Announcements in the DHT (Host.Announce, AnnounceStats, Flush): the
// announcer, a bounded queue of CIDs in front of go-libp2p-kad-dht's
// sweeping provider (duplicates coalesced, the oldest dropped when full),
// its counters, and Flush waiting for it to drain. The hand-over to the
// provider is in provider.go, the keystore sync behind StartReprovider in
// reprovide.go.

// Defaults of the announcement queue (see Host.Announce).
const (
	// DefaultAnnounceBacklog is how many CIDs may wait to be handed to the DHT
	// provider, and how many handed over may wait for their first record to go out
	// (Config.AnnounceBacklog): 26 s of a 10k/s stream, some 40 MiB at most, each.
	DefaultAnnounceBacklog = 1 << 18
	// DefaultAnnounceWorkers is the size of the DHT provider's worker pool: how many
	// keyspace regions are provided or reprovided at once (Config.AnnounceWorkers).
	DefaultAnnounceWorkers = 4
	// DefaultReprovideInterval is the period of the reprovide sweep: every CID the
	// host keeps announcing is reprovided once per interval (plus at most an hour),
	// well inside the 48 h a provider record lives (ProviderRecordTTL). It is also the
	// period StartReprovider uses for a zero interval.
	DefaultReprovideInterval = amino.DefaultReprovideInterval
	// ProviderRecordTTL is how long DHT peers keep a provider record.
	ProviderRecordTTL = amino.DefaultProvideValidity
)

// Internal limits and timings of the announcer.
const (
	// announceMaxBatch caps the CIDs handed to the provider at once.
	announceMaxBatch = 1 << 14
	// announceLinger is how long CIDs may wait in the queue for more to come, unless
	// there are announceMaxBatch of them or Flush is waiting. The provider explores
	// the keyspace region of every batch it is given (a lookup or more, even for one
	// CID), so a stream of small Announce calls costs lookups at the rate of
	// hand-overs: at most a few a second this way, whatever the stream's rate.
	announceLinger = 200 * time.Millisecond
	// sweepMaxReprovideDelay bounds how late the sweep may reprovide a region whose
	// peers changed (kad-dht's default).
	sweepMaxReprovideDelay = provider.DefaultMaxReprovideDelay
	// sweepOfflineDelay is how long the provider may go without peers before it
	// drops its queue of pending provides. Never, in practice: the queue is bounded
	// by the in-flight limit (Config.AnnounceBacklog), and what it holds must still
	// be announced when peers come back.
	sweepOfflineDelay = 100 * 365 * 24 * time.Hour
	// flushPollMin and flushPollMax bound the interval (doubling) at which Flush
	// polls the provider for running provides.
	flushPollMin = 200 * time.Microsecond
	flushPollMax = 10 * time.Millisecond
	// sweepLoggerName is the go-log logger of the DHT provider.
	sweepLoggerName = "dray/p2p/provider"
)

// AnnounceStats are counters of the announcement queue (see Host.Announce). Counters
// are totals since the Host started.
type AnnounceStats struct {
	// Queued is how many CIDs wait to be handed to the DHT provider: while the host
	// has no peers yet, while the provider is disconnected, or while InFlight is at
	// its bound.
	Queued int
	// InFlight is how many CIDs the provider holds whose first provider record has
	// not reached any peer yet (including CIDs it retries after a failure).
	InFlight int
	// Announced counts CIDs whose first provider record was sent to at least one DHT
	// peer. The provider sends every record to all of the CID's k closest peers.
	Announced uint64
	// Failed counts undefined CIDs passed to Announce, and CIDs the keystore could
	// not record.
	Failed uint64
	// Dropped counts CIDs discarded unannounced: the oldest queued CIDs when the
	// backlog was full, CIDs passed to Announce after Close, and CIDs queued or in
	// flight when the host closed.
	Dropped uint64
	// Coalesced counts Announce calls for a CID that was already queued or in flight,
	// or already in the keystore: announced before, and still reprovided.
	Coalesced uint64
	// Reprovided counts CIDs whose records the provider sent again: the reprovide
	// sweep (each kept CID once per DefaultReprovideInterval), CIDs provided again
	// after a partial failure, and CIDs handed over as the provider first came online,
	// which both its first reprovide and the provide of the CIDs may send.
	Reprovided uint64
	// Lookups counts the DHT lookups (GetClosestPeers) the provider made: to explore
	// keyspace regions, to provide one or two CIDs alone, to estimate the network
	// size and to check connectivity.
	Lookups uint64
	// Records counts provider records (ADD_PROVIDER messages) sent, first
	// announcements and reprovides alike.
	Records uint64
}

// Announce queues CIDs to be announced in the DHT: provider records saying this host
// holds them go to the k peers closest to each CID, and to the local record store.
// It never blocks on the network and returns at once. The records are sent by
// go-libp2p-kad-dht's sweeping provider (provider.SweepingProvider), which also
// keeps every announced CID in its keystore and reprovides it, region by region of
// the keyspace, every DefaultReprovideInterval (see StartReprovider).
//
// Duplicates coalesce: a CID already queued, in flight, or in the keystore is not
// announced again. The backlog is bounded by Config.AnnounceBacklog: when it is
// full, the oldest queued CID is dropped (AnnounceStats.Dropped). Undefined CIDs are
// counted as failed. See AnnounceStats for the outcome and Flush to wait for the
// backlog to drain.
//
// CIDs wait in the backlog until the host has a DHT peer and the provider is online;
// then they are handed over in batches of up to 16384, at most 200 ms after they
// were queued (at once while Flush waits). The provider sorts them by keyspace region
// and places the records of a whole region with a few DHT lookups, not one per CID.
func (n *Host) Announce(cs ...cid.Cid) { n.ann.announce(cs) }

// AnnounceStats returns the announcement queue's counters.
func (n *Host) AnnounceStats() AnnounceStats { return n.ann.stats() }

// Flush waits until no announcement is queued or in flight, and no provide or
// reprovide operation of the provider is running: the records of every CID announced
// so far have been sent to its closest peers (or the CID was dropped, failed or
// coalesced). It may so wait for the end of a reprovide of the sweep. A peer stores a
// record as it reads it from its stream, a moment later: the DHT's ADD_PROVIDER
// message has no reply. Flush fails if ctx ends first (also matching ErrNoPeers if the
// routing table is empty) or the host is closed (ErrClosed). The provider retries
// failed sends by itself, so a CID never leaves InFlight unsent.
func (n *Host) Flush(ctx context.Context) error { return n.ann.flush(ctx) }

// Key states in announcer.known.
const (
	keyQueued   = false
	keyInFlight = true
)

// announcer is the queue in front of the sweeping provider behind Host.Announce,
// and the keystore sync behind StartReprovider.
type announcer struct {
	h       host.Host
	kad     *dht.IpfsDHT
	bound   int
	workers int
	log     *slog.Logger
	// sweepInterval is the provider's reprovide period; tests shorten it before the
	// provider starts.
	sweepInterval time.Duration
	linger        time.Duration // announceLinger; tests set 0

	ksStore ds.Batching // in memory: the keystore's
	spStore ds.Batching // in memory: the provider's schedule state
	ks      *keystore.ResettableKeystore

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // work may be ready for the hand-over loop
	peer   chan struct{} // the host connected to a peer

	mu       sync.Mutex
	sp       *provider.SweepingProvider // nil until the host has a peer
	online   bool                       // the provider's connectivity state
	queue    ring[mh.Multihash]
	known    map[string]bool // multihash bytes: keyQueued or keyInFlight
	inflight int
	since    time.Time     // when the oldest queued CID was queued
	flushing int           // Flush calls waiting: hand over at once
	idle     chan struct{} // nil when idle, closed when the work is done
	closed   bool
	reprov   bool

	announced, failed, dropped, coalesced, reprovided, lookups, records atomic.Uint64
	inflightN                                                           atomic.Int64 // mirrors inflight, read without mu
}

func newAnnouncer(h host.Host, kad *dht.IpfsDHT, bound, workers int, log *slog.Logger) (*announcer, error) {
	ksStore := dssync.MutexWrap(ds.NewMapDatastore())
	// No bit-path prefix in the keys: it serves prefix queries of ordered
	// datastores, and a map scans everything anyway. It saves 30 B a key.
	ks, err := keystore.NewResettableKeystore(ksStore, keystore.KeystoreOption(
		keystore.WithLoggerName(sweepLoggerName), keystore.WithPrefixBits(0)))
	if err != nil {
		return nil, fmt.Errorf("p2p: provider keystore: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &announcer{
		h:             h,
		kad:           kad,
		bound:         bound,
		workers:       workers,
		log:           log,
		sweepInterval: DefaultReprovideInterval,
		linger:        announceLinger,
		ksStore:       ksStore,
		spStore:       dssync.MutexWrap(ds.NewMapDatastore()),
		ks:            ks,
		ctx:           ctx,
		cancel:        cancel,
		wake:          make(chan struct{}, 1),
		peer:          make(chan struct{}, 1),
		known:         make(map[string]bool),
	}, nil
}

// start runs the hand-over loop, which starts the provider once the host has a peer.
func (a *announcer) start() { a.wg.Go(a.run) }

// peerConnected tells the announcer the host has a peer. It never blocks.
func (a *announcer) peerConnected() {
	select {
	case a.peer <- struct{}{}:
	default:
	}
}

func (a *announcer) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// close stops the loops and the provider, and waits for them.
func (a *announcer) close() {
	a.mu.Lock()
	a.closed = true
	a.dropped.Add(uint64(len(a.known)))
	a.queue = ring[mh.Multihash]{}
	clear(a.known)
	a.setInflightLocked(0)
	a.closeIdleLocked()
	sp := a.sp
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	if sp != nil {
		if err := sp.Close(); err != nil {
			a.log.Debug("closing the DHT provider", "err", err)
		}
	}
	if err := a.ks.Close(); err != nil {
		a.log.Debug("closing the provider keystore", "err", err)
	}
	_ = a.spStore.Close()
	_ = a.ksStore.Close()
}

func (a *announcer) setInflightLocked(n int) {
	a.inflight = n
	a.inflightN.Store(int64(n))
}

func (a *announcer) closeIdleLocked() {
	if a.idle != nil && a.inflight == 0 && a.queue.len() == 0 {
		close(a.idle)
		a.idle = nil
	}
}

func (a *announcer) announce(cs []cid.Cid) {
	queued := false
	a.mu.Lock()
	if a.closed {
		a.dropped.Add(uint64(len(cs)))
		a.mu.Unlock()
		return
	}
	for _, c := range cs {
		if !c.Defined() {
			a.failed.Add(1)
			continue
		}
		h := c.Hash()
		if _, ok := a.known[string(h)]; ok {
			a.coalesced.Add(1)
			continue
		}
		if a.queue.len() >= a.bound {
			delete(a.known, string(a.queue.popFront()))
			a.dropped.Add(1)
		}
		if a.queue.len() == 0 {
			a.since = time.Now()
		}
		a.queue.pushBack(h)
		a.known[string(h)] = keyQueued
		if a.idle == nil {
			a.idle = make(chan struct{})
		}
		queued = true
	}
	a.mu.Unlock()
	if queued {
		a.signal()
	}
}

func (a *announcer) stats() AnnounceStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Queued, InFlight and the outcome counters change together under mu.
	return AnnounceStats{
		Queued:     a.queue.len(),
		InFlight:   a.inflight,
		Announced:  a.announced.Load(),
		Failed:     a.failed.Load(),
		Dropped:    a.dropped.Load(),
		Coalesced:  a.coalesced.Load(),
		Reprovided: a.reprovided.Load(),
		Lookups:    a.lookups.Load(),
		Records:    a.records.Load(),
	}
}

func (a *announcer) flush(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("p2p: flush announcements: %w", ErrClosed)
	}
	ch := a.idle
	if ch != nil {
		a.flushing++
		defer func() {
			a.mu.Lock()
			a.flushing--
			a.mu.Unlock()
		}()
	}
	a.mu.Unlock()
	if ch != nil {
		a.signal() // no lingering
		select {
		case <-ch:
		case <-ctx.Done():
			st := a.stats()
			pending := st.Queued + st.InFlight
			if a.kad.RoutingTable().Size() == 0 {
				return fmt.Errorf("p2p: flush announcements: %d pending: %w: %w", pending, ErrNoPeers, ctx.Err())
			}
			return fmt.Errorf("p2p: flush announcements: %d pending: %w", pending, ctx.Err())
		}
	}
	// The first records are out; the operations that sent them may still be
	// sending the others.
	a.mu.Lock()
	closed, sp := a.closed, a.sp
	a.mu.Unlock()
	if closed {
		return fmt.Errorf("p2p: flush announcements: %w", ErrClosed)
	}
	if err := a.waitProvides(ctx, sp); err != nil {
		return fmt.Errorf("p2p: flush announcements: %w", err)
	}
	return nil
}

// waitProvides waits until sp has no provide or reprovide operation running: once
// every CID's first record is out, the operations that sent them may still be
// sending their records to the other closest peers. (CIDs handed over as the
// provider first comes online are sent by the reprovide of its keystore.) The
// provider has no event for it, so its stats are polled, every 200 µs at first,
// then less often.
func (a *announcer) waitProvides(ctx context.Context, sp *provider.SweepingProvider) error {
	if sp == nil {
		return nil
	}
	d := flushPollMin
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		st, err := sp.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Closed {
			return ErrClosed
		}
		ongoing := st.Operations.Ongoing.KeyProvides + st.Operations.Ongoing.KeyReprovides
		if ongoing == 0 {
			return nil
		}
		t.Reset(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%d CIDs being provided: %w", ongoing, ctx.Err())
		case <-a.ctx.Done():
			return ErrClosed
		}
		d = min(2*d, flushPollMax)
	}
}
