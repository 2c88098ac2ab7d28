package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// Defaults of the announcement queue (see Host.Announce).
const (
	// DefaultAnnounceBacklog is how many CIDs may wait to be announced
	// (Config.AnnounceBacklog): 26 s of a 10k/s stream, some 30 MiB at most.
	DefaultAnnounceBacklog = 1 << 18
	// DefaultAnnounceWorkers is how many batches are announced concurrently
	// (Config.AnnounceWorkers).
	DefaultAnnounceWorkers = 4
	// DefaultReprovideInterval is the reprovide period StartReprovider uses for a zero
	// interval: kad-dht's, well inside the 48 h a provider record lives
	// (ProviderRecordTTL).
	DefaultReprovideInterval = amino.DefaultReprovideInterval
	// ProviderRecordTTL is how long DHT peers keep a provider record.
	ProviderRecordTTL = amino.DefaultProvideValidity
)

// Internal limits and timings of the announcer.
const (
	// announceMaxBatch caps the CIDs one worker takes at once.
	announceMaxBatch = 4096
	// announceRecent is how many announced CIDs are remembered, so announcing one
	// again soon after is coalesced.
	announceRecent = 1 << 16
	// announceMaxAttempts is how many times a CID whose record reached no peer is
	// tried before it counts as failed.
	announceMaxAttempts = 3
	// announceRetry is the wait before the first retry; it doubles.
	announceRetry = 500 * time.Millisecond
	// announceNoPeersMin and Max bound the wait (doubling) for a first DHT peer.
	announceNoPeersMin = 100 * time.Millisecond
	announceNoPeersMax = 5 * time.Second
	// announceSendTimeout bounds sending a batch's records to one peer, plus 1 ms a
	// record.
	announceSendTimeout = 10 * time.Second
	// announcePeerSenders is how many peers one batch sends records to at once.
	announcePeerSenders = 16
	// announceProtectTag protects connections to peers being sent records.
	announceProtectTag = "dray/announce"
)

// AnnounceStats are counters of the announcement queue (see Host.Announce). Counters
// are totals since the Host started.
type AnnounceStats struct {
	// Queued is how many CIDs wait for a worker.
	Queued int
	// InFlight is how many CIDs workers hold: being announced, waiting to be retried,
	// or waiting for a first DHT peer.
	InFlight int
	// Announced counts CIDs whose provider record was sent to at least one DHT peer
	// (all of their k closest peers, barring failures).
	Announced uint64
	// Failed counts CIDs given up on: their record reached no peer after retries. It
	// also counts undefined CIDs passed to Announce.
	Failed uint64
	// Dropped counts CIDs discarded unannounced: the oldest queued CIDs when the
	// backlog was full, and CIDs passed to Announce after Close.
	Dropped uint64
	// Coalesced counts Announce calls for a CID already queued, in flight, or
	// announced recently.
	Coalesced uint64
	// Reprovided counts CIDs queued again by the reprovider (StartReprovider).
	Reprovided uint64
	// Lookups counts DHT lookups made to place records.
	Lookups uint64
	// Records counts provider records (ADD_PROVIDER messages) sent.
	Records uint64
}

// KeySource lists the CIDs a host still holds, for StartReprovider: it calls yield
// for each and stops early (returning nil) when yield returns false. yield waits
// while the announcement backlog is more than half full, so a source should not hold
// locks the rest of the program needs while it iterates.
type KeySource func(ctx context.Context, yield func(cid.Cid) bool) error

// Announce queues CIDs to be announced in the DHT: provider records saying this host
// holds them go to the k peers closest to each CID, and to the local record store.
// It never blocks on the network and returns at once.
//
// Duplicates coalesce: a CID already queued, being announced, or announced
// recently (the last 64Ki) is not queued again. The backlog is bounded by
// Config.AnnounceBacklog: when it is full, the oldest queued CID is dropped
// (AnnounceStats.Dropped). Undefined CIDs are counted as failed. See AnnounceStats
// for the outcome and Flush to wait for the backlog to drain.
//
// Workers take everything queued (up to 4096 CIDs) at once and place the records of
// the whole batch with a few DHT lookups, not one per CID. While the routing table is
// empty the backlog waits for a peer. Records expire (ProviderRecordTTL); see
// StartReprovider.
func (n *Host) Announce(cs ...cid.Cid) { n.ann.announce(cs) }

// AnnounceStats returns the announcement queue's counters.
func (n *Host) AnnounceStats() AnnounceStats { return n.ann.stats() }

// Flush waits until no announcement is queued or in flight. It fails if ctx ends
// first (also matching ErrNoPeers if the routing table is empty) or the host is
// closed (ErrClosed). Announcements that failed are in AnnounceStats.Failed.
func (n *Host) Flush(ctx context.Context) error { return n.ann.flush(ctx) }

// StartReprovider re-announces, every interval (DefaultReprovideInterval if zero),
// every CID keys yields, so their provider records do not expire while this host
// still holds the data. The first round is one interval after the call: CIDs held at
// start are expected to be announced with Announce (or to have been, less than an
// interval ago, by the previous run). Rounds bypass the "announced recently" filter
// and never drop: they wait for room in the backlog. It can be started once per Host.
func (n *Host) StartReprovider(interval time.Duration, keys KeySource) error {
	if keys == nil {
		return errors.New("p2p: start reprovider: nil key source")
	}
	if interval < 0 {
		return fmt.Errorf("p2p: start reprovider: negative interval %v", interval)
	}
	if interval == 0 {
		interval = DefaultReprovideInterval
	}
	return n.ann.startReprovider(interval, keys)
}

// recordSender delivers provider records; streamSender is the real one.
type recordSender interface {
	// SendRecords sends p a provider record (self provides key) for each of keys and
	// returns nil once p has stored them all.
	SendRecords(ctx context.Context, p peer.ID, keys [][]byte, self peer.AddrInfo) error
}

// streamSender sends provider records on one DHT stream per call: ADD_PROVIDER
// messages written back to back through a buffer (the DHT's own sender makes a
// write, a yamux frame and a TLS record of each), then the write side is closed. The
// DHT handler on the peer handles the messages in order and closes the stream once it
// reads the end, or resets it on a message it rejects: a clean end of stream is the
// acknowledgement that every record was stored.
type streamSender struct {
	h     host.Host
	proto protocol.ID // the DHT protocol, e.g. /dray/kad/1.0.0
}

// SendRecords implements recordSender.
func (s streamSender) SendRecords(ctx context.Context, p peer.ID, keys [][]byte, self peer.AddrInfo) (err error) {
	st, err := s.h.NewStream(ctx, p, s.proto)
	if err != nil {
		return fmt.Errorf("p2p: open DHT stream to %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			_ = st.Reset()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	pmes := pb.NewMessage(pb.Message_ADD_PROVIDER, nil, 0)
	pmes.ProviderPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{self})
	w := bufio.NewWriterSize(st, 64<<10)
	var (
		msg []byte
		hdr [binary.MaxVarintLen64]byte
	)
	for _, k := range keys {
		pmes.Key = k
		if msg, err = (proto.MarshalOptions{}).MarshalAppend(msg[:0], pmes); err != nil {
			return fmt.Errorf("p2p: encode provider record: %w", err)
		}
		if _, err = w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(msg)))]); err == nil {
			_, err = w.Write(msg)
		}
		if err != nil {
			return fmt.Errorf("p2p: send provider records to %s: %w", p, err)
		}
	}
	if err = w.Flush(); err == nil {
		err = st.CloseWrite()
	}
	if err != nil {
		return fmt.Errorf("p2p: send provider records to %s: %w", p, err)
	}
	if _, err = io.Copy(io.Discard, st); err != nil {
		return fmt.Errorf("p2p: provider records to %s not acknowledged: %w", p, err)
	}
	return st.Close()
}

// announceDeps is what the announcer needs from the host and the DHT.
type announceDeps struct {
	self      peer.ID
	k         int // replication factor
	router    closestPeersRouter
	sender    recordSender
	addLocal  func(ctx context.Context, key []byte) error
	selfAddrs func() []ma.Multiaddr
	rtSize    func() int
	protect   func(p peer.ID, tag string, on bool)
}

type annEntry struct {
	c        cid.Cid
	attempts uint8
}

// announcer is the queue and workers behind Host.Announce.
type announcer struct {
	d       announceDeps
	bound   int
	workers int
	log     *slog.Logger
	sweep   *sweeper

	// Waits and sizes; tests shorten them.
	retryBase, noPeersMin, noPeersMax time.Duration
	recent                            int // announced keys remembered

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu       sync.Mutex
	queue    ring[annEntry]
	known    map[string]bool // key: false = queued or in flight, true = announced recently
	history  ring[string]    // recently announced keys, oldest first (at most announceRecent)
	inflight int
	idle     chan struct{} // nil when idle, closed when the work is done
	room     chan struct{} // closed when the queue falls under half the bound
	closed   bool
	reprov   bool

	announced, failed, dropped, coalesced, reprovided, lookups, records atomic.Uint64
}

func newAnnouncer(d announceDeps, bound, workers int, log *slog.Logger) *announcer {
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcer{
		d:          d,
		bound:      bound,
		workers:    workers,
		log:        log,
		retryBase:  announceRetry,
		noPeersMin: announceNoPeersMin,
		noPeersMax: announceNoPeersMax,
		recent:     announceRecent,
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		known:      make(map[string]bool),
	}
	a.sweep = &sweeper{router: d.router, k: d.k, lookups: func() { a.lookups.Add(1) }, now: time.Now}
	return a
}

// start runs the workers.
func (a *announcer) start() {
	for i := range a.workers {
		tag := fmt.Sprintf("%s/%d", announceProtectTag, i)
		a.wg.Go(func() { a.work(tag) })
	}
}

// close stops the workers and the reprovider and waits for them.
func (a *announcer) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

func (a *announcer) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
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
		if a.enqueueLocked(c, false) {
			queued = true
		}
	}
	a.mu.Unlock()
	if queued {
		a.signal()
	}
}

// enqueueLocked queues c unless it is queued or in flight, or (unless force)
// announced recently. A full queue drops its oldest entry.
func (a *announcer) enqueueLocked(c cid.Cid, force bool) bool {
	k := c.KeyString()
	if done, ok := a.known[k]; ok && (!done || !force) {
		a.coalesced.Add(1)
		return false
	}
	if a.queue.len() >= a.bound {
		old := a.queue.popFront()
		delete(a.known, old.c.KeyString())
		a.dropped.Add(1)
	}
	a.queue.pushBack(annEntry{c: c})
	a.known[k] = false
	if a.idle == nil {
		a.idle = make(chan struct{})
	}
	return true
}

// take waits for work and returns everything queued, up to announceMaxBatch CIDs;
// nil when the announcer closes.
func (a *announcer) take() []annEntry {
	for {
		a.mu.Lock()
		if n := min(a.queue.len(), announceMaxBatch); n > 0 && !a.closed {
			batch := make([]annEntry, n)
			for i := range batch {
				batch[i] = a.queue.popFront()
			}
			a.inflight += n
			more := a.queue.len() > 0
			if a.room != nil && a.queue.len() < a.lowWater() {
				close(a.room)
				a.room = nil
			}
			a.mu.Unlock()
			if more {
				a.signal()
			}
			return batch
		}
		a.mu.Unlock()
		select {
		case <-a.wake:
		case <-a.ctx.Done():
			return nil
		}
	}
}

func (a *announcer) lowWater() int { return max(1, a.bound/2) }

// settle records the outcome of in-flight entries.
func (a *announcer) settle(announced, failed, dropped []annEntry) {
	a.mu.Lock()
	for _, e := range announced {
		k := e.c.KeyString()
		a.known[k] = true
		if a.history.len() >= a.recent {
			if old := a.history.popFront(); a.known[old] {
				delete(a.known, old)
			}
		}
		a.history.pushBack(k)
	}
	for _, e := range failed {
		delete(a.known, e.c.KeyString())
	}
	for _, e := range dropped {
		delete(a.known, e.c.KeyString())
	}
	a.inflight -= len(announced) + len(failed) + len(dropped)
	// Counted under mu, so that stats is a consistent snapshot.
	a.announced.Add(uint64(len(announced)))
	a.failed.Add(uint64(len(failed)))
	a.dropped.Add(uint64(len(dropped)))
	if a.idle != nil && a.inflight == 0 && a.queue.len() == 0 {
		close(a.idle)
		a.idle = nil
	}
	a.mu.Unlock()
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
	a.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-a.ctx.Done():
		return fmt.Errorf("p2p: flush announcements: %w", ErrClosed)
	case <-ctx.Done():
		st := a.stats()
		pending := st.Queued + st.InFlight
		if a.d.rtSize() == 0 {
			return fmt.Errorf("p2p: flush announcements: %d pending: %w: %w", pending, ErrNoPeers, ctx.Err())
		}
		return fmt.Errorf("p2p: flush announcements: %d pending: %w", pending, ctx.Err())
	}
}

// sleep waits d; false if the announcer closes first.
func (a *announcer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.ctx.Done():
		return false
	}
}

// work is one worker: it takes batches until the announcer closes.
func (a *announcer) work(tag string) {
	for {
		batch := a.take()
		if batch == nil {
			return
		}
		a.process(batch, tag)
	}
}

// process announces a batch, retrying the CIDs whose record reached no peer and
// waiting while there are no peers at all.
func (a *announcer) process(batch []annEntry, tag string) {
	noPeers, retry := a.noPeersMin, a.retryBase
	for len(batch) > 0 {
		if a.ctx.Err() != nil {
			a.settle(nil, nil, batch)
			return
		}
		if a.d.rtSize() == 0 {
			a.sleep(noPeers)
			noPeers = min(2*noPeers, a.noPeersMax)
			continue
		}
		ok, bad := a.announceBatch(batch, tag)
		var again, failed []annEntry
		for _, e := range bad {
			if e.attempts++; e.attempts >= announceMaxAttempts {
				failed = append(failed, e)
			} else {
				again = append(again, e)
			}
		}
		if len(failed) > 0 && a.ctx.Err() == nil {
			a.log.Warn("DHT announcements failed", "cids", len(failed), "attempts", announceMaxAttempts, "example", failed[0].c)
		}
		a.settle(ok, failed, nil)
		batch = again
		if len(batch) > 0 {
			a.sleep(retry)
			retry *= 2
		}
	}
}

// announceBatch places and sends the records of a batch; it returns the entries whose
// record reached at least one peer, and the others.
func (a *announcer) announceBatch(batch []annEntry, tag string) (ok, bad []annEntry) {
	self := peer.AddrInfo{ID: a.d.self, Addrs: a.d.selfAddrs()}
	if len(self.Addrs) == 0 {
		a.log.Warn("DHT announcements: this host has no address to announce")
		return nil, batch
	}
	keys := make([]sweepKey, len(batch))
	for i, e := range batch {
		mh := []byte(e.c.Hash())
		keys[i] = sweepKey{key: mh, kad: kadKeyOf(mh)}
		if err := a.d.addLocal(a.ctx, mh); err != nil && a.ctx.Err() == nil {
			a.log.Debug("DHT announcements: local provider record", "cid", e.c, "err", err)
		}
	}
	plan, err := a.sweep.plan(a.ctx, keys, a.d.rtSize())
	if err != nil && a.ctx.Err() == nil {
		a.log.Debug("DHT announcements: placing records", "cids", len(batch), "err", err)
	}
	byPeer := make(map[peer.ID][]int32)
	for i, ps := range plan {
		for _, p := range ps {
			byPeer[p] = append(byPeer[p], int32(i))
		}
	}
	sent := make([]atomic.Int32, len(batch))
	sem := make(chan struct{}, announcePeerSenders)
	var wg sync.WaitGroup
	for p, idx := range byPeer {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a.sendRecords(p, idx, keys, self, sent, tag)
		})
	}
	wg.Wait()
	for i, e := range batch {
		if sent[i].Load() > 0 {
			ok = append(ok, e)
		} else {
			bad = append(bad, e)
		}
	}
	return ok, bad
}

// sendRecords sends p the provider records of keys[idx...].
func (a *announcer) sendRecords(p peer.ID, idx []int32, keys []sweepKey, self peer.AddrInfo, sent []atomic.Int32, tag string) {
	a.d.protect(p, tag, true)
	defer a.d.protect(p, tag, false)
	ks := make([][]byte, len(idx))
	for j, i := range idx {
		ks[j] = keys[i].key
	}
	ctx, cancel := context.WithTimeout(a.ctx, announceSendTimeout+time.Duration(len(ks))*time.Millisecond)
	defer cancel()
	if err := a.d.sender.SendRecords(ctx, p, ks, self); err != nil {
		a.sweep.cache.dropPeer(p)
		if a.ctx.Err() == nil {
			a.log.Debug("DHT announcements: sending records", "peer", p, "records", len(ks), "err", err)
		}
		return
	}
	for _, i := range idx {
		sent[i].Add(1)
	}
	a.records.Add(uint64(len(idx)))
}

func (a *announcer) startReprovider(interval time.Duration, src KeySource) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("p2p: start reprovider: %w", ErrClosed)
	}
	if a.reprov {
		return errors.New("p2p: start reprovider: already started")
	}
	a.reprov = true
	a.wg.Go(func() { a.reprovideLoop(interval, src) })
	return nil
}

func (a *announcer) reprovideLoop(interval time.Duration, src KeySource) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		start, n := time.Now(), 0
		err := src(a.ctx, func(c cid.Cid) bool {
			if !c.Defined() {
				return true
			}
			if !a.waitRoom() {
				return false
			}
			a.mu.Lock()
			queued := a.enqueueLocked(c, true)
			if queued {
				a.reprovided.Add(1)
			}
			a.mu.Unlock()
			if queued {
				n++
				a.signal()
			}
			return true
		})
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("reprovide: listing held CIDs", "err", err, "queued", n)
		} else {
			a.log.Debug("reprovide round queued", "cids", n, "took", time.Since(start))
		}
		t.Reset(interval)
	}
}

// waitRoom waits until the queue is under half its bound; false if the announcer
// closes first.
func (a *announcer) waitRoom() bool {
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return false
		}
		if a.queue.len() < a.lowWater() {
			a.mu.Unlock()
			return true
		}
		if a.room == nil {
			a.room = make(chan struct{})
		}
		ch := a.room
		a.mu.Unlock()
		select {
		case <-ch:
		case <-a.ctx.Done():
			return false
		}
	}
}

// ring is a FIFO on a growable circular buffer.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) pushBack(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(64, 2*len(r.buf)))
		m := copy(nb, r.buf[r.head:])
		copy(nb[m:], r.buf[:r.head])
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// popFront removes and returns the oldest element; the ring must not be empty. An
// emptied ring releases a large buffer.
func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > 4096 {
			r.buf = nil
		}
	}
	return v
}
