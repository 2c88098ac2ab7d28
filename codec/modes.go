package codec

import (
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits. They apply to every input given to Unmarshal and Links and
// Marshal refuses to produce values that exceed them, so whatever one node
// encodes another can decode.
const (
	// MaxDepth is the deepest nesting of CBOR arrays and maps (and chained
	// tags) accepted. A registered struct costs two levels (its [name,
	// fields] array and its fields map), an Array two.
	MaxDepth = 64
	// MaxListLen is the largest number of elements of one CBOR array. Arrays
	// of numbers should travel as Array, whose payload is one byte string
	// and is limited only by the input size.
	MaxListLen = 1 << 22
	// MaxMapLen is the largest number of key/value pairs of one CBOR map.
	MaxMapLen = 1 << 20
	// MaxDims is the largest number of dimensions of an Array (as numpy).
	MaxDims = 64

	// DecodeAllocFloor and DecodeAllocFactor bound the memory one decode
	// may allocate: max(DecodeAllocFloor, DecodeAllocFactor x input
	// length) bytes. Unmarshal estimates the Go memory the input will
	// create (slices from their element size, maps from their slot size,
	// registered values from their size, strings and payloads from their
	// length) before allocating any of it, and refuses inputs over the
	// limit with an error matching ErrAllocLimit. Payloads (byte strings,
	// Array data) cost about their size, lists of numbers and strings and
	// lists of records up to ~30x, maps of tiny entries decoded into any
	// up to ~55x, so legitimate values decode at any size; the floor lets
	// small inputs decode into types with large elements. The estimate
	// covers successful decodes; a decode that fails part way may
	// allocate up to about twice as much before it gives up.
	DecodeAllocFloor  = 64 << 20
	DecodeAllocFactor = 64
)

// CBOR tag numbers used on the wire.
const (
	tagObject      = 27 // object with type name: [name, fields-map or bytes]
	tagNDArray     = 40 // RFC 8746 multi-dimensional array: [shape, data]
	tagLink        = 42 // CID link: byte string 0x00 + binary CID
	tagPlaceholder = 0x64726179

	tagUint8   = 64
	tagUint16  = 69
	tagUint32  = 70
	tagUint64  = 71
	tagInt8    = 72
	tagInt16   = 77
	tagInt32   = 78
	tagInt64   = 79
	tagFloat32 = 85
	tagFloat64 = 86
)

// Wire types: small Go shapes that fxamacker encodes and decodes for us, with
// tag numbers attached through TagSets.
type (
	// objEnc is a registered struct or binary type on its way out.
	objEnc struct {
		_    struct{} `cbor:",toarray"`
		Name string
		Body any
	}
	// objDec is tag 27 on its way in; Body is left undecoded.
	objDec struct {
		_    struct{} `cbor:",toarray"`
		Name string
		Body rawItem
	}
	// arrEnc is an Array on its way out: Data is a cbor.Tag around the
	// payload (or around a placeholder), or the payload itself for bool.
	arrEnc struct {
		_     struct{} `cbor:",toarray"`
		Shape []int
		Data  any
	}
	// arrDec is an Array on its way in: Data decodes into one of the typed
	// byte types below (or []byte for bool).
	arrDec struct {
		_     struct{} `cbor:",toarray"`
		Shape []uint64
		Data  any
	}
	// linkWire is the content of tag 42.
	linkWire []byte
	// placeholder stands for a large byte string while fxamacker encodes
	// the rest of the value; splice replaces it with the payload.
	placeholder uint64

	typedU8  []byte
	typedU16 []byte
	typedU32 []byte
	typedU64 []byte
	typedI8  []byte
	typedI16 []byte
	typedI32 []byte
	typedI64 []byte
	typedF32 []byte
	typedF64 []byte
)

// rawItem captures the bytes of one CBOR item without copying. fxamacker hands
// UnmarshalCBOR a sub-slice of the input, so the capture aliases the caller's
// buffer and is only used while decoding it.
type rawItem []byte

// UnmarshalCBOR implements cbor.Unmarshaler.
func (r *rawItem) UnmarshalCBOR(b []byte) error { *r = b; return nil }

// span types capture tagged items met while decoding into any; see decAny.
type (
	spanObject  []byte
	spanNDArray []byte
	spanLink    []byte
)

// UnmarshalCBOR implements cbor.Unmarshaler.
func (r *spanObject) UnmarshalCBOR(b []byte) error { *r = b; return nil }

// UnmarshalCBOR implements cbor.Unmarshaler.
func (r *spanNDArray) UnmarshalCBOR(b []byte) error { *r = b; return nil }

// UnmarshalCBOR implements cbor.Unmarshaler.
func (r *spanLink) UnmarshalCBOR(b []byte) error { *r = b; return nil }

var (
	// em encodes: core deterministic (sorted keys, shortest ints and
	// floats, definite lengths) plus our wire tags.
	em cbor.EncMode
	// dmTyped decodes wire types and splits containers into rawItems.
	dmTyped cbor.DecMode
	// dmNative decodes plain Go values (no tags can be meant there).
	dmNative cbor.DecMode
	// dmDyn decodes into any; tagged items become spans.
	dmDyn cbor.DecMode
)

var (
	typeRawItem = reflect.TypeFor[rawItem]()
	typeAny     = reflect.TypeFor[any]()
)

func init() {
	both := cbor.TagOptions{EncTag: cbor.EncTagRequired, DecTag: cbor.DecTagRequired}

	encTags := cbor.NewTagSet()
	mustAdd(encTags, both, reflect.TypeFor[objEnc](), tagObject)
	mustAdd(encTags, both, reflect.TypeFor[arrEnc](), tagNDArray)
	mustAdd(encTags, both, reflect.TypeFor[linkWire](), tagLink)
	mustAdd(encTags, both, reflect.TypeFor[placeholder](), tagPlaceholder)
	encOpts := cbor.CoreDetEncOptions()
	encOpts.BinaryMarshaler = cbor.BinaryMarshalerNone
	var err error
	em, err = encOpts.EncModeWithTags(encTags)
	if err != nil {
		panic(fmt.Sprintf("codec: building encoder: %v", err))
	}

	typedTags := cbor.NewTagSet()
	mustAdd(typedTags, both, reflect.TypeFor[objDec](), tagObject)
	mustAdd(typedTags, both, reflect.TypeFor[arrDec](), tagNDArray)
	mustAdd(typedTags, both, reflect.TypeFor[linkWire](), tagLink)
	for dt := Bool; dt <= Float64; dt++ {
		if wt := typedWireType(dt); wt != nil {
			mustAdd(typedTags, both, wt, dt.tag())
		}
	}

	dynTags := cbor.NewTagSet()
	mustAdd(dynTags, both, reflect.TypeFor[spanObject](), tagObject)
	mustAdd(dynTags, both, reflect.TypeFor[spanNDArray](), tagNDArray)
	mustAdd(dynTags, both, reflect.TypeFor[spanLink](), tagLink)

	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   MaxDepth,
		MaxArrayElements:  MaxListLen,
		MaxMapPairs:       MaxMapLen,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsAllowed,
		IntDec:            cbor.IntDecConvertNone,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		BinaryUnmarshaler: cbor.BinaryUnmarshalerNone,
		TextUnmarshaler:   cbor.TextUnmarshalerNone,
		BignumTag:         cbor.BignumTagForbidden,
	}
	if dmTyped, err = opts.DecModeWithTags(typedTags); err != nil {
		panic(fmt.Sprintf("codec: building decoder: %v", err))
	}
	if dmDyn, err = opts.DecModeWithTags(dynTags); err != nil {
		panic(fmt.Sprintf("codec: building decoder: %v", err))
	}
	nat := opts
	nat.TagsMd = cbor.TagsForbidden
	if dmNative, err = nat.DecMode(); err != nil {
		panic(fmt.Sprintf("codec: building decoder: %v", err))
	}
}

func mustAdd(ts cbor.TagSet, opts cbor.TagOptions, t reflect.Type, num uint64) {
	if err := ts.Add(opts, t, num); err != nil {
		panic(fmt.Sprintf("codec: tag %d: %v", num, err))
	}
}
