package codec

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// Unmarshal decodes data, which must hold exactly one CBOR item, into the
// value v points to. *v is replaced, not merged into, and is left unchanged
// on error. Decoding into any yields: nil, bool, int64 (uint64 above
// math.MaxInt64), float64, string, []byte, []any, map[string]any (or
// map[any]any when some key is not a string), cid.Cid, Array, and values of
// registered types (T, not *T). null decodes into the zero value of any
// type. Errors caused by the input are *DecodeError (errors.Is(err,
// ErrDecode)); a target type that cannot travel gives a *TypeError. An input
// that would make the decode allocate more than max(DecodeAllocFloor,
// DecodeAllocFactor x len(data)) bytes is refused, before allocating, with
// an error that also matches ErrAllocLimit.
func Unmarshal(data []byte, v any) (err error) {
	defer recoverPanic(&err, "decode")
	switch p := v.(type) {
	case *any:
		if p == nil {
			break
		}
		if err := dmTyped.Wellformed(data); err != nil {
			return syntaxError(data, err)
		}
		if err := checkBudget(nil, data); err != nil {
			return err
		}
		d := decoder{base: cap(data)}
		x, err := d.decAny(data)
		if err != nil {
			return err
		}
		*p = x
		return nil
	case *int:
		return unmarshalScalar(data, p)
	case *int64:
		return unmarshalScalar(data, p)
	case *uint64:
		return unmarshalScalar(data, p)
	case *float64:
		return unmarshalScalar(data, p)
	case *string:
		return unmarshalScalar(data, p)
	case *bool:
		return unmarshalScalar(data, p)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("codec: Unmarshal needs a non-nil pointer, got %T", v)
	}
	t := rv.Type().Elem()
	p, err := planFor(t)
	if err != nil {
		return err
	}
	if err := dmTyped.Wellformed(data); err != nil {
		return syntaxError(data, err)
	}
	if !p.flat {
		if err := checkBudget(p, data); err != nil {
			return err
		}
	}
	d := decoder{base: cap(data)}
	nv := reflect.New(t).Elem()
	if err := d.dec(p, data, nv); err != nil {
		return err
	}
	rv.Elem().Set(nv)
	return nil
}

func unmarshalScalar[T any](data []byte, p *T) error {
	if p == nil {
		return fmt.Errorf("codec: Unmarshal needs a non-nil pointer, got %T", p)
	}
	var x T
	if err := dmNative.Unmarshal(data, &x); err != nil {
		if s := scanSyntax(data); s != nil {
			return &DecodeError{Offset: s.off, Err: errors.New(s.msg)}
		}
		d := decoder{base: cap(data)}
		return d.fail(data, reflect.TypeFor[T](), err)
	}
	*p = x
	return nil
}

// syntaxError turns a well-formedness error from fxamacker into a
// *DecodeError with the offset of the problem.
func syntaxError(data []byte, err error) error {
	if s := scanSyntax(data); s != nil {
		return &DecodeError{Offset: s.off, Err: errors.New(s.msg)}
	}
	return &DecodeError{Err: err}
}

// decoder decodes one input. Items are sub-slices of the input that share its
// capacity, so an item's offset is base - cap(item).
type decoder struct {
	base  int
	level int
}

func (d *decoder) off(item []byte) int { return d.base - cap(item) }

func (d *decoder) errAt(item []byte, err error) *DecodeError {
	return &DecodeError{Offset: d.off(item), Err: err}
}

// fail reports that item could not be decoded into t, translating
// fxamacker's errors into plainer ones.
func (d *decoder) fail(item []byte, t reflect.Type, err error) *DecodeError {
	var (
		ute *cbor.UnmarshalTypeError
		tme *cbor.TagsMdError
		wte *cbor.WrongTagError
	)
	var imk *cbor.InvalidMapKeyTypeError
	switch {
	case errors.As(err, &ute), errors.As(err, &tme), errors.As(err, &wte):
		return d.errAt(item, &mismatchError{what: describe(item), into: t, cause: err})
	case errors.As(err, &imk):
		// A key fxamacker cannot hash, named by the Go type it made.
		kind := "array, map, byte string or tag"
		switch {
		case strings.HasPrefix(imk.GoType, "[]uint8"), strings.HasPrefix(imk.GoType, "codec.span"):
			kind = "byte string or tag"
		case strings.HasPrefix(imk.GoType, "[]"):
			kind = "array"
		case strings.HasPrefix(imk.GoType, "map["):
			kind = "map"
		}
		return d.errAt(item, fmt.Errorf("map key of type %s: keys must be strings, integers or bools", kind))
	}
	return d.errAt(item, err)
}

// mismatchError says that an item of one CBOR kind cannot become a Go type.
type mismatchError struct {
	what  string
	into  reflect.Type
	cause error
}

func (e *mismatchError) Error() string {
	msg := "cannot decode " + e.what + " into " + e.into.String()
	var ute *cbor.UnmarshalTypeError
	if errors.As(e.cause, &ute) {
		// fxamacker puts details such as "overflows" in a final parenthesis.
		if s := ute.Error(); strings.HasSuffix(s, ")") {
			if i := strings.LastIndex(s, " ("); i >= 0 {
				msg += s[i:]
			}
		}
	}
	return msg
}

func (e *mismatchError) Unwrap() error { return e.cause }

func (d *decoder) enter(item []byte) error {
	d.level++
	if d.level > maxRecursion {
		return d.errAt(item, errors.New("value is nested too deeply for its Go type"))
	}
	return nil
}

func isNull(item []byte) bool { return len(item) == 1 && (item[0] == 0xf6 || item[0] == 0xf7) }

// dec decodes item into v, a settable zero value of p's type.
func (d *decoder) dec(p *plan, item []byte, v reflect.Value) error {
	if p.native {
		err := dmNative.Unmarshal(item, v.Addr().Interface())
		if err == nil {
			return nil
		}
		if p.kind == kScalar {
			return d.fail(item, p.t, err)
		}
		// Decode again piece by piece to find the element at fault.
		v.SetZero()
		if err2 := d.decSlow(p, item, v); err2 != nil {
			return err2
		}
		return nil
	}
	return d.decSlow(p, item, v)
}

// decSlow decodes item into v with codec's own walk of p.
func (d *decoder) decSlow(p *plan, item []byte, v reflect.Value) error {
	if p.kind == kRaw {
		v.SetBytes(append([]byte(nil), item...))
		return nil
	}
	if isNull(item) {
		return nil // null: the zero value of any type
	}
	switch p.kind {
	case kScalar:
		if p.native {
			if err := dmNative.Unmarshal(item, v.Addr().Interface()); err != nil {
				return d.fail(item, p.t, err)
			}
			return nil
		}
		nv := reflect.New(p.base)
		if err := dmNative.Unmarshal(item, nv.Interface()); err != nil {
			return d.fail(item, p.t, err)
		}
		v.Set(nv.Elem().Convert(p.t))
	case kBytes, kByteArray:
		var b []byte
		if err := dmNative.Unmarshal(item, &b); err != nil {
			return d.fail(item, p.t, err)
		}
		if p.kind == kBytes {
			v.SetBytes(b)
			return nil
		}
		if len(b) != p.n {
			return d.errAt(item, fmt.Errorf("byte string of %d bytes cannot decode into %s", len(b), p.t))
		}
		copy(v.Bytes(), b)
	case kSlice, kGoArray:
		switch h, _ := readHead(item, 0); {
		case h.major != majorArray:
			return d.errAt(item, &mismatchError{what: describe(item), into: p.t})
		case p.kind == kGoArray && h.arg != uint64(p.n):
			return d.errAt(item, fmt.Errorf("array of %d elements cannot decode into %s", h.arg, p.t))
		}
		var items []rawItem
		if err := dmTyped.Unmarshal(item, &items); err != nil {
			return d.fail(item, p.t, err)
		}
		if err := d.enter(item); err != nil {
			return err
		}
		s := v
		if p.kind == kSlice {
			s = reflect.MakeSlice(p.t, len(items), len(items))
		} else if len(items) != p.n {
			return d.errAt(item, fmt.Errorf("array of %d elements cannot decode into %s", len(items), p.t))
		}
		for i, it := range items {
			if err := d.dec(p.elem, it, s.Index(i)); err != nil {
				return withPath(err, indexSeg(i))
			}
		}
		d.level--
		if p.kind == kSlice {
			v.Set(s)
		}
	case kMap:
		return d.decMap(p, item, v)
	case kPtr:
		if err := d.enter(item); err != nil {
			return err
		}
		e := reflect.New(p.elem.t)
		if err := d.dec(p.elem, item, e.Elem()); err != nil {
			return err
		}
		d.level--
		v.Set(e)
	case kIface:
		if err := d.enter(item); err != nil {
			return err
		}
		x, err := d.decAny(item)
		if err != nil {
			return err
		}
		d.level--
		return d.setIface(p, item, v, x)
	case kStruct, kBinary:
		return d.decObject(p, item, v)
	case kCid:
		c, err := d.decLink(item)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(c))
	case kLink:
		ls, ok := v.Addr().Interface().(LinkSetter)
		if !ok {
			return d.errAt(item, fmt.Errorf("cannot decode a link into %s: *%s does not implement codec.LinkSetter", p.t, p.t))
		}
		c, err := d.decLink(item)
		if err != nil {
			return err
		}
		if err := ls.SetLink(c); err != nil {
			return d.errAt(item, fmt.Errorf("%s.SetLink: %w", p.t, err))
		}
	case kNDArray:
		a, err := d.decNDArray(item)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(a))
	default:
		return d.errAt(item, fmt.Errorf("cannot decode into %s", p.t))
	}
	return nil
}

// setIface stores a dynamically decoded value x into interface v.
func (d *decoder) setIface(p *plan, item []byte, v reflect.Value, x any) error {
	if x == nil {
		return nil
	}
	xv := reflect.ValueOf(x)
	switch {
	case xv.Type().AssignableTo(p.t):
		v.Set(xv)
	case reflect.PointerTo(xv.Type()).AssignableTo(p.t):
		pv := reflect.New(xv.Type())
		pv.Elem().Set(xv)
		v.Set(pv)
	default:
		return d.errAt(item, fmt.Errorf("decoded %s does not implement %s", xv.Type(), p.t))
	}
	return nil
}

type mapEntry struct {
	key  reflect.Value
	item rawItem
}

// sortedEntries returns a map[K]rawItem's entries in input order, so the
// first bad entry in the input is the one reported.
func (d *decoder) sortedEntries(m reflect.Value) []mapEntry {
	out := make([]mapEntry, 0, m.Len())
	iter := m.MapRange()
	for iter.Next() {
		out = append(out, mapEntry{iter.Key(), iter.Value().Interface().(rawItem)})
	}
	slices.SortFunc(out, func(a, b mapEntry) int { return cap(b.item) - cap(a.item) })
	return out
}

func (d *decoder) decMap(p *plan, item []byte, v reflect.Value) error {
	mr := reflect.New(p.mapRaw)
	if err := dmTyped.Unmarshal(item, mr.Interface()); err != nil {
		if p.key.kind == kIface {
			if kerr := badAnyKey(item); kerr != nil {
				return d.errAt(item, kerr)
			}
		}
		var ute *cbor.UnmarshalTypeError
		if kt := p.t.Key(); errors.As(err, &ute) && item[0]>>5 == majorMap && ute.GoType == kt.String() {
			return d.errAt(item, fmt.Errorf("cannot decode %s map key into %s", ute.CBORType, kt))
		}
		return d.fail(item, p.t, err)
	}
	if err := d.enter(item); err != nil {
		return err
	}
	entries := d.sortedEntries(mr.Elem())
	m := reflect.MakeMapWithSize(p.t, len(entries))
	keyT, elemT := p.t.Key(), p.t.Elem()
	for _, e := range entries {
		key := e.key
		if p.key.kind == kIface {
			k, err := anyKey(key.Interface())
			if err != nil {
				return d.errAt(item, err)
			}
			kv := reflect.ValueOf(k)
			if !kv.Type().AssignableTo(keyT) {
				return d.errAt(item, fmt.Errorf("map key of type %s does not implement %s", kv.Type(), keyT))
			}
			key = kv
		}
		val := reflect.New(elemT).Elem()
		if err := d.dec(p.elem, e.item, val); err != nil {
			return withPath(err, keySeg(key.Interface()))
		}
		m.SetMapIndex(key, val)
	}
	d.level--
	v.Set(m)
	return nil
}

// anyKey validates and normalises a map key decoded into any.
func anyKey(k any) (any, error) {
	switch k := k.(type) {
	case string, int64, bool:
		return k, nil
	case uint64:
		if k <= math.MaxInt64 {
			return int64(k), nil
		}
		return k, nil
	case nil:
		return nil, errors.New("map key is null: keys must be strings, integers or bools")
	}
	return nil, fmt.Errorf("map key of type %s: keys must be strings, integers or bools", goKind(k))
}

// goKind names the CBOR kind behind a value fxamacker decoded into any.
func goKind(x any) string {
	switch x := x.(type) {
	case float64:
		return "float"
	case []byte, cbor.ByteString:
		return "byte string"
	case cbor.Tag:
		return fmt.Sprintf("tag %d", x.Number)
	case cbor.SimpleValue:
		return fmt.Sprintf("simple value %d", x)
	}
	return fmt.Sprintf("%T", x)
}

// decObject decodes tag 27 [name, body] into a registered type.
func (d *decoder) decObject(p *plan, item []byte, v reflect.Value) error {
	var od objDec
	if err := dmTyped.Unmarshal(item, &od); err != nil {
		return d.objectError(item, p.t, err)
	}
	if od.Name != p.reg.name {
		return d.errAt(item, fmt.Errorf("value of registered type %q cannot decode into %s (registered as %q)", od.Name, p.t, p.reg.name))
	}
	return d.decBody(p, od.Body, v)
}

func (d *decoder) objectError(item []byte, t reflect.Type, err error) *DecodeError {
	h, _ := readHead(item, 0)
	if h.major != majorTag || h.arg != tagObject {
		return d.fail(item, t, err)
	}
	c := item[h.n:]
	if ha, _ := readHead(c, 0); ha.major != majorArray || ha.arg != 2 {
		return d.errAt(item, fmt.Errorf("tag 27 must hold [type name, fields], not %s", describeA(c)))
	}
	name := c[1:]
	if hn, _ := readHead(name, 0); hn.major != majorText {
		return d.errAt(item, fmt.Errorf("tag 27 must hold [type name, fields]: the type name must be a text string, not %s", describeA(name)))
	}
	return d.errAt(item, fmt.Errorf("tag 27 must hold [type name, fields]: %s", causeText(err)))
}

// describeA is describe with an indefinite article, and the item count of
// arrays: "an unsigned integer", "an array of 3 items".
func describeA(item []byte) string {
	h, _ := readHead(item, 0)
	if h.major == majorArray {
		return fmt.Sprintf("an array of %d items", h.arg)
	}
	s := describe(item)
	switch s[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + s
	}
	return "a " + s
}

// decBody decodes the body of a registered value: a fields map for structs,
// a byte string for binary types.
func (d *decoder) decBody(p *plan, body []byte, v reflect.Value) error {
	if err := d.enter(body); err != nil {
		return err
	}
	defer func() { d.level-- }()
	if p.kind == kBinary {
		var b []byte
		if err := dmNative.Unmarshal(body, &b); err != nil {
			return d.fail(body, reflect.TypeFor[[]byte](), err)
		}
		pv := reflect.New(p.t)
		if err := pv.Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
			return d.errAt(body, fmt.Errorf("%s.UnmarshalBinary: %w", p.t, err))
		}
		v.Set(pv.Elem())
		return nil
	}
	w := reflect.New(p.wDec)
	if err := dmTyped.Unmarshal(body, w.Interface()); err != nil {
		return d.decFieldsSlow(p, body, v)
	}
	we := w.Elem()
	for i := range p.fields {
		f := &p.fields[i]
		fv := v.FieldByIndex(f.index)
		if f.native {
			fv.Set(we.Field(i))
			continue
		}
		it := we.Field(i).Bytes()
		if len(it) == 0 {
			continue // absent
		}
		if err := d.dec(f.p, it, fv); err != nil {
			return withPath(err, "."+f.name)
		}
	}
	return nil
}

// decFieldsSlow decodes a fields map one field at a time, to report the
// field at fault precisely.
func (d *decoder) decFieldsSlow(p *plan, body []byte, v reflect.Value) error {
	h, _ := readHead(body, 0)
	if h.major != majorMap {
		return d.errAt(body, fmt.Errorf("fields of %s must be a map, not %s", p.t, describeA(body)))
	}
	// Check the names before building a map of the fields; with more
	// entries than fields, some name is unknown: report it without
	// allocating for a map of, possibly, many unknown fields.
	off := h.n
	for range h.arg {
		hk, _ := readHead(body, off)
		kEnd := skipItem(body, off)
		if hk.major != majorText {
			return d.errAt(body, fmt.Errorf("fields of %s: field names must be text strings, not %s", p.t, describeA(body[off:])))
		}
		name := body[off+hk.n : kEnd]
		if _, ok := p.byName[string(name)]; !ok && h.arg > uint64(len(p.fields)) {
			return withPath(d.errAt(body[kEnd:], fmt.Errorf("%s has no field %q", p.t, name)), "."+string(name))
		}
		off = skipItem(body, kEnd)
	}
	var m map[string]rawItem
	if err := dmTyped.Unmarshal(body, &m); err != nil {
		return d.errAt(body, fmt.Errorf("fields of %s: %s", p.t, causeText(err)))
	}
	entries := d.sortedEntries(reflect.ValueOf(m))
	for _, e := range entries {
		name := e.key.String()
		i, ok := p.byName[name]
		if !ok {
			return withPath(d.errAt(e.item, fmt.Errorf("%s has no field %q", p.t, name)), "."+name)
		}
		f := &p.fields[i]
		if err := d.dec(f.p, e.item, v.FieldByIndex(f.index)); err != nil {
			return withPath(err, "."+name)
		}
	}
	return nil
}

// decLink decodes tag 42 into a CID.
func (d *decoder) decLink(item []byte) (cid.Cid, error) {
	var lw linkWire
	if err := dmTyped.Unmarshal(item, &lw); err != nil {
		h, _ := readHead(item, 0)
		if h.major == majorTag && h.arg == tagLink {
			return cid.Undef, d.errAt(item, errors.New("tag 42 must hold a byte string"))
		}
		return cid.Undef, d.fail(item, typeCid, err)
	}
	if len(lw) == 0 || lw[0] != 0 {
		return cid.Undef, d.errAt(item, errors.New("link must be a byte string of 0x00 and a binary CID"))
	}
	c, err := cid.Cast(lw[1:])
	if err != nil {
		return cid.Undef, d.errAt(item, fmt.Errorf("invalid CID in link: %w", err))
	}
	return c, nil
}

// decNDArray decodes tag 40 [shape, typed array] into an Array. The payload
// is copied once, by fxamacker, into the Array's Data.
func (d *decoder) decNDArray(item []byte) (Array, error) {
	if h, _ := readHead(item, 0); h.major == majorTag && h.arg == tagNDArray {
		// Check the layout first: it refuses long shapes before they are
		// decoded, and explains problems in terms of the wire format.
		if err := checkNDArray(item[h.n:]); err != nil {
			return Array{}, d.errAt(item, err)
		}
	}
	var ad arrDec
	if err := dmTyped.Unmarshal(item, &ad); err != nil {
		h, _ := readHead(item, 0)
		if h.major == majorTag && h.arg == tagNDArray {
			return Array{}, d.errAt(item, fmt.Errorf("tag 40 must hold [shape, data]: %s", causeText(err)))
		}
		return Array{}, d.fail(item, typeArray, err)
	}
	shape := make([]int, len(ad.Shape))
	for i, n := range ad.Shape {
		shape[i] = int(n) // checkNDArray bounds n
	}
	a := Array{Shape: shape}
	switch x := ad.Data.(type) {
	case []byte:
		a.DType, a.Data = Bool, x
	case typedU8:
		a.DType, a.Data = Uint8, x
	case typedU16:
		a.DType, a.Data = Uint16, x
	case typedU32:
		a.DType, a.Data = Uint32, x
	case typedU64:
		a.DType, a.Data = Uint64, x
	case typedI8:
		a.DType, a.Data = Int8, x
	case typedI16:
		a.DType, a.Data = Int16, x
	case typedI32:
		a.DType, a.Data = Int32, x
	case typedI64:
		a.DType, a.Data = Int64, x
	case typedF32:
		a.DType, a.Data = Float32, x
	case typedF64:
		a.DType, a.Data = Float64, x
	default:
		return Array{}, d.errAt(item, fmt.Errorf("%w: data must be an RFC 8746 typed array of a supported dtype, or a byte string for bool, not %s", ErrInvalidArray, goKind(x)))
	}
	if a.Data == nil {
		a.Data = []byte{}
	}
	if err := a.Validate(); err != nil {
		return Array{}, d.errAt(item, err)
	}
	return a, nil
}

// decAny decodes item dynamically. fxamacker decodes the whole item into any
// in one pass, tagged items of ours being captured as spans; fix then turns
// those into Go values. If fix meets something it cannot place (an unknown
// tag, a bad key...) the item is decoded again item by item to report the
// exact offset.
func (d *decoder) decAny(item []byte) (any, error) {
	var x any
	if err := dmDyn.Unmarshal(item, &x); err != nil {
		return d.decAnySlow(item)
	}
	y, ok, err := d.fix(x)
	if err != nil {
		return nil, err
	}
	if !ok {
		return d.decAnySlow(item)
	}
	return y, nil
}

// fix converts fxamacker's dynamic values into codec's. ok is false when x
// holds something codec does not accept, located by decAnySlow.
func (d *decoder) fix(x any) (y any, ok bool, err error) {
	switch x := x.(type) {
	case nil, bool, string, float64, int64, []byte:
		return x, true, nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true, nil
		}
		return x, true, nil
	case []any:
		for i := range x {
			y, ok, err := d.fix(x[i])
			if err != nil {
				return nil, false, withPath(err, indexSeg(i))
			}
			if !ok {
				return nil, false, nil
			}
			x[i] = y
		}
		return x, true, nil
	case map[any]any:
		allStrings := true
		for k := range x {
			switch k.(type) {
			case string:
			case int64, uint64, bool:
				allStrings = false
			default:
				return nil, false, nil
			}
		}
		if allStrings {
			m := make(map[string]any, len(x))
			for k, v := range x {
				y, ok, err := d.fix(v)
				if err != nil {
					return nil, false, withPath(err, keySeg(k))
				}
				if !ok {
					return nil, false, nil
				}
				m[k.(string)] = y
			}
			return m, true, nil
		}
		m := make(map[any]any, len(x))
		for k, v := range x {
			y, ok, err := d.fix(v)
			if err != nil {
				return nil, false, withPath(err, keySeg(k))
			}
			if !ok {
				return nil, false, nil
			}
			nk, _ := anyKey(k)
			m[nk] = y
		}
		return m, true, nil
	case spanObject:
		y, err := d.decObjectAny(x)
		return y, err == nil, err
	case spanNDArray:
		y, err := d.decNDArray(x)
		return y, err == nil, err
	case spanLink:
		y, err := d.decLink(x)
		return y, err == nil, err
	}
	return nil, false, nil
}

// decObjectAny decodes tag 27 into a value of the type registered under the
// name it carries.
func (d *decoder) decObjectAny(item []byte) (any, error) {
	var od objDec
	if err := dmTyped.Unmarshal(item, &od); err != nil {
		return nil, d.objectError(item, typeAny, err)
	}
	rt := lookupName(od.Name)
	if rt == nil {
		return nil, d.errAt(item, &regError{
			msg:      fmt.Sprintf("unknown type name %q: no type is registered under it on this node", od.Name),
			sentinel: ErrUnregistered,
		})
	}
	p, err := rt.planOf()
	if err != nil {
		return nil, d.fail(item, typeAny, err)
	}
	v := reflect.New(rt.t).Elem()
	if err := d.decBody(p, od.Body, v); err != nil {
		return nil, err
	}
	return v.Interface(), nil
}

// decAnySlow decodes item dynamically one CBOR item at a time; it is used to
// locate what decAny's fast pass rejected.
func (d *decoder) decAnySlow(item []byte) (any, error) {
	if err := d.enter(item); err != nil {
		return nil, err
	}
	defer func() { d.level-- }()
	switch item[0] >> 5 {
	case majorArray:
		var items []rawItem
		if err := dmTyped.Unmarshal(item, &items); err != nil {
			return nil, d.fail(item, typeAny, err)
		}
		out := make([]any, len(items))
		for i, it := range items {
			x, err := d.decAnySlow(it)
			if err != nil {
				return nil, withPath(err, indexSeg(i))
			}
			out[i] = x
		}
		return out, nil
	case majorMap:
		if err := badAnyKey(item); err != nil {
			return nil, d.fail(item, typeAny, err)
		}
		var m map[any]rawItem
		if err := dmTyped.Unmarshal(item, &m); err != nil {
			return nil, d.fail(item, typeAny, err)
		}
		entries := d.sortedEntries(reflect.ValueOf(m))
		out := make(map[any]any, len(entries))
		allStrings := true
		for _, e := range entries {
			k, err := anyKey(e.key.Interface())
			if err != nil {
				return nil, d.fail(item, typeAny, err)
			}
			if _, ok := k.(string); !ok {
				allStrings = false
			}
			x, err := d.decAnySlow(e.item)
			if err != nil {
				return nil, withPath(err, keySeg(k))
			}
			out[k] = x
		}
		if allStrings {
			sm := make(map[string]any, len(out))
			for k, v := range out {
				sm[k.(string)] = v
			}
			return sm, nil
		}
		return out, nil
	}
	if h, _ := readHead(item, 0); h.major == majorTag && h.arg != tagObject && h.arg != tagNDArray && h.arg != tagLink {
		return nil, d.errAt(item, fmt.Errorf("unsupported CBOR %s", describe(item)))
	}
	var x any
	if err := dmDyn.Unmarshal(item, &x); err != nil {
		return nil, d.fail(item, typeAny, err)
	}
	switch x := x.(type) {
	case spanObject:
		return d.decObjectAny(x)
	case spanNDArray:
		return d.decNDArray(x)
	case spanLink:
		return d.decLink(x)
	case *big.Int, big.Int:
		return nil, d.errAt(item, errors.New("integer out of range: below -2^63"))
	}
	if y, ok, err := d.fix(x); ok || err != nil {
		return y, err
	}
	if item[0]>>5 == majorTag {
		return nil, d.errAt(item, fmt.Errorf("unsupported CBOR %s", describe(item)))
	}
	return nil, d.errAt(item, fmt.Errorf("unsupported CBOR item: %s", goKind(x)))
}

// badAnyKey reports the first key of map item that cannot be a key of a Go
// map decoded dynamically (a byte string, array, map or tagged item), in
// wire terms. Scalars are left to anyKey.
func badAnyKey(item []byte) error {
	h, _ := readHead(item, 0)
	if h.major != majorMap {
		return nil
	}
	off := h.n
	for range h.arg {
		switch item[off] >> 5 {
		case majorBytes, majorArray, majorMap, majorTag:
			return fmt.Errorf("map key of type %s: keys must be strings, integers or bools", describe(item[off:]))
		}
		off = skipItem(item, skipItem(item, off))
	}
	return nil
}

// checkNDArray checks the layout of the content c of tag 40: [shape, data]
// with shape an array of at most MaxDims unsigned integers that fit an int,
// and data a supported RFC 8746 typed array around a byte string, or a byte
// string (bool). Errors match ErrInvalidArray and speak of the wire format.
func checkNDArray(c []byte) error {
	invalid := func(format string, args ...any) error {
		return &regError{msg: fmt.Sprintf(format, args...), sentinel: ErrInvalidArray}
	}
	if h, _ := readHead(c, 0); h.major != majorArray || h.arg != 2 {
		return invalid("tag 40 must hold an array of [shape, data], not %s", describeA(c))
	}
	shape := c[1:]
	hs, _ := readHead(shape, 0)
	if hs.major != majorArray {
		return invalid("array shape must be an array of dimensions, not %s", describeA(shape))
	}
	if hs.arg > MaxDims {
		return invalid("array shape has %d dimensions, at most %d allowed", hs.arg, MaxDims)
	}
	off := hs.n
	for i := range hs.arg {
		hd, _ := readHead(shape, off)
		switch {
		case hd.major == majorNeg && hd.arg < math.MaxUint64:
			return invalid("array shape dimension %d is negative (-%d)", i, hd.arg+1)
		case hd.major == majorNeg:
			return invalid("array shape dimension %d is negative (-18446744073709551616)", i)
		case hd.major != majorUint:
			return invalid("array shape dimension %d must be an unsigned integer, not %s", i, describeA(shape[off:]))
		case hd.arg > math.MaxInt:
			return invalid("array shape dimension %d is too large (%d)", i, hd.arg)
		}
		off += hd.n
	}
	data := shape[off:]
	hd, _ := readHead(data, 0)
	switch hd.major {
	case majorBytes:
		return nil
	case majorTag:
		if !isTypedArrayTag(hd.arg) {
			return invalid("array data tag %d is not a supported typed array", hd.arg)
		}
		if hb, _ := readHead(data, hd.n); hb.major != majorBytes {
			return invalid("array data tag %d must hold a byte string, not %s", hd.arg, describeA(data[hd.n:]))
		}
		return nil
	}
	return invalid("array data must be a typed array tag or a byte string, not %s", describeA(data))
}

// isTypedArrayTag reports whether n is the RFC 8746 tag of a supported dtype.
func isTypedArrayTag(n uint64) bool {
	for dt := Bool; dt <= Float64; dt++ {
		if typedWireType(dt) != nil && dt.tag() == n {
			return true
		}
	}
	return false
}
