package node

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
)

// handle is what a live ref points at. The node counts handles per object;
// when the garbage collector frees the last copy of a ref, its handle's
// cleanup gives the count back, so objects nobody can name any more are
// released (as Ray's reference counting does). Release gives it back at
// once instead, and stops the cleanup.
type handle struct {
	n        *Node // nil for a borrowed ref decoded from a value
	id       cid.Cid
	cleanup  runtime.Cleanup
	released atomic.Bool
}

type releaseArg struct {
	n  *Node
	id cid.Cid
}

// newHandle returns a counted handle; the caller has already counted it.
func newHandle(n *Node, id cid.Cid) *handle {
	h := &handle{n: n, id: id}
	h.cleanup = runtime.AddCleanup(h, func(a releaseArg) { a.n.release(a.id) }, releaseArg{n, id})
	return h
}

// ObjectRef is a reference to an object: a task output or a put value. Its
// ID is a CID known before the object exists. Copies of a ref share one
// handle; the object is released once no copy is reachable, or at once by
// Release.
//
// A ref found inside a decoded value (a list of refs passed to a task, say)
// is borrowed: it is not counted, and resolves through the node found in
// the context passed to Get, which inside a task is the node running it.
type ObjectRef struct {
	h *handle
}

// Ref is an ObjectRef whose value has type T.
type Ref[T any] struct {
	ObjectRef
}

// As gives a typed view of r. Get decodes into T and fails if the value does
// not fit it.
func As[T any](r ObjectRef) Ref[T] { return Ref[T]{r} }

// CID returns the ref's ID (the zero CID for a zero ref).
func (r ObjectRef) CID() cid.Cid {
	if r.h == nil {
		return cid.Undef
	}
	return r.h.id
}

// String returns the CID in its usual text form.
func (r ObjectRef) String() string {
	if r.h == nil {
		return "<nil ref>"
	}
	return r.h.id.String()
}

// IsZero reports whether r refers to nothing.
func (r ObjectRef) IsZero() bool { return r.h == nil }

// Release gives back r's hold on its object now, instead of when the
// garbage collector finds r unreachable: once nothing else holds the
// object (another ref from Node.Ref or a call, a task waiting for it, a
// value containing it), the node forgets it and its bytes leave the store
// (a deterministic function's result stays as a memo the store may
// evict). Copies of a ref share one hold, so releasing any copy releases
// them all; later calls do nothing. Afterwards r still names its CID, but
// Get and passing r as a call argument fail with a *ReleasedError. Do not
// release a ref while a Get of it, or a call taking it, is in progress. A
// borrowed ref (decoded from a value) holds nothing; Release only marks
// it. Release of a zero ref does nothing.
func (r ObjectRef) Release() {
	h := r.h
	if h == nil || !h.released.CompareAndSwap(false, true) {
		return
	}
	if h.n != nil {
		h.cleanup.Stop()
		h.n.release(h.id)
	}
	runtime.KeepAlive(h) // h is reachable until its cleanup is stopped
}

// Released reports whether Release was called on r or a copy of it.
func (r ObjectRef) Released() bool { return r.h != nil && r.h.released.Load() }

// usable returns an error unless r can be used by op: not zero, not
// released.
func (r ObjectRef) usable(op string) error {
	if r.h == nil {
		return fmt.Errorf("node: %s of a zero ref", op)
	}
	if r.h.released.Load() {
		return &ReleasedError{Op: op, Ref: r.h.id}
	}
	return nil
}

// Link makes refs travel inside values as CID links (codec.Linker).
func (r ObjectRef) Link() cid.Cid { return r.CID() }

// SetLink decodes a CID link into a borrowed ref (codec.LinkSetter).
func (r *ObjectRef) SetLink(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("node: undefined CID cannot be a ref")
	}
	r.h = &handle{id: c}
	return nil
}

func (r ObjectRef) objectRef() ObjectRef { return r }

func (r Ref[T]) callArg() any { return r.ObjectRef }

var (
	_ codec.Linker     = ObjectRef{}
	_ codec.LinkSetter = (*ObjectRef)(nil)
	_ codec.Linker     = Ref[int]{}
	_ codec.LinkSetter = (*Ref[int])(nil)
)

// refArg is implemented by ObjectRef and every Ref[T]: a top-level call
// argument that is a dependency.
type refArg interface{ objectRef() ObjectRef }

// GetOption changes how Get waits.
type GetOption func(*getOptions)

type getOptions struct{ timeout time.Duration }

// WithTimeout bounds how long Get waits; on expiry it returns an error that
// matches context.DeadlineExceeded.
func WithTimeout(d time.Duration) GetOption { return func(o *getOptions) { o.timeout = d } }

func (r ObjectRef) node(ctx context.Context) (*Node, error) {
	if err := r.usable("get"); err != nil {
		return nil, err
	}
	if r.h.n != nil {
		return r.h.n, nil
	}
	if n := FromContext(ctx); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("node: ref %s was decoded from a value and has no node: call Get inside a task, or pass the node's context", r.h.id)
}

// Get waits for the value and decodes it into its dynamic form (see
// codec.Unmarshal into any).
func (r ObjectRef) Get(ctx context.Context, opts ...GetOption) (any, error) {
	var v any
	err := r.GetInto(ctx, &v, opts...)
	return v, err
}

// GetInto waits for the value and decodes it into ptr.
func (r ObjectRef) GetInto(ctx context.Context, ptr any, opts ...GetOption) error {
	n, err := r.node(ctx)
	if err != nil {
		return err
	}
	data, err := n.getBytes(ctx, r.h.id, opts)
	if err != nil {
		return err
	}
	if err := codec.Unmarshal(data, ptr); err != nil {
		return fmt.Errorf("node: get %s: decode into %T: %w", r.h.id, ptr, err)
	}
	if mayHaveLinks(data) {
		// Refs inside the value become counted refs of this node, usable
		// (and keeping their objects) after r is gone.
		if err := n.adoptRefs(reflect.ValueOf(ptr)); err != nil {
			return fmt.Errorf("node: get %s: %w", r.h.id, err)
		}
	}
	runtime.KeepAlive(r) // r holds the object (and so its links) until here
	return nil
}

var objectRefType = reflect.TypeFor[ObjectRef]()

// adoptRefs replaces every borrowed ObjectRef reachable from v with a
// counted ref of n. Values behind interfaces and in maps are copied, fixed
// and stored back, since they cannot be changed in place.
func (n *Node) adoptRefs(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return n.adoptRefs(v.Elem())
		}
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return nil
		}
		c := reflect.New(v.Elem().Type()).Elem()
		c.Set(v.Elem())
		if err := n.adoptRefs(c); err != nil {
			return err
		}
		v.Set(c)
	case reflect.Struct:
		if v.Type() == objectRefType {
			r := v.Addr().Interface().(*ObjectRef)
			if r.h == nil || r.h.n != nil {
				return nil
			}
			counted, err := n.Ref(r.h.id)
			if err != nil {
				return err
			}
			*r = counted
			return nil
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				if err := n.adoptRefs(f); err != nil {
					return err
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i := range v.Len() {
			if err := n.adoptRefs(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			c := reflect.New(v.Type().Elem()).Elem()
			c.Set(it.Value())
			if err := n.adoptRefs(c); err != nil {
				return err
			}
			v.SetMapIndex(it.Key(), c)
		}
	}
	return nil
}

// Get waits for the value and returns it as a T.
func (r Ref[T]) Get(ctx context.Context, opts ...GetOption) (T, error) {
	var v T
	err := r.GetInto(ctx, &v, opts...)
	return v, err
}
