package codec

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
)

// regType is one registered type.
type regType struct {
	name   string
	t      reflect.Type
	binary bool                 // travels as [name, bytes] via MarshalBinary/UnmarshalBinary
	fields []regField           // struct fields, for non-binary types
	plan   atomic.Pointer[plan] // planFor(t), once it succeeded
}

// planOf returns planFor(rt.t), cached in rt.
func (rt *regType) planOf() (*plan, error) {
	if p := rt.plan.Load(); p != nil {
		return p, nil
	}
	p, err := planFor(rt.t)
	if err == nil {
		rt.plan.Store(p)
	}
	return p, err
}

// regField is one encoded field of a registered struct.
type regField struct {
	name  string // name on the wire
	index []int  // reflect index path (embedded structs are flattened)
	t     reflect.Type
}

// registry is copy-on-write: readers load an immutable snapshot.
type registry struct {
	byName map[string]*regType
	byType map[reflect.Type]*regType
}

var (
	regMu  sync.Mutex
	regCur atomic.Pointer[registry]
)

func init() {
	regCur.Store(&registry{byName: map[string]*regType{}, byType: map[reflect.Type]*regType{}})
}

func lookupType(t reflect.Type) *regType { return regCur.Load().byType[t] }
func lookupName(n string) *regType       { return regCur.Load().byName[n] }

var (
	typeCid               = reflect.TypeFor[cid.Cid]()
	typeArray             = reflect.TypeFor[Array]()
	typeRaw               = reflect.TypeFor[Raw]()
	typeTuple             = reflect.TypeFor[Tuple]()
	typeLinker            = reflect.TypeFor[Linker]()
	typeLinkSetter        = reflect.TypeFor[LinkSetter]()
	typeBinaryMarshaler   = reflect.TypeFor[encoding.BinaryMarshaler]()
	typeBinaryUnmarshaler = reflect.TypeFor[encoding.BinaryUnmarshaler]()
)

// Register makes struct type T travel under name: values of T encode as CBOR
// tag 27 around [name, {field: value, ...}], and decoding that into any
// yields a T. The name, not the Go type name, is what travels, so every node
// must register T under the same name. A type implementing
// encoding.BinaryMarshaler (on T or *T) and encoding.BinaryUnmarshaler (on
// *T) may also be registered, struct or not; it travels as tag 27 around
// [name, bytes] using its own encoding.
//
// Fields are exported struct fields, named on the wire by their `codec:"x"`
// tag or else their Go name; `codec:"-"` leaves a field out. Fields of
// embedded (anonymous) structs without a tag are flattened into the outer
// struct, as encoding/json does; embedded pointers are refused.
//
// Register refuses types that cannot travel (funcs, chans, unsafe pointers,
// complex numbers, uintptr, maps with keys other than strings, integers or
// bools, or structs holding any of them at any depth), naming the offending
// field. Registering a name twice for different types, or a type under two
// names, is an error; registering the same pair again is a no-op.
func Register[T any](name string) error {
	return register(reflect.TypeFor[T](), name)
}

// MustRegister is Register for package initialisation: it panics on error.
func MustRegister[T any](name string) {
	if err := Register[T](name); err != nil {
		panic(err)
	}
}

// RegisteredName returns the name t was registered under.
func RegisteredName(t reflect.Type) (string, bool) {
	if rt := lookupType(t); rt != nil {
		return rt.name, true
	}
	return "", false
}

func register(t reflect.Type, name string) error {
	fail := func(sentinel error, format string, args ...any) error {
		return &regError{msg: "codec: cannot register " + t.String() + ": " + fmt.Sprintf(format, args...), sentinel: sentinel}
	}
	switch {
	case name == "":
		return fail(ErrUnregistered, "empty name")
	case len(name) > 255:
		return fail(ErrUnregistered, "name longer than 255 bytes")
	case !utf8.ValidString(name):
		return fail(ErrUnregistered, "name is not valid UTF-8")
	}
	switch t {
	case typeCid, typeArray, typeRaw, typeTuple:
		return fail(ErrUnregistered, "%s is built in and needs no registration", t)
	}
	rt := &regType{name: name, t: t}
	switch {
	case isBinary(t):
		rt.binary = true
	case implementsEither(t, typeBinaryMarshaler):
		return fail(ErrCannotTravel, "it implements encoding.BinaryMarshaler but *%s does not implement encoding.BinaryUnmarshaler", t)
	case t.Kind() == reflect.Struct:
		if err := checkTravel(t, "", map[reflect.Type]bool{}); err != nil {
			return fail(ErrCannotTravel, "%s", err.Error())
		}
		fields, err := structFields(t)
		if err != nil {
			return fail(ErrCannotTravel, "%s", err.Error())
		}
		rt.fields = fields
	default:
		return fail(ErrCannotTravel, "only struct types and types implementing encoding.BinaryMarshaler and BinaryUnmarshaler can be registered, not %s", t.Kind())
	}

	regMu.Lock()
	defer regMu.Unlock()
	cur := regCur.Load()
	if old := cur.byName[name]; old != nil {
		if old.t == t {
			return nil
		}
		return fail(ErrUnregistered, "name %q is already registered for %s", name, old.t)
	}
	if old := cur.byType[t]; old != nil {
		return fail(ErrUnregistered, "it is already registered as %q", old.name)
	}
	next := &registry{
		byName: make(map[string]*regType, len(cur.byName)+1),
		byType: make(map[reflect.Type]*regType, len(cur.byType)+1),
	}
	for k, v := range cur.byName {
		next.byName[k] = v
	}
	for k, v := range cur.byType {
		next.byType[k] = v
	}
	next.byName[name] = rt
	next.byType[t] = rt
	regCur.Store(next)
	return nil
}

// implementsEither reports whether t or *t implements iface.
func implementsEither(t, iface reflect.Type) bool {
	return t.Implements(iface) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(iface))
}

// isBinary reports whether t carries its own binary encoding.
func isBinary(t reflect.Type) bool {
	return t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		implementsEither(t, typeBinaryMarshaler) && reflect.PointerTo(t).Implements(typeBinaryUnmarshaler)
}

// isLink reports whether t travels as a CID link.
func isLink(t reflect.Type) bool {
	return t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		(implementsEither(t, typeLinker) || reflect.PointerTo(t).Implements(typeLinkSetter))
}

// ownEncoding reports whether t's encoding is decided by codec itself or by
// methods of t rather than by its fields.
func ownEncoding(t reflect.Type) bool {
	return t == typeCid || t == typeArray || t == typeRaw || isLink(t) || isBinary(t)
}

// checkTravel walks t's static structure (through pointers, slices, arrays,
// maps and struct fields, registered or not) for something that can never
// travel. path is the Go field path so far.
func checkTravel(t reflect.Type, path string, seen map[reflect.Type]bool) error {
	u := untravelable(t, path, seen)
	if u == nil {
		return nil
	}
	where := "field " + strings.TrimPrefix(u.path, ".")
	if u.path == "" {
		where = "it"
	}
	extra := ""
	if u.key {
		extra = "map key "
	}
	return fmt.Errorf("%s has %stype %s which cannot travel", where, extra, u.t)
}

// badType is a type that can never travel, found inside another: where
// (a Go path such as ".Opts.Callback" or ".Chans[*]") and whether it is a
// map's key type.
type badType struct {
	t    reflect.Type
	path string
	key  bool
}

// untravelable returns the first part of t's static structure that can
// never travel, or nil. Struct fields left out (`codec:"-"`, unexported)
// are skipped, as Register skips them.
func untravelable(t reflect.Type, path string, seen map[reflect.Type]bool) *badType {
	switch t.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128, reflect.Uintptr:
		return &badType{t: t, path: path}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		if t.Kind() != reflect.Pointer {
			path += "[*]"
		}
		return untravelable(t.Elem(), path, seen)
	case reflect.Map:
		if !validKeyKind(t.Key()) {
			return &badType{t: t.Key(), path: path, key: true}
		}
		return untravelable(t.Elem(), path+"[*]", seen)
	case reflect.Struct:
		if seen[t] || ownEncoding(t) {
			return nil
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			if name, _ := parseTag(f); name == "-" {
				continue
			}
			if !f.IsExported() && (f.Type.Kind() != reflect.Struct) {
				continue
			}
			if u := untravelable(f.Type, path+"."+f.Name, seen); u != nil {
				return u
			}
		}
	}
	return nil
}

// validKeyKind reports whether map keys of type t can travel.
func validKeyKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return t.NumMethod() == 0 // keys decode as strings, int64s and bools
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return !ownEncoding(t)
	}
	return false
}

// parseTag returns the wire name from a `codec:"name,..."` tag ("" if none).
func parseTag(f reflect.StructField) (name string, tagged bool) {
	tag, ok := f.Tag.Lookup("codec")
	if !ok {
		return "", false
	}
	name, _, _ = strings.Cut(tag, ",")
	return name, name != ""
}

// structFields lists the encoded fields of struct t, flattening untagged
// embedded structs. Names must be unique.
func structFields(t reflect.Type) ([]regField, error) {
	var out []regField
	byName := map[string]string{}
	var walk func(t reflect.Type, index []int, goPath string) error
	walk = func(t reflect.Type, index []int, goPath string) error {
		for i := range t.NumField() {
			f := t.Field(i)
			name, tagged := parseTag(f)
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			gp := goPath + f.Name
			if f.Anonymous && !tagged {
				ft := f.Type
				if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
					return fmt.Errorf("embedded pointer field %s is not supported: use a named field", gp)
				}
				if ft.Kind() == reflect.Struct && !ownEncoding(ft) {
					if err := walk(ft, idx, gp+"."); err != nil {
						return err
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if strings.ContainsAny(name, "\"\\") || !utf8.ValidString(name) {
				return fmt.Errorf("field %s has an invalid codec name %q", gp, name)
			}
			if prev, dup := byName[name]; dup {
				return fmt.Errorf("fields %s and %s both encode as %q", prev, gp, name)
			}
			byName[name] = gp
			out = append(out, regField{name: name, index: idx, t: f.Type})
		}
		return nil
	}
	if err := walk(t, nil, ""); err != nil {
		return nil, err
	}
	return out, nil
}
