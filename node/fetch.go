package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/store"
	"github.com/dray-project/dray/wire"
)

// fetchTimeout bounds one fetch from one holder (headers and bytes).
const fetchTimeout = 5 * time.Minute

// announceDelay is how long a new object waits before it is announced in
// the DHT (sched.AnnounceAge, which the simulator models too). Objects
// dropped sooner — the intermediate values of a pipeline, most small
// results fetched at once — are never announced: the DHT only learns of
// objects that live, and nobody could fetch the others anyway.
const announceDelay = sched.AnnounceAge

// annItem is an object waiting to be announced.
type annItem struct {
	c  cid.Cid
	at time.Time
}

// announce queues CIDs for the DHT (a no-op without a network). It never
// blocks: the host's announcer batches and dedupes.
func (n *Node) announce(cs ...cid.Cid) {
	if n.net == nil {
		return
	}
	now := time.Now()
	n.amu.Lock()
	for _, c := range cs {
		n.anns = append(n.anns, annItem{c: c, at: now})
	}
	n.amu.Unlock()
}

// announceLoop hands the host's announcer the queued objects that are
// still alive after announceDelay.
func (n *Node) announceLoop() {
	defer n.loops.Done()
	t := time.NewTicker(announceDelay / 4)
	defer t.Stop()
	var due []cid.Cid
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		cut := time.Now().Add(-announceDelay)
		n.amu.Lock()
		k := 0
		for k < len(n.anns) && n.anns[k].at.Before(cut) {
			k++
		}
		items := slices.Clone(n.anns[:k])
		n.anns = append(n.anns[:0], n.anns[k:]...)
		n.amu.Unlock()
		if len(items) == 0 {
			continue
		}
		due = due[:0]
		n.mu.Lock()
		for _, it := range items {
			if n.heldLocked(it.c) {
				due = append(due, it.c)
			}
		}
		n.mu.Unlock()
		n.net.Announce(due...)
		n.netc.announced.Add(uint64(len(due)))
		n.netc.unannounced.Add(uint64(len(items) - len(due)))
	}
}

// heldLocked reports whether this node can serve c: a ready object here, a
// result it lends, or bytes in its store.
func (n *Node) heldLocked(c cid.Cid) bool {
	if o := n.objects[c]; o != nil {
		return o.state == ready && !o.away
	}
	if _, ok := n.loans[c]; ok {
		return true
	}
	return n.store.Has(c)
}

// heldKeys lists what this node holds and announces, for the reprovider.
func (n *Node) heldKeys(ctx context.Context, yield func(cid.Cid) bool) error {
	n.mu.Lock()
	keys := make([]cid.Cid, 0, len(n.objects)+len(n.loans))
	for c, o := range n.objects {
		if o.state == ready && !o.away {
			keys = append(keys, c)
			if o.content != c {
				keys = append(keys, o.content)
			}
		}
	}
	for c, l := range n.loans {
		keys = append(keys, c, l)
	}
	n.mu.Unlock()
	for _, c := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !yield(c) {
			return nil
		}
	}
	return nil
}

// serveFetch answers a want frame with the object's bytes from the
// wanted offset on.
func (n *Node) serveFetch(s p2p.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(fetchTimeout))
	typ, payload, err := p2p.ReadFrame(s, wire.MaxWantFrame)
	if err != nil || typ != wire.FrameWant {
		return
	}
	var w wire.Want
	if err := codec.Unmarshal(payload, &w); err != nil || w.Offset < 0 {
		_ = p2p.WriteFrame(s, wire.FrameMissing, []byte("bad want frame"))
		return
	}
	ref, err := cid.Cast(w.Ref)
	if err != nil {
		_ = p2p.WriteFrame(s, wire.FrameMissing, []byte("bad CID"))
		return
	}
	n.mu.Lock()
	content := ref
	if o := n.objects[ref]; o != nil {
		if o.state != ready || o.away {
			n.mu.Unlock()
			_ = p2p.WriteFrame(s, wire.FrameMissing, []byte("not ready"))
			return
		}
		content = o.content
	} else if l, ok := n.loans[ref]; ok {
		content = l
	}
	n.mu.Unlock()
	rc, size, err := n.store.Open(n.ctx, content)
	if err != nil {
		_ = p2p.WriteFrame(s, wire.FrameMissing, []byte("not held"))
		return
	}
	defer rc.Close()
	if w.Offset > size {
		_ = p2p.WriteFrame(s, wire.FrameMissing, []byte("offset past the end"))
		return
	}
	if _, err := io.CopyN(io.Discard, rc, w.Offset); err != nil {
		return
	}
	msg, err := codec.Marshal(wire.Have{Content: content.Bytes(), Size: size})
	if err != nil {
		return
	}
	if err := p2p.WriteFrame(s, wire.FrameHave, msg); err != nil {
		return
	}
	if _, err := io.Copy(s, rc); err != nil {
		n.log.Debug("serve fetch", "cid", ref, "peer", s.RemotePeer(), "err", err)
	}
}

// fetch gets object ref from peer p into the store, verifying every byte
// against the content CID the peer names, and returns that content CID.
func (n *Node) fetch(ctx context.Context, p peer.ID, ref cid.Cid) (cid.Cid, error) {
	return n.fetchFrom(ctx, ref, func() (peer.ID, bool) {
		q := p
		p = ""
		return q, q != ""
	})
}

// fetchFrom fetches ref into the store from the holders next yields, and
// returns its content CID. The first holder that answers names the content
// CID and size; when a holder fails mid-stream the fetch resumes at the
// same offset from the next holder (which must name the same content), so
// no byte crosses the network twice. Every byte is verified against the
// content CID as it arrives; if the whole does not match, the holders that
// served it are named in the error and the fetch starts over with the
// next.
func (n *Node) fetchFrom(ctx context.Context, ref cid.Cid, next func() (peer.ID, bool)) (cid.Cid, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	var errs []error
	for {
		r := &resumer{n: n, ctx: ctx, ref: ref, next: next}
		if err := r.open(); err != nil {
			errs = append(errs, r.errs...)
			if len(errs) == 0 {
				errs = append(errs, err)
			}
			return cid.Undef, errors.Join(errs...)
		}
		got, err := n.store.PutStreamVerified(ctx, r.content, r, r.size)
		r.close()
		errs = append(errs, r.errs...)
		if err == nil && got != r.size {
			err = fmt.Errorf("%w: got %d of %d bytes", io.ErrUnexpectedEOF, got, r.size)
		}
		if err == nil {
			n.netc.fetches.Add(1)
			return r.content, nil
		}
		if errors.Is(err, store.ErrMismatch) {
			n.log.Warn("holders served bytes that do not match the CID; dropping them for this fetch",
				"cid", ref, "peers", r.served)
			errs = append(errs, fmt.Errorf("from %v: %w", r.served, err))
			continue
		}
		return cid.Undef, errors.Join(append(errs, err)...)
	}
}

// resumer reads one object's bytes from a holder, and from the next
// holder at the same offset when one fails.
type resumer struct {
	n    *Node
	ctx  context.Context
	ref  cid.Cid
	next func() (peer.ID, bool)

	content cid.Cid // named by the first holder
	size    int64
	off     int64 // bytes read so far
	peer    peer.ID
	s       p2p.Stream
	body    io.Reader
	served  []peer.ID // holders bytes came from
	errs    []error   // holders that failed
}

// open connects to the next holder that has the object and names the same
// content, asking for the bytes from r.off on.
func (r *resumer) open() error {
	for {
		p, ok := r.next()
		if !ok && !r.content.Defined() && len(r.errs) == 0 {
			return fmt.Errorf("no peer in the swarm holds it: %w", ErrUnknownRef)
		}
		if !ok {
			return fmt.Errorf("no other peer in the swarm holds it: %w", ErrUnknownRef)
		}
		if p == r.n.net.ID() {
			continue
		}
		err := r.openAt(p)
		if err == nil {
			return nil
		}
		r.n.log.Warn("fetch failed; trying another holder", "cid", r.ref, "peer", p, "offset", r.off, "err", err)
		r.errs = append(r.errs, fmt.Errorf("from %s: %w", p, err))
	}
}

func (r *resumer) openAt(p peer.ID) error {
	s, err := r.n.net.OpenStream(r.ctx, p, wire.FetchProtocol)
	if err != nil {
		return err
	}
	if dl, ok := r.ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	fail := func(err error) error {
		_ = s.Reset()
		return err
	}
	msg, err := codec.Marshal(wire.Want{Ref: r.ref.Bytes(), Offset: r.off})
	if err != nil {
		return fail(err)
	}
	if err := p2p.WriteFrame(s, wire.FrameWant, msg); err != nil {
		return fail(err)
	}
	typ, payload, err := p2p.ReadFrame(s, wire.MaxHaveFrame)
	if err != nil {
		return fail(err)
	}
	r.n.netc.sent(len(msg))
	r.n.netc.recv(len(payload))
	if typ == wire.FrameMissing {
		return fail(fmt.Errorf("peer does not have it: %s", payload))
	}
	if typ != wire.FrameHave {
		return fail(fmt.Errorf("unexpected frame type %d", typ))
	}
	var h wire.Have
	if err := codec.Unmarshal(payload, &h); err != nil {
		return fail(err)
	}
	content, err := cid.Cast(h.Content)
	if err != nil {
		return fail(err)
	}
	if r.ref.Type() != cid.DagCBOR && content != r.ref {
		// Only task outputs (DAG-CBOR descriptors) name other content; a
		// put value's ref is its content CID.
		return fail(fmt.Errorf("peer named content %s for value %s", content, r.ref))
	}
	if h.Size < 0 {
		return fail(fmt.Errorf("negative size"))
	}
	if r.content.Defined() && (content != r.content || h.Size != r.size) {
		return fail(fmt.Errorf("peer names content %s (%d bytes), the first holder %s (%d bytes)", content, h.Size, r.content, r.size))
	}
	if r.s != nil {
		r.n.netc.resumed.Add(1)
	}
	r.content, r.size = content, h.Size
	r.peer, r.s, r.body = p, s, io.LimitReader(s, h.Size-r.off)
	r.served = append(r.served, p)
	return nil
}

// Read reads the object's next bytes, switching holders on failure.
func (r *resumer) Read(b []byte) (int, error) {
	for {
		if r.off == r.size {
			return 0, io.EOF
		}
		k, err := r.body.Read(b)
		r.off += int64(k)
		r.n.netc.bytesRecv.Add(uint64(k))
		if k > 0 || err == nil {
			return k, nil
		}
		if r.ctx.Err() != nil {
			return 0, r.ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.n.log.Warn("holder failed mid-fetch; resuming from another", "cid", r.ref, "peer", r.peer, "offset", r.off, "err", err)
		r.errs = append(r.errs, fmt.Errorf("from %s at byte %d: %w", r.peer, r.off, err))
		_ = r.s.Reset()
		if oerr := r.open(); oerr != nil {
			return 0, fmt.Errorf("%w (%w)", err, oerr)
		}
	}
}

func (r *resumer) close() {
	if r.s != nil {
		_ = r.s.Close()
	}
}

// Resolve returns a counted ref to the object with ID c, wherever it is:
// known to this node, in its store, or held by peers found through the DHT,
// from which it is fetched, verified and cached here. Without a network it
// is Ref.
func (n *Node) Resolve(ctx context.Context, c cid.Cid) (ObjectRef, error) {
	r, err := n.Ref(c)
	if err == nil || n.net == nil || !errors.Is(err, ErrUnknownRef) {
		return r, err
	}
	content, err := n.fetchAny(ctx, c, nil)
	if err != nil {
		if ctx.Err() == nil {
			err = &ObjectLostError{Ref: c, Err: err}
		}
		return ObjectRef{}, fmt.Errorf("node: resolve %s: %w", c, err)
	}
	return n.adopt(c, content)
}

// fetchAny fetches ref into the store from holders, tried first, or else
// from the peers the DHT names (looked up only if needed), and returns its
// content CID.
func (n *Node) fetchAny(ctx context.Context, ref cid.Cid, holders []peer.ID) (cid.Cid, error) {
	var dht []peer.ID
	looked := false
	var lookErr error
	next := func() (peer.ID, bool) {
		if len(holders) > 0 {
			p := holders[0]
			holders = holders[1:]
			return p, true
		}
		if !looked {
			looked = true
			dht, lookErr = n.net.FindHolders(ctx, ref, 8)
		}
		for len(dht) > 0 {
			p := dht[0]
			dht = dht[1:]
			if p == n.net.ID() {
				continue
			}
			return p, true
		}
		return "", false
	}
	content, err := n.fetchFrom(ctx, ref, next)
	if err != nil && lookErr != nil {
		err = errors.Join(err, lookErr)
	}
	if err != nil {
		return cid.Undef, err
	}
	return content, nil
}

// fetchArg returns the bytes of a task argument passed by content CID:
// from the store if they are here, else fetched from its holders.
func (n *Node) fetchArg(ctx context.Context, a argument) ([]byte, error) {
	if data, err := n.store.Get(ctx, a.content); err == nil {
		return data, nil
	}
	if _, err := n.fetchAny(ctx, a.content, a.holders); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", a.content, err)
	}
	return n.store.Get(ctx, a.content)
}

// localize brings the bytes of id, a result another peer keeps for this
// node, into the store (one fetch at a time per object; concurrent callers
// wait for it).
func (n *Node) localize(ctx context.Context, id cid.Cid) error {
	for {
		n.mu.Lock()
		o := n.objects[id]
		if o != nil && o.state == pending {
			n.mu.Unlock()
			return errRebuilding // another Get found it lost: wait for the rebuild
		}
		if o == nil || !o.away {
			n.mu.Unlock()
			return nil // dropped (the caller held it, so only at Close) or here
		}
		if wait := o.fetch; wait != nil {
			n.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return fmt.Errorf("node: get %s: %w", id, ctx.Err())
			}
		}
		done := make(chan struct{})
		o.fetch = done
		holder, content := o.holder, o.content
		n.mu.Unlock()

		got, err := n.fetchAny(ctx, content, []peer.ID{holder})
		if err == nil && got != content {
			err = fmt.Errorf("fetched %s, want %s", got, content)
		}
		n.mu.Lock()
		o.fetch = nil
		close(done)
		if o.state == pending && n.objects[id] == o {
			// Made again meanwhile (its holder was lost): wait for that.
			n.mu.Unlock()
			return errRebuilding
		}
		if err != nil && n.objects[id] == o && o.state == ready && (!o.away || o.holder != holder || o.content != content) {
			// Made again, and done, while this fetch failed: look again.
			n.mu.Unlock()
			continue
		}
		if err == nil {
			err = n.store.Pin(content)
		}
		if err == nil {
			o.away = false
			n.dropLineageLocked(id, o, true) // here now: no rebuild needed
		}
		if err != nil && o.lin != nil && !n.closed && n.objects[id] == o {
			// Nobody serves it any more: the scheduler makes it again
			// from its lineage (a Rebuild action).
			n.log.Warn("lent result lost with its holder", "ref", id, "peer", holder, "err", err)
			n.stepLocked(sched.Event{Kind: sched.ObjectLost, Object: sched.ObjectID(id.KeyString())})
			n.actLocked()
			if o.state == pending {
				n.unlockAndAct()
				return errRebuilding
			}
		}
		n.unlockAndAct()
		if err != nil {
			if ctx.Err() == nil {
				err = &ObjectLostError{Ref: id, Err: err}
			}
			return fmt.Errorf("node: get %s (%s) from peer %s: %w", id, o.describe(), holder, err)
		}
		return nil
	}
}

// adopt records a fetched object (ref → content) and returns a counted ref.
func (n *Node) adopt(ref, content cid.Cid) (ObjectRef, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ObjectRef{}, fmt.Errorf("%w: cannot resolve %s", ErrClosed, ref)
	}
	o := n.objects[ref]
	if o == nil {
		if err := n.store.Pin(content); err != nil {
			return ObjectRef{}, fmt.Errorf("node: resolve %s: %w", ref, err)
		}
		o = &object{state: ready, content: content}
		n.objects[ref] = o
	}
	o.holds++
	n.announce(ref)
	return ObjectRef{newHandle(n, ref)}, nil
}
