package codec

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// bigPayload is the size from which Array payloads and byte strings met by
// the encoder are kept out of fxamacker's buffer and spliced into the final
// output, so they are copied exactly once. A variable for tests.
var bigPayload = 16 << 10

// maxRecursion bounds the encoder's and decoder's Go recursion (pointer and
// interface hops included), which stops cyclic values long before the stack
// would overflow. Real nesting is bounded more tightly by MaxDepth.
const maxRecursion = 1024

var (
	emptyShape = []int{}
	emptyBytes = []byte{}
)

// Marshal returns the canonical CBOR encoding of v: fxamacker's core
// deterministic encoding (map keys sorted bytewise, shortest integers and
// floats that keep the value, definite lengths) of codec's value model, so
// equal values have equal bytes. See the package documentation for what can
// be encoded and how. Errors are *TypeError (unregistered or untravelable
// types) or *EncodeError (invalid values).
func Marshal(v any) (data []byte, err error) {
	defer recoverPanic(&err, "encode")
	switch x := v.(type) {
	case nil:
		return []byte{0xf6}, nil
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, string:
		return em.Marshal(x)
	case []byte:
		if len(x) < bigPayload {
			return em.Marshal(x)
		}
	case Array:
		var e encState
		node, err := e.array(x)
		if err != nil {
			return nil, err
		}
		return e.finish(node)
	}
	t := reflect.TypeOf(v)
	p, err := planFor(t)
	if err != nil {
		return nil, err
	}
	var e encState
	if p.native {
		return e.finish(v)
	}
	node, err := e.enc(p, reflect.ValueOf(v))
	if err != nil {
		return nil, err
	}
	return e.finish(node)
}

// encState converts a Go value into a tree fxamacker encodes with our wire
// types, collecting large payloads to splice in afterwards.
type encState struct {
	payloads []payload
	level    int
}

// payload is a large byte string (or, if raw, a large Raw item) that splice
// writes into the output in place of a placeholder.
type payload struct {
	b   []byte
	raw bool
}

// finish encodes the tree, checks that the result respects the decoding
// limits, and splices the large payloads in.
func (e *encState) finish(node any) ([]byte, error) {
	out, err := em.Marshal(node)
	if err != nil {
		return nil, &EncodeError{Err: err}
	}
	if len(e.payloads) > 0 {
		if out, err = splice(out, e.payloads); err != nil {
			return nil, err
		}
	}
	// Byte strings are skipped in O(1), so this costs little even for
	// large outputs.
	if err := dmTyped.Wellformed(out); err != nil {
		var deep *cbor.MaxNestedLevelError
		if errors.As(err, &deep) {
			return nil, &EncodeError{Err: errTooDeep}
		}
		return nil, &EncodeError{Err: fmt.Errorf("value exceeds the decoding limits: %s", causeText(err))}
	}
	return out, nil
}

// bytes returns the tree node of a byte string: the bytes themselves, or a
// placeholder when they are large.
func (e *encState) bytes(b []byte) any {
	if len(b) >= bigPayload {
		e.payloads = append(e.payloads, payload{b: b})
		return placeholder(len(e.payloads) - 1)
	}
	if b == nil {
		return emptyBytes
	}
	return b
}

func (e *encState) enter() error {
	e.level++
	if e.level > maxRecursion {
		return &EncodeError{Err: errTooDeep}
	}
	return nil
}

// enc converts v (of p's type) into a tree node.
func (e *encState) enc(p *plan, v reflect.Value) (any, error) {
	if p.native {
		return v.Interface(), nil
	}
	switch p.kind {
	case kScalar:
		if x, ok := scalar(v); ok {
			return x, nil
		}
	case kBytes:
		if v.IsNil() {
			return nil, nil
		}
		return e.bytes(v.Bytes()), nil
	case kByteArray:
		if !v.CanAddr() {
			c := reflect.New(p.t).Elem()
			c.Set(v)
			v = c
		}
		return e.bytes(v.Bytes()), nil
	case kSlice, kGoArray:
		if p.kind == kSlice && v.IsNil() {
			return nil, nil
		}
		if err := e.enter(); err != nil {
			return nil, err
		}
		n := v.Len()
		out := make([]any, n)
		for i := range n {
			x, err := e.enc(p.elem, v.Index(i))
			if err != nil {
				return nil, withPath(err, indexSeg(i))
			}
			out[i] = x
		}
		e.level--
		return out, nil
	case kMap:
		return e.encMap(p, v)
	case kPtr:
		if v.IsNil() {
			return nil, nil
		}
		if err := e.enter(); err != nil {
			return nil, err
		}
		x, err := e.enc(p.elem, v.Elem())
		e.level--
		return x, err
	case kIface:
		if v.IsNil() {
			return nil, nil
		}
		ev := v.Elem()
		ep, err := planFor(ev.Type())
		if err != nil {
			return nil, err
		}
		if err := e.enter(); err != nil {
			return nil, err
		}
		x, err := e.enc(ep, ev)
		e.level--
		return x, err
	case kStruct:
		return e.encStruct(p, v)
	case kBinary:
		m, ok := addressable(v).Interface().(encoding.BinaryMarshaler)
		if !ok {
			return nil, &EncodeError{Err: fmt.Errorf("%s does not implement encoding.BinaryMarshaler", p.t)}
		}
		data, err := m.MarshalBinary()
		if err != nil {
			return nil, &EncodeError{Err: fmt.Errorf("%s.MarshalBinary: %w", p.t, err)}
		}
		return &objEnc{Name: p.reg.name, Body: e.bytes(data)}, nil
	case kCid:
		return linkNode(v.Interface().(cid.Cid)), nil
	case kLink:
		l, ok := addressable(v).Interface().(Linker)
		if !ok {
			return nil, &EncodeError{Err: fmt.Errorf("%s implements codec.LinkSetter but not codec.Linker", p.t)}
		}
		return linkNode(l.Link()), nil
	case kNDArray:
		return e.array(v.Interface().(Array))
	case kRaw:
		r := v.Bytes()
		if len(r) == 0 {
			return nil, nil
		}
		if err := checkRaw(r); err != nil {
			return nil, &EncodeError{Err: err}
		}
		if len(r) >= bigPayload {
			e.payloads = append(e.payloads, payload{b: r, raw: true})
			return placeholder(len(e.payloads) - 1), nil
		}
		return cbor.RawMessage(r), nil
	}
	return nil, &TypeError{Type: p.t, Err: ErrCannotTravel}
}

// addressable returns a pointer to v's value (copying it if needed), so
// methods with pointer receivers are reachable.
func addressable(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		return v.Addr()
	}
	pv := reflect.New(v.Type())
	pv.Elem().Set(v)
	return pv
}

// scalar returns a scalar v in its plain Go form: bool, int64, uint64,
// float32, float64 or string. ok is false for other kinds.
func scalar(v reflect.Value) (x any, ok bool) {
	switch v.Kind() {
	case reflect.Bool:
		return v.Bool(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint(), true
	case reflect.Float32:
		return float32(v.Float()), true
	case reflect.Float64:
		return v.Float(), true
	case reflect.String:
		return v.String(), true
	}
	return nil, false
}

func linkNode(c cid.Cid) any {
	if !c.Defined() {
		return nil
	}
	s := c.KeyString()
	b := make([]byte, 1+len(s))
	copy(b[1:], s)
	return linkWire(b)
}

func (e *encState) encStruct(p *plan, v reflect.Value) (any, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	w := reflect.New(p.wEnc).Elem()
	for i := range p.fields {
		f := &p.fields[i]
		fv := v.FieldByIndex(f.index)
		if f.native {
			w.Field(i).Set(fv)
			continue
		}
		x, err := e.enc(f.p, fv)
		if err != nil {
			return nil, withPath(err, "."+f.name)
		}
		if x != nil {
			w.Field(i).Set(reflect.ValueOf(x))
		}
	}
	e.level--
	return &objEnc{Name: p.reg.name, Body: w.Addr().Interface()}, nil
}

func (e *encState) encMap(p *plan, v reflect.Value) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	if err := e.enter(); err != nil {
		return nil, err
	}
	out := make(map[any]any, v.Len())
	dyn := p.key.kind == kIface
	iter := v.MapRange()
	for iter.Next() {
		k := iter.Key()
		var key any
		if dyn {
			var err error
			if key, err = dynKey(k); err != nil {
				return nil, err
			}
			if _, dup := out[key]; dup {
				return nil, &EncodeError{Path: keySeg(key), Err: errors.New("two map keys encode the same")}
			}
		} else {
			var err error
			if key, err = e.enc(p.key, k); err != nil {
				return nil, err
			}
		}
		x, err := e.enc(p.elem, iter.Value())
		if err != nil {
			return nil, withPath(err, keySeg(key))
		}
		out[key] = x
	}
	e.level--
	return out, nil
}

// dynKey normalises a map key held in an interface so keys that encode the
// same compare equal: strings, int64 (negative) or uint64, and bools.
func dynKey(k reflect.Value) (any, error) {
	if k.Kind() == reflect.Interface {
		if k.IsNil() {
			return nil, &EncodeError{Err: errors.New("map key is nil: keys must be strings, integers or bools")}
		}
		k = k.Elem()
	}
	if !validKeyKind(k.Type()) || k.Kind() == reflect.Interface {
		return nil, &EncodeError{Err: fmt.Errorf("map key of type %s: keys must be strings, integers or bools", k.Type())}
	}
	switch k.Kind() {
	case reflect.String:
		return k.String(), nil
	case reflect.Bool:
		return k.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i := k.Int(); i < 0 {
			return i, nil
		} else {
			return uint64(i), nil
		}
	default:
		return k.Uint(), nil
	}
}

// array converts an Array into its tree node.
func (e *encState) array(a Array) (any, error) {
	if a.IsZero() {
		return nil, nil
	}
	if err := a.Validate(); err != nil {
		return nil, &EncodeError{Err: err}
	}
	shape := a.Shape
	if shape == nil {
		shape = emptyShape
	}
	var data any
	if a.DType == Bool {
		data = e.bytes(a.Data)
	} else {
		data = cbor.Tag{Number: a.DType.tag(), Content: e.bytes(a.Data)}
	}
	return &arrEnc{Shape: shape, Data: data}, nil
}

// splice replaces every placeholder item in skel (tag tagPlaceholder around
// an index) with payloads[index]: a byte string holding it, or the bytes
// themselves for a raw payload. The output is allocated once at its exact
// size and each payload copied once.
func splice(skel []byte, payloads []payload) ([]byte, error) {
	type hole struct{ start, end, idx int }
	holes := make([]hole, 0, len(payloads))
	var visit func(off int) (int, error)
	visit = func(off int) (int, error) {
		h, ok := readHead(skel, off)
		if !ok {
			return 0, errors.New("truncated skeleton")
		}
		next := off + h.n
		switch h.major {
		case majorBytes, majorText:
			return next + int(h.arg), nil
		case majorArray, majorMap:
			n := int(h.arg)
			if h.major == majorMap {
				n *= 2
			}
			for range n {
				var err error
				if next, err = visit(next); err != nil {
					return 0, err
				}
			}
			return next, nil
		case majorTag:
			if h.arg == tagPlaceholder {
				ih, ok := readHead(skel, next)
				if !ok || ih.major != majorUint || ih.arg >= uint64(len(payloads)) {
					return 0, errors.New("bad placeholder")
				}
				end := next + ih.n
				holes = append(holes, hole{off, end, int(ih.arg)})
				return end, nil
			}
			return visit(next)
		}
		return next, nil
	}
	if _, err := visit(0); err != nil {
		return nil, &EncodeError{Err: fmt.Errorf("splicing large payloads: %w", err)}
	}
	parts := make([][]byte, 0, 3*len(holes)+1)
	heads := make([]byte, 0, 9*len(holes))
	prev := 0
	for _, h := range holes {
		p := payloads[h.idx]
		parts = append(parts, skel[prev:h.start])
		if !p.raw {
			hs := len(heads)
			heads = appendHead(heads, majorBytes, uint64(len(p.b)))
			parts = append(parts, heads[hs:len(heads):len(heads)])
		}
		parts = append(parts, p.b)
		prev = h.end
	}
	parts = append(parts, skel[prev:])
	return bytes.Join(parts, nil), nil
}

// appendHead appends the shortest CBOR head of major type major with
// argument n. It is used only for byte-string heads in splice; a test checks
// it against fxamacker's output for every head size.
func appendHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= math.MaxUint8:
		return append(dst, m|24, byte(n))
	case n <= math.MaxUint16:
		return append(dst, m|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(dst, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
