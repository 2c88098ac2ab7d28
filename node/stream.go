package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
)

// PutStream stores size bytes read from r as a byte-string value ([]byte)
// and returns its ref, streaming them into the store: the bytes are never
// held twice, and a value larger than the memory budget goes to a spill
// file. It fails if r ends before size bytes.
func (n *Node) PutStream(ctx context.Context, r io.Reader, size int64) (Ref[[]byte], error) {
	if size < 0 {
		return Ref[[]byte]{}, fmt.Errorf("node: put stream: negative size %d", size)
	}
	var b codec.Builder
	b.ByteStringHead(uint64(size))
	head := b.Bytes()
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(r, size))
	c, got, err := n.store.PutStream(ctx, body, int64(len(head))+size)
	if err != nil {
		return Ref[[]byte]{}, fmt.Errorf("node: put stream: %w", err)
	}
	if want := int64(len(head)) + size; got != want {
		if c.Defined() {
			_ = n.store.Delete(c)
		}
		return Ref[[]byte]{}, fmt.Errorf("node: put stream: %w: read %d of %d bytes", io.ErrUnexpectedEOF, got-int64(len(head)), size)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return Ref[[]byte]{}, fmt.Errorf("%w: cannot put", ErrClosed)
	}
	o := n.objects[c]
	if o == nil {
		if err := n.store.Pin(c); err != nil { // evicted between the put and now
			n.mu.Unlock()
			return Ref[[]byte]{}, fmt.Errorf("node: put stream: %w", err)
		}
		o = &object{state: ready, content: c}
		n.objects[c] = o
	}
	o.holds++
	ref := Ref[[]byte]{ObjectRef{newHandle(n, c)}}
	n.mu.Unlock()
	n.announce(c)
	return ref, nil
}

// ErrNotBytes is returned by OpenBytes for a value that is not a byte string.
var ErrNotBytes = errors.New("node: value is not a byte string")

// OpenBytes waits for r's value, which must be a byte string, and streams
// its bytes without loading them into memory. The object stays held until
// the reader is closed.
func (n *Node) OpenBytes(ctx context.Context, r ObjectRef, opts ...GetOption) (io.ReadCloser, int64, error) {
	if r.IsZero() {
		return nil, 0, fmt.Errorf("node: open of a zero ref")
	}
	id := r.CID()
	content, release, err := n.resolve(ctx, id, opts, true)
	if err != nil {
		return nil, 0, err
	}
	rc, _, err := n.store.Open(ctx, content)
	if err != nil {
		release()
		return nil, 0, fmt.Errorf("node: open %s: %w", id, err)
	}
	var head [9]byte
	k, err := io.ReadFull(rc, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		rc.Close()
		release()
		return nil, 0, fmt.Errorf("node: open %s: %w", id, err)
	}
	size, hl, err := codec.ReadByteStringHead(head[:k])
	if err != nil {
		rc.Close()
		release()
		return nil, 0, fmt.Errorf("node: open %s: %w", id, ErrNotBytes)
	}
	body := io.MultiReader(bytes.NewReader(head[hl:k]), rc)
	return &bytesReader{Reader: io.LimitReader(body, int64(size)), c: rc, release: release}, int64(size), nil
}

type bytesReader struct {
	io.Reader
	c       io.Closer
	once    sync.Once
	release func()
}

func (b *bytesReader) Close() error {
	err := b.c.Close()
	b.once.Do(b.release)
	return err
}

// Describe tells what made the object c that this node tracks: for a task
// output, the function and result index; for a put value, fn is "".
func (n *Node) Describe(c cid.Cid) (fn string, index int, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	o := n.objects[c]
	if o == nil {
		return "", 0, false
	}
	return o.fn, o.index, true
}
