package codec

import (
	"reflect"
	"strconv"
	"sync"

	"github.com/ipfs/go-cid"
)

// Linker is implemented by types that travel as a CID link (CBOR tag 42), such
// as object references. A Linker whose Link returns cid.Undef encodes as null.
type Linker interface{ Link() cid.Cid }

// LinkSetter is implemented by pointers to types that can be decoded from a
// CID link. Decoding null leaves the value at its zero value without calling
// SetLink.
type LinkSetter interface{ SetLink(cid.Cid) error }

// Tuple is a fixed-length sequence of values of any supported types. It
// encodes as a CBOR array; decoding into a Tuple yields the dynamic values
// (as decoding into any would).
type Tuple []any

// Raw is an already-encoded value, embedded verbatim when encoding (like
// json.RawMessage). It must hold exactly one canonical CBOR item, as Marshal
// produces; an empty Raw encodes as null. Decoding into a Raw captures a copy
// of the item's bytes as received.
type Raw []byte

// planKind is the structural kind of a Go type as codec sees it.
type planKind uint8

const (
	kScalar    planKind = iota // bool, integers, floats, string
	kBytes                     // slices of uint8-kind elements: a byte string
	kByteArray                 // arrays of uint8-kind elements: a byte string of fixed length
	kSlice
	kGoArray
	kMap
	kPtr
	kIface
	kStruct // registered struct
	kBinary // registered type with its own binary encoding
	kCid
	kLink // Linker / LinkSetter
	kNDArray
	kRaw
)

// plan is everything codec needs to encode and decode one Go type, computed
// once and cached.
type plan struct {
	t    reflect.Type
	kind planKind
	// native is true when fxamacker, given a value of t, encodes exactly the
	// bytes codec wants and decodes exactly as codec would; such values
	// skip codec's own walking.
	native bool
	// flat is true when decoding allocates at most a fixed amount set by
	// t plus about the input's size: t holds no slices (other than byte
	// strings), maps or interfaces, and is not recursive. Decoding into a
	// flat type needs no allocation budget walk.
	flat bool
	// flatCost bounds, for a flat type, what decoding one item of it
	// allocates besides about twice the item's size (see budget.go).
	flatCost uint64
	elem     *plan // slice, array, pointer element; map value
	key      *plan // map key
	reg      *regType
	fields   []fieldPlan
	byName   map[string]int
	wEnc     reflect.Type // struct of the encoded fields (native ones typed, others any)
	wDec     reflect.Type // struct of the decoded fields (native ones typed, others rawItem)
	mapRaw   reflect.Type // map[K]rawItem, for splitting maps
	base     reflect.Type // kScalar: the predeclared type of t's kind
	n        int          // kGoArray, kByteArray: length
}

type fieldPlan struct {
	name   string
	index  []int
	p      *plan
	native bool // the field is typed as itself in wEnc/wDec
}

var plans sync.Map // reflect.Type -> *plan

// planFor returns the plan of t, building and caching it (and the plans it
// needs) on first use. Types that fail are not cached, so registering a
// missing type later fixes them.
func planFor(t reflect.Type) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		return p.(*plan), nil
	}
	b := planBuilder{building: map[reflect.Type]*plan{}}
	p, err := b.build(t)
	if err != nil {
		return nil, err
	}
	for _, q := range b.done {
		plans.LoadOrStore(q.t, q)
	}
	return p, nil
}

// CheckType reports whether values of static type t can travel: nil if so,
// else the *TypeError Marshal would return (ErrUnregistered for a struct
// that is not registered, ErrCannotTravel for funcs, chans and the like).
// Interface types are accepted; their dynamic values are checked when
// encoded.
func CheckType(t reflect.Type) error {
	if t == nil {
		return &TypeError{Err: ErrCannotTravel}
	}
	_, err := planFor(t)
	return err
}

type planBuilder struct {
	building map[reflect.Type]*plan
	done     []*plan
}

// hookMethods are methods through which fxamacker would let a type encode or
// decode itself; such types are never native.
var hookMethods = []string{
	"MarshalCBOR", "UnmarshalCBOR", "MarshalBinary", "UnmarshalBinary",
	"MarshalText", "UnmarshalText", "MarshalJSON", "UnmarshalJSON",
}

func hasHooks(t reflect.Type) bool {
	if t.NumMethod() == 0 && (t.Kind() == reflect.Pointer || reflect.PointerTo(t).NumMethod() == 0) {
		return false
	}
	pt := t
	if t.Kind() != reflect.Pointer {
		pt = reflect.PointerTo(t)
	}
	for _, m := range hookMethods {
		if _, ok := pt.MethodByName(m); ok {
			return true
		}
	}
	return false
}

var scalarBase = map[reflect.Kind]reflect.Type{
	reflect.Bool:    reflect.TypeFor[bool](),
	reflect.Int:     reflect.TypeFor[int](),
	reflect.Int8:    reflect.TypeFor[int8](),
	reflect.Int16:   reflect.TypeFor[int16](),
	reflect.Int32:   reflect.TypeFor[int32](),
	reflect.Int64:   reflect.TypeFor[int64](),
	reflect.Uint:    reflect.TypeFor[uint](),
	reflect.Uint8:   reflect.TypeFor[uint8](),
	reflect.Uint16:  reflect.TypeFor[uint16](),
	reflect.Uint32:  reflect.TypeFor[uint32](),
	reflect.Uint64:  reflect.TypeFor[uint64](),
	reflect.Float32: reflect.TypeFor[float32](),
	reflect.Float64: reflect.TypeFor[float64](),
	reflect.String:  reflect.TypeFor[string](),
}

func (b *planBuilder) build(t reflect.Type) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		return p.(*plan), nil
	}
	if p, ok := b.building[t]; ok {
		return p, nil // recursive type: complete later, never native
	}
	p := &plan{t: t}
	b.building[t] = p
	if err := b.fill(p); err != nil {
		return nil, err
	}
	p.flat = b.isFlat(p)
	if p.flat {
		p.flatCost = flatCost(p)
	}
	b.done = append(b.done, p)
	return p, nil
}

// isFlat computes p.flat once p's children are built. A plan still being
// built (a recursive type) is not flat, as p.flat is false until then.
func (b *planBuilder) isFlat(p *plan) bool {
	switch p.kind {
	case kScalar, kBytes, kByteArray, kCid, kLink, kNDArray, kRaw, kBinary:
		return true
	case kGoArray, kPtr:
		return p.elem.flat
	case kStruct:
		for _, f := range p.fields {
			if !f.p.flat {
				return false
			}
		}
		return true
	}
	return false
}

func (b *planBuilder) fill(p *plan) error {
	t := p.t
	switch {
	case t == typeCid:
		p.kind = kCid
		return nil
	case t == typeArray:
		p.kind = kNDArray
		return nil
	case t == typeRaw:
		p.kind = kRaw
		return nil
	case isLink(t):
		p.kind = kLink
		return nil
	}
	if rt := lookupType(t); rt != nil {
		p.reg = rt
		if rt.binary {
			p.kind = kBinary
			return nil
		}
		p.kind = kStruct
		return b.fillStruct(p)
	}
	if k := t.Kind(); k != reflect.Pointer && k != reflect.Interface && implementsEither(t, typeBinaryMarshaler) {
		return &TypeError{Type: t, Err: ErrUnregistered}
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		p.kind = kScalar
		p.base = scalarBase[t.Kind()]
		p.native = !hasHooks(t)
		return nil
	case reflect.Slice, reflect.Array:
		elem, err := b.build(t.Elem())
		if err != nil {
			return withPath(err, "[*]")
		}
		p.elem = elem
		if t.Kind() == reflect.Array {
			p.n = t.Len()
			p.kind = kGoArray
			if t.Elem().Kind() == reflect.Uint8 && elem.kind == kScalar {
				p.kind = kByteArray
			}
			return nil
		}
		p.kind = kSlice
		if t.Elem().Kind() == reflect.Uint8 && elem.kind == kScalar {
			// Never native: byte strings go through codec so that large
			// ones are spliced into the output instead of copied twice.
			p.kind = kBytes
			return nil
		}
		p.native = elem.native && !hasHooks(t)
		return nil
	case reflect.Map:
		if !validKeyKind(t.Key()) {
			return &TypeError{Type: t.Key(), Path: "[key]", Err: ErrCannotTravel}
		}
		key, err := b.build(t.Key())
		if err != nil {
			return withPath(err, "[key]")
		}
		if key.kind != kScalar && key.kind != kIface {
			return &TypeError{Type: t.Key(), Path: "[key]", Err: ErrCannotTravel}
		}
		elem, err := b.build(t.Elem())
		if err != nil {
			return withPath(err, "[*]")
		}
		p.kind = kMap
		p.key, p.elem = key, elem
		p.mapRaw = reflect.MapOf(t.Key(), typeRawItem)
		p.native = key.native && elem.native && !hasHooks(t)
		return nil
	case reflect.Pointer:
		elem, err := b.build(t.Elem())
		if err != nil {
			return err
		}
		p.kind = kPtr
		p.elem = elem
		p.native = elem.native
		return nil
	case reflect.Interface:
		p.kind = kIface
		return nil
	case reflect.Struct:
		// A struct that could never be registered says why first, at
		// the field at fault, rather than asking to be registered.
		if u := untravelable(t, "", map[reflect.Type]bool{}); u != nil {
			if u.key {
				u.path += "[key]"
			}
			return &TypeError{Type: u.t, Path: u.path, Err: ErrCannotTravel, field: true}
		}
		return &TypeError{Type: t, Err: ErrUnregistered}
	}
	return &TypeError{Type: t, Err: ErrCannotTravel}
}

func (b *planBuilder) fillStruct(p *plan) error {
	rt := p.reg
	p.fields = make([]fieldPlan, len(rt.fields))
	p.byName = make(map[string]int, len(rt.fields))
	encFields := make([]reflect.StructField, len(rt.fields))
	decFields := make([]reflect.StructField, len(rt.fields))
	for i, f := range rt.fields {
		fp, err := b.build(f.t)
		if err != nil {
			return withPath(err, "."+f.name)
		}
		native := fp.native
		p.fields[i] = fieldPlan{name: f.name, index: f.index, p: fp, native: native}
		p.byName[f.name] = i
		tag := reflect.StructTag(`cbor:` + strconv.Quote(f.name))
		fname := "F" + strconv.Itoa(i)
		encFields[i] = reflect.StructField{Name: fname, Type: typeAny, Tag: tag}
		decFields[i] = reflect.StructField{Name: fname, Type: typeRawItem, Tag: tag}
		if native {
			encFields[i].Type = f.t
			decFields[i].Type = f.t
		}
	}
	p.wEnc = reflect.StructOf(encFields)
	p.wDec = reflect.StructOf(decFields)
	return nil
}
