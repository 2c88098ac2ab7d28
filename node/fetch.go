package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
)

// fetchProtocol serves objects to peers: a want frame names a ref (a put
// value's content CID or a task output's descriptor CID); the answer is a
// have frame with the content CID and size, then the raw bytes, which the
// fetcher verifies against the content CID as they stream in.
const fetchProtocol = protocol.ID("/dray/fetch/1")

const (
	frameWant uint8 = iota + 10
	frameHave
	frameMissing
)

// have announces the bytes that follow on a fetch stream.
type have struct {
	Content []byte `codec:"c"`
	Size    int64  `codec:"n"`
}

func init() { codec.MustRegister[have]("dray/have/1") }

// fetchTimeout bounds one fetch from one holder (headers and bytes).
const fetchTimeout = 5 * time.Minute

// provideQueue is how many announcements may wait for the DHT; producers
// wait when it is full.
const provideQueue = 4096

// provideLoop announces objects in the DHT, one at a time, off the hot path.
func (n *Node) provideLoop() {
	defer n.loops.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case c := <-n.provides:
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			if err := n.net.Provide(ctx, c); err != nil && n.ctx.Err() == nil {
				n.log.Debug("provide", "cid", c, "err", err)
			}
			cancel()
		}
	}
}

// announce queues CIDs for the DHT (a no-op without a network).
func (n *Node) announce(cs ...cid.Cid) {
	if n.net == nil {
		return
	}
	for _, c := range cs {
		select {
		case n.provides <- c:
		case <-n.ctx.Done():
			return
		}
	}
}

// serveFetch answers a want frame with the object's bytes.
func (n *Node) serveFetch(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(fetchTimeout))
	typ, payload, err := p2p.ReadFrame(s, 256)
	if err != nil || typ != frameWant {
		return
	}
	ref, err := cid.Cast(payload)
	if err != nil {
		_ = p2p.WriteFrame(s, frameMissing, []byte("bad CID"))
		return
	}
	n.mu.Lock()
	content := ref
	if o := n.objects[ref]; o != nil {
		if o.state != ready {
			n.mu.Unlock()
			_ = p2p.WriteFrame(s, frameMissing, []byte("not ready"))
			return
		}
		content = o.content
	}
	n.mu.Unlock()
	rc, size, err := n.store.Open(n.ctx, content)
	if err != nil {
		_ = p2p.WriteFrame(s, frameMissing, []byte("not held"))
		return
	}
	defer rc.Close()
	msg, err := codec.Marshal(have{Content: content.Bytes(), Size: size})
	if err != nil {
		return
	}
	if err := p2p.WriteFrame(s, frameHave, msg); err != nil {
		return
	}
	if _, err := io.Copy(s, rc); err != nil {
		n.log.Debug("serve fetch", "cid", ref, "peer", s.Conn().RemotePeer(), "err", err)
	}
}

// fetch gets object ref from peer p into the store, verifying every byte
// against the content CID the peer names, and returns that content CID.
func (n *Node) fetch(ctx context.Context, p peer.ID, ref cid.Cid) (cid.Cid, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	s, err := n.net.Libp2p().NewStream(ctx, p, fetchProtocol)
	if err != nil {
		return cid.Undef, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := p2p.WriteFrame(s, frameWant, ref.Bytes()); err != nil {
		return cid.Undef, err
	}
	typ, payload, err := p2p.ReadFrame(s, 1024)
	if err != nil {
		return cid.Undef, err
	}
	if typ == frameMissing {
		return cid.Undef, fmt.Errorf("peer does not have it: %s", payload)
	}
	if typ != frameHave {
		return cid.Undef, fmt.Errorf("unexpected frame type %d", typ)
	}
	var h have
	if err := codec.Unmarshal(payload, &h); err != nil {
		return cid.Undef, err
	}
	content, err := cid.Cast(h.Content)
	if err != nil {
		return cid.Undef, err
	}
	if ref.Type() != cid.DagCBOR && content != ref {
		// Only task outputs (DAG-CBOR descriptors) name other content; a
		// put value's ref is its content CID.
		return cid.Undef, fmt.Errorf("peer named content %s for value %s", content, ref)
	}
	if h.Size < 0 {
		return cid.Undef, fmt.Errorf("negative size")
	}
	got, err := n.store.PutStreamVerified(ctx, content, io.LimitReader(s, h.Size), h.Size)
	if err != nil {
		return cid.Undef, err
	}
	if got != h.Size {
		return cid.Undef, fmt.Errorf("%w: got %d of %d bytes", io.ErrUnexpectedEOF, got, h.Size)
	}
	n.netc.sent(len(ref.Bytes()))
	n.netc.recv(len(payload) + int(got))
	n.netc.fetches.Add(1)
	return content, nil
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
	provs, ferr := n.net.FindProviders(ctx, c, 8)
	if ferr != nil {
		return ObjectRef{}, fmt.Errorf("node: resolve %s: %w", c, ferr)
	}
	var errs []error
	for _, ai := range provs {
		if ai.ID == n.net.ID() {
			continue
		}
		if len(ai.Addrs) > 0 {
			_ = n.net.Connect(ctx, ai)
		}
		content, err := n.fetch(ctx, ai.ID, c)
		if err != nil {
			n.log.Warn("fetch failed; trying another holder", "cid", c, "peer", ai.ID, "err", err)
			errs = append(errs, fmt.Errorf("from %s: %w", ai.ID, err))
			continue
		}
		return n.adopt(c, content)
	}
	if len(errs) == 0 {
		return ObjectRef{}, fmt.Errorf("node: resolve %s: no peer in the swarm holds it: %w", c, ErrUnknownRef)
	}
	return ObjectRef{}, fmt.Errorf("node: resolve %s: %w", c, errors.Join(errs...))
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
