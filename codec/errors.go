package codec

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
)

// Sentinel errors. Use errors.Is to test for them; the concrete errors carry
// details (*DecodeError, *TypeError, *EncodeError, *MismatchError).
var (
	// ErrDecode is matched by every error caused by the bytes given to
	// Unmarshal or Links (malformed, truncated, over a limit, or not
	// decodable into the target). The concrete error is a *DecodeError.
	ErrDecode = errors.New("codec: cannot decode")

	// ErrAllocLimit is matched (with ErrDecode) when decoding an input
	// would allocate more memory than its size allows: more than
	// DecodeAllocFactor times its length, and more than DecodeAllocFloor.
	ErrAllocLimit = errors.New("codec: decode allocation limit exceeded")

	// ErrMismatch is matched by the *MismatchError Verify returns when data
	// does not hash to the expected CID.
	ErrMismatch = errors.New("codec: CID mismatch")

	// ErrUnregistered is matched when a struct type (or a type with its own
	// binary encoding) is used without Register, or when a decoded type name
	// is not registered on this node.
	ErrUnregistered = errors.New("codec: unregistered type")

	// ErrCannotTravel is matched when a type can never be encoded: funcs,
	// chans, unsafe pointers, complex numbers, uintptr, or structs holding
	// one of them.
	ErrCannotTravel = errors.New("codec: type cannot travel")

	// ErrTooDeep is matched (through an *EncodeError) when Marshal is
	// given a value nested deeper than MaxDepth levels, which no peer
	// would decode, or a cyclic one.
	ErrTooDeep = errors.New("codec: value nested too deeply")

	// ErrInvalidArray is matched when an Array breaks its invariants (unknown
	// dtype, negative or overflowing shape, data length not matching the
	// shape, bool bytes other than 0 and 1).
	ErrInvalidArray = errors.New("codec: invalid array")
)

// DecodeError reports why bytes could not be decoded and where.
type DecodeError struct {
	// Offset is the byte offset in the input of the item at fault.
	Offset int
	// Path locates the item inside the value, e.g. "Points[3].X" or `["k"]`;
	// empty for the top-level item.
	Path string
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("codec: decode at offset ")
	b.WriteString(strconv.Itoa(e.Offset))
	if p := renderPath(e.Path); p != "" {
		b.WriteString(" (")
		b.WriteString(p)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(causeText(e.Err))
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDecode) true for every *DecodeError.
func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

// TypeError reports a Go type that cannot be encoded or decoded: it is not
// registered (Err is ErrUnregistered) or it can never travel (Err is
// ErrCannotTravel).
type TypeError struct {
	// Type is the offending Go type.
	Type reflect.Type
	// Path locates the type inside the value or type being processed, e.g.
	// "Points[*]" (static element of a list) or "[2].Next"; empty at the top.
	Path string
	// Err is ErrUnregistered or ErrCannotTravel.
	Err error
	// field: the type is a struct field's (or inside one), which a
	// `codec:"-"` tag can leave out.
	field bool
}

// Error implements error.
func (e *TypeError) Error() string {
	var b strings.Builder
	name := "<nil>"
	if e.Type != nil {
		name = e.Type.String()
	}
	switch e.Err {
	case ErrUnregistered:
		b.WriteString("codec: unregistered type ")
		b.WriteString(name)
	case ErrCannotTravel:
		b.WriteString("codec: type ")
		b.WriteString(name)
		b.WriteString(" cannot travel")
	default:
		b.WriteString("codec: type ")
		b.WriteString(name)
	}
	if p := renderPath(e.Path); p != "" {
		b.WriteString(" at ")
		b.WriteString(p)
	}
	switch {
	case e.Err == ErrUnregistered && e.Type != nil:
		b.WriteString(": register it with codec.Register[")
		b.WriteString(name)
		b.WriteString("](")
		b.WriteString(strconv.Quote(suggestedName(e.Type)))
		b.WriteString(")")
	case e.Err == ErrCannotTravel && e.field:
		b.WriteString(": leave the field out with the tag `codec:\"-\"`, or change its type")
	case e.Err != ErrUnregistered && e.Err != ErrCannotTravel && e.Err != nil:
		b.WriteString(": ")
		b.WriteString(causeText(e.Err))
	}
	return b.String()
}

// Unwrap returns ErrUnregistered or ErrCannotTravel.
func (e *TypeError) Unwrap() error { return e.Err }

// EncodeError reports a value that Marshal cannot encode although its type is
// fine, e.g. an invalid Array, a non-canonical Raw, a value nested too
// deeply, or an error returned by a type's MarshalBinary or Link method.
type EncodeError struct {
	// Path locates the value, e.g. "Weights" or "[1]"; empty at the top.
	Path string
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *EncodeError) Error() string {
	var b strings.Builder
	b.WriteString("codec: encode")
	if p := renderPath(e.Path); p != "" {
		b.WriteString(" at ")
		b.WriteString(p)
	}
	b.WriteString(": ")
	b.WriteString(causeText(e.Err))
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *EncodeError) Unwrap() error { return e.Err }

// MismatchError is returned by Verify when data does not hash to the expected
// CID. errors.Is(err, ErrMismatch) is true for it.
type MismatchError struct {
	Want cid.Cid // the CID the caller expected
	Got  cid.Cid // the CID of the data, computed with Want's prefix
}

// Error implements error.
func (e *MismatchError) Error() string {
	return "codec: CID mismatch: want " + e.Want.String() + ", got " + e.Got.String()
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// regError is a registration error with a precise message that still matches
// a sentinel with errors.Is.
type regError struct {
	msg      string
	sentinel error
}

func (e *regError) Error() string { return e.msg }
func (e *regError) Unwrap() error { return e.sentinel }

// causeText renders a cause without the redundant "codec: " or "cbor: "
// prefix, so wrapped messages read as one sentence.
func causeText(err error) string {
	if err == nil {
		return "unknown error"
	}
	s := err.Error()
	for _, p := range []string{"codec: ", "cbor: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// renderPath drops the leading dot of a path built from ".Field" segments.
func renderPath(p string) string { return strings.TrimPrefix(p, ".") }

// suggestedName is the registration name proposed in error messages: the
// type's name without its package.
func suggestedName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer && t.Name() == "" {
		t = t.Elem()
	}
	if n := t.Name(); n != "" {
		return n
	}
	return t.String()
}

// errTooDeep is the cause of an *EncodeError for a value nested too deeply.
var errTooDeep = fmt.Errorf("%w: deeper than %d levels of lists and maps, the limit (codec.MaxDepth); is it cyclic?", ErrTooDeep, MaxDepth)

// withPath prepends a path segment to the location carried by err, when it
// carries one. It is used while unwinding so paths cost nothing on success.
// A value nested too deeply gets no path: it would be as deep as the value.
func withPath(err error, seg string) error {
	switch e := err.(type) {
	case *DecodeError:
		e.Path = seg + e.Path
	case *TypeError:
		e.Path = seg + e.Path
	case *EncodeError:
		if e.Err != errTooDeep {
			e.Path = seg + e.Path
		}
	}
	return err
}

// indexSeg is the path segment of list element i.
func indexSeg(i int) string { return "[" + strconv.Itoa(i) + "]" }

// keySeg is the path segment of a map entry.
func keySeg(k any) string {
	switch k := k.(type) {
	case string:
		return "[" + strconv.Quote(k) + "]"
	case int64:
		return "[" + strconv.FormatInt(k, 10) + "]"
	case uint64:
		return "[" + strconv.FormatUint(k, 10) + "]"
	case bool:
		return "[" + strconv.FormatBool(k) + "]"
	}
	v := reflect.ValueOf(k)
	switch v.Kind() {
	case reflect.String:
		return "[" + strconv.Quote(v.String()) + "]"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "[" + strconv.FormatInt(v.Int(), 10) + "]"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "[" + strconv.FormatUint(v.Uint(), 10) + "]"
	case reflect.Bool:
		return "[" + strconv.FormatBool(v.Bool()) + "]"
	}
	return "[?]"
}

// recoverPanic turns a panic below an exported entry point (a bug, or a
// panicking MarshalBinary, Link or SetLink method) into an error, so no
// panic escapes the package.
func recoverPanic(err *error, op string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("codec: %s: panic: %v", op, r)
	}
}
