package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unsafe"
)

// DType is the element type of an Array. The zero DType is invalid.
type DType uint8

// The element types an Array can hold. Their String forms are numpy's names.
const (
	Bool DType = iota + 1
	Int8
	Int16
	Int32
	Int64
	Uint8
	Uint16
	Uint32
	Uint64
	Float32
	Float64
)

var dtypeNames = [...]string{
	Bool:    "bool",
	Int8:    "int8",
	Int16:   "int16",
	Int32:   "int32",
	Int64:   "int64",
	Uint8:   "uint8",
	Uint16:  "uint16",
	Uint32:  "uint32",
	Uint64:  "uint64",
	Float32: "float32",
	Float64: "float64",
}

var dtypeSizes = [...]int{
	Bool: 1, Int8: 1, Int16: 2, Int32: 4, Int64: 8,
	Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8, Float32: 4, Float64: 8,
}

// RFC 8746 typed-array tags (little-endian variants). Bool has none: its
// payload travels as an untagged byte string of 0 and 1 bytes.
var dtypeTags = [...]uint64{
	Int8: tagInt8, Int16: tagInt16, Int32: tagInt32, Int64: tagInt64,
	Uint8: tagUint8, Uint16: tagUint16, Uint32: tagUint32, Uint64: tagUint64,
	Float32: tagFloat32, Float64: tagFloat64,
}

// Valid reports whether d is one of the defined element types.
func (d DType) Valid() bool { return d >= Bool && d <= Float64 }

// String returns numpy's name for d ("float64", "int32", "bool", ...).
func (d DType) String() string {
	if d.Valid() {
		return dtypeNames[d]
	}
	return "DType(" + strconv.Itoa(int(d)) + ")"
}

// Size returns the number of bytes of one element, or 0 for an invalid d.
func (d DType) Size() int {
	if d.Valid() {
		return dtypeSizes[d]
	}
	return 0
}

func (d DType) tag() uint64 { return dtypeTags[d] }

// ParseDType returns the DType named s, using numpy's names ("float64",
// "int32", "uint8", "bool", ...).
func ParseDType(s string) (DType, error) {
	for d := Bool; d <= Float64; d++ {
		if dtypeNames[d] == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("codec: unknown dtype %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (d DType) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("%w: unknown dtype %d", ErrInvalidArray, d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// typedWireType returns the wire type fxamacker decodes d's typed array into.
func typedWireType(d DType) reflect.Type {
	switch d {
	case Uint8:
		return reflect.TypeFor[typedU8]()
	case Uint16:
		return reflect.TypeFor[typedU16]()
	case Uint32:
		return reflect.TypeFor[typedU32]()
	case Uint64:
		return reflect.TypeFor[typedU64]()
	case Int8:
		return reflect.TypeFor[typedI8]()
	case Int16:
		return reflect.TypeFor[typedI16]()
	case Int32:
		return reflect.TypeFor[typedI32]()
	case Int64:
		return reflect.TypeFor[typedI64]()
	case Float32:
		return reflect.TypeFor[typedF32]()
	case Float64:
		return reflect.TypeFor[typedF64]()
	}
	return nil
}

// Array is an n-dimensional array: the numpy ndarray of dray. Data holds the
// elements in row-major (C) order, little-endian, contiguous; Bool elements
// are one byte each, 0 or 1. A zero Array (no dtype, shape or data) encodes
// as null; any other Array must be valid (see Validate) to be encoded.
//
// On the wire an Array is RFC 8746 tag 40 around [shape, typed array], the
// typed array being the RFC 8746 tag of the dtype around one byte string
// (see the package documentation).
type Array struct {
	DType DType
	Shape []int
	Data  []byte
}

// Number is the set of Go element types NewArray and Elems convert from and
// to. int and uint map to Int64/Uint64 (Int32/Uint32 on 32-bit platforms).
// Bool arrays use NewBoolArray and Bools.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// littleEndian is true on hosts whose memory order matches the wire order,
// where element conversion is a plain memory copy. A variable so tests can
// exercise the portable path.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func dtypeOf[T Number]() DType {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Int8:
		return Int8
	case reflect.Int16:
		return Int16
	case reflect.Int32:
		return Int32
	case reflect.Int64:
		return Int64
	case reflect.Int:
		if strconv.IntSize == 32 {
			return Int32
		}
		return Int64
	case reflect.Uint8:
		return Uint8
	case reflect.Uint16:
		return Uint16
	case reflect.Uint32:
		return Uint32
	case reflect.Uint64:
		return Uint64
	case reflect.Uint:
		if strconv.IntSize == 32 {
			return Uint32
		}
		return Uint64
	case reflect.Float32:
		return Float32
	case reflect.Float64:
		return Float64
	}
	return 0
}

// shapeLen validates shape and returns its number of elements.
func shapeLen(shape []int) (int, error) {
	if len(shape) > MaxDims {
		return 0, fmt.Errorf("%w: %d dimensions, at most %d allowed", ErrInvalidArray, len(shape), MaxDims)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: negative dimension in shape %v", ErrInvalidArray, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("%w: shape %v overflows", ErrInvalidArray, shape)
		}
		n *= d
	}
	return n, nil
}

// byteLen validates shape against dt and returns the payload size in bytes.
func byteLen(dt DType, shape []int) (int, error) {
	if !dt.Valid() {
		return 0, fmt.Errorf("%w: unknown dtype %d", ErrInvalidArray, dt)
	}
	n, err := shapeLen(shape)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt/dt.Size() {
		return 0, fmt.Errorf("%w: shape %v of %s overflows", ErrInvalidArray, shape, dt)
	}
	return n * dt.Size(), nil
}

// NewArray returns an Array of shape holding vals (row-major). It copies both
// shape and vals. len(vals) must be the product of shape.
func NewArray[T Number](shape []int, vals []T) (Array, error) {
	dt := dtypeOf[T]()
	size, err := byteLen(dt, shape)
	if err != nil {
		return Array{}, err
	}
	if n := size / dt.Size(); n != len(vals) {
		return Array{}, fmt.Errorf("%w: shape %v needs %d values, got %d", ErrInvalidArray, shape, n, len(vals))
	}
	data := make([]byte, size)
	if littleEndian {
		if size > 0 {
			copy(data, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), size))
		}
	} else {
		putElems(dt, data, vals)
	}
	return Array{DType: dt, Shape: slices.Clone(shape), Data: data}, nil
}

// NewBoolArray returns a Bool Array of shape holding vals. It copies both.
func NewBoolArray(shape []int, vals []bool) (Array, error) {
	size, err := byteLen(Bool, shape)
	if err != nil {
		return Array{}, err
	}
	if size != len(vals) {
		return Array{}, fmt.Errorf("%w: shape %v needs %d values, got %d", ErrInvalidArray, shape, size, len(vals))
	}
	data := make([]byte, size)
	for i, v := range vals {
		if v {
			data[i] = 1
		}
	}
	return Array{DType: Bool, Shape: slices.Clone(shape), Data: data}, nil
}

// Elems returns a copy of a's elements as a []T, in row-major order. T must
// match a's dtype exactly (e.g. float32 for Float32; int for Int64 on 64-bit
// platforms). The copy never aliases a.Data, so either may change freely.
func Elems[T Number](a Array) ([]T, error) {
	dt := dtypeOf[T]()
	if a.DType != dt {
		return nil, fmt.Errorf("codec: array has dtype %s, not %s (%s)", a.DType, dt, reflect.TypeFor[T]())
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	out := make([]T, len(a.Data)/dt.Size())
	if littleEndian {
		if len(out) > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(a.Data)), a.Data)
		}
		return out, nil
	}
	getElems(dt, out, a.Data)
	return out, nil
}

// Bools returns a copy of the elements of a Bool array.
func Bools(a Array) ([]bool, error) {
	if a.DType != Bool {
		return nil, fmt.Errorf("codec: array has dtype %s, not bool", a.DType)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	out := make([]bool, len(a.Data))
	for i, b := range a.Data {
		out[i] = b != 0
	}
	return out, nil
}

// putElems writes vals into data in little-endian order on any host.
func putElems[T Number](dt DType, data []byte, vals []T) {
	le := binary.LittleEndian
	for i, v := range vals {
		switch dt {
		case Int8, Uint8:
			data[i] = byte(v)
		case Int16, Uint16:
			le.PutUint16(data[2*i:], uint16(v))
		case Int32, Uint32:
			le.PutUint32(data[4*i:], uint32(v))
		case Int64, Uint64:
			le.PutUint64(data[8*i:], uint64(v))
		case Float32:
			le.PutUint32(data[4*i:], math.Float32bits(float32(v)))
		case Float64:
			le.PutUint64(data[8*i:], math.Float64bits(float64(v)))
		}
	}
}

// getElems reads little-endian data into out on any host.
func getElems[T Number](dt DType, out []T, data []byte) {
	le := binary.LittleEndian
	for i := range out {
		switch dt {
		case Int8:
			out[i] = T(int8(data[i]))
		case Uint8:
			out[i] = T(data[i])
		case Int16:
			out[i] = T(int16(le.Uint16(data[2*i:])))
		case Uint16:
			out[i] = T(le.Uint16(data[2*i:]))
		case Int32:
			out[i] = T(int32(le.Uint32(data[4*i:])))
		case Uint32:
			out[i] = T(le.Uint32(data[4*i:]))
		case Int64:
			out[i] = T(int64(le.Uint64(data[8*i:])))
		case Uint64:
			out[i] = T(le.Uint64(data[8*i:]))
		case Float32:
			out[i] = T(math.Float32frombits(le.Uint32(data[4*i:])))
		case Float64:
			out[i] = T(math.Float64frombits(le.Uint64(data[8*i:])))
		}
	}
}

// Len returns the number of elements of a valid Array: the product of its
// shape (1 for a 0-dimensional array).
func (a Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// IsZero reports whether a is the zero Array, which encodes as null.
func (a Array) IsZero() bool { return a.DType == 0 && a.Shape == nil && a.Data == nil }

// Validate checks a's invariants: a known dtype, at most MaxDims
// non-negative dimensions whose product does not overflow, len(Data) equal
// to that product times the element size, and Bool bytes all 0 or 1.
// Errors match ErrInvalidArray.
func (a Array) Validate() error {
	size, err := byteLen(a.DType, a.Shape)
	if err != nil {
		return err
	}
	if len(a.Data) != size {
		return fmt.Errorf("%w: data has %d bytes, shape %v of %s needs %d", ErrInvalidArray, len(a.Data), a.Shape, a.DType, size)
	}
	if a.DType == Bool {
		for i, b := range a.Data {
			if b > 1 {
				return fmt.Errorf("%w: bool element %d is byte %d, want 0 or 1", ErrInvalidArray, i, b)
			}
		}
	}
	return nil
}

// MarshalJSON implements json.Marshaler:
// {"dtype":"float64","shape":[2,2],"data":[1,2,3,4]}. Bool elements print as
// true/false. NaN and infinities cannot be represented and are an error.
func (a Array) MarshalJSON() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	n := len(a.Data) / a.DType.Size()
	b := make([]byte, 0, 48+n*4)
	b = append(b, `{"dtype":"`...)
	b = append(b, a.DType.String()...)
	b = append(b, `","shape":[`...)
	for i, d := range a.Shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	b = append(b, `],"data":[`...)
	le := binary.LittleEndian
	d := a.Data
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		switch a.DType {
		case Bool:
			b = strconv.AppendBool(b, d[i] != 0)
		case Int8:
			b = strconv.AppendInt(b, int64(int8(d[i])), 10)
		case Uint8:
			b = strconv.AppendUint(b, uint64(d[i]), 10)
		case Int16:
			b = strconv.AppendInt(b, int64(int16(le.Uint16(d[2*i:]))), 10)
		case Uint16:
			b = strconv.AppendUint(b, uint64(le.Uint16(d[2*i:])), 10)
		case Int32:
			b = strconv.AppendInt(b, int64(int32(le.Uint32(d[4*i:]))), 10)
		case Uint32:
			b = strconv.AppendUint(b, uint64(le.Uint32(d[4*i:])), 10)
		case Int64:
			b = strconv.AppendInt(b, int64(le.Uint64(d[8*i:])), 10)
		case Uint64:
			b = strconv.AppendUint(b, le.Uint64(d[8*i:]), 10)
		case Float32:
			f := math.Float32frombits(le.Uint32(d[4*i:]))
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("codec: array element %d is %v, which JSON cannot represent", i, f)
			}
			b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
		case Float64:
			f := math.Float64frombits(le.Uint64(d[8*i:]))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("codec: array element %d is %v, which JSON cannot represent", i, f)
			}
			b = strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	}
	b = append(b, "]}"...)
	return b, nil
}

// UnmarshalJSON implements json.Unmarshaler for the form MarshalJSON writes.
// "dtype" is required; "shape" may be omitted for a 1-dimensional array.
// Integers must be written as integers in range; bool elements as true/false.
func (a *Array) UnmarshalJSON(b []byte) error {
	var in struct {
		DType *string         `json:"dtype"`
		Shape []int           `json:"shape"`
		Data  json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("codec: array JSON: %w", err)
	}
	if in.DType == nil {
		return fmt.Errorf("codec: array JSON: missing \"dtype\"")
	}
	dt, err := ParseDType(*in.DType)
	if err != nil {
		return fmt.Errorf("codec: array JSON: %w", err)
	}
	var elems []json.RawMessage
	if len(in.Data) > 0 && string(in.Data) != "null" {
		if err := json.Unmarshal(in.Data, &elems); err != nil {
			return fmt.Errorf("codec: array JSON: \"data\" must be a list: %w", err)
		}
	}
	shape := in.Shape
	if shape == nil {
		shape = []int{len(elems)}
	}
	size, err := byteLen(dt, shape)
	if err != nil {
		return err
	}
	if n := size / dt.Size(); n != len(elems) {
		return fmt.Errorf("%w: shape %v needs %d values, JSON has %d", ErrInvalidArray, shape, n, len(elems))
	}
	data := make([]byte, size)
	le := binary.LittleEndian
	for i, raw := range elems {
		s := string(bytes.TrimSpace(raw))
		var perr error
		switch dt {
		case Bool:
			switch s {
			case "true":
				data[i] = 1
			case "false":
			default:
				perr = fmt.Errorf("want true or false")
			}
		case Int8, Int16, Int32, Int64:
			var v int64
			v, perr = strconv.ParseInt(s, 10, dt.Size()*8)
			switch dt {
			case Int8:
				data[i] = byte(v)
			case Int16:
				le.PutUint16(data[2*i:], uint16(v))
			case Int32:
				le.PutUint32(data[4*i:], uint32(v))
			case Int64:
				le.PutUint64(data[8*i:], uint64(v))
			}
		case Uint8, Uint16, Uint32, Uint64:
			var v uint64
			v, perr = strconv.ParseUint(s, 10, dt.Size()*8)
			switch dt {
			case Uint8:
				data[i] = byte(v)
			case Uint16:
				le.PutUint16(data[2*i:], uint16(v))
			case Uint32:
				le.PutUint32(data[4*i:], uint32(v))
			case Uint64:
				le.PutUint64(data[8*i:], v)
			}
		case Float32:
			var v float64
			v, perr = parseJSONFloat(s, 32)
			le.PutUint32(data[4*i:], math.Float32bits(float32(v)))
		case Float64:
			var v float64
			v, perr = parseJSONFloat(s, 64)
			le.PutUint64(data[8*i:], math.Float64bits(v))
		}
		if perr != nil {
			return fmt.Errorf("codec: array JSON: element %d (%s) is not a valid %s: %w", i, s, dt, perr)
		}
	}
	*a = Array{DType: dt, Shape: slices.Clone(shape), Data: data}
	return nil
}

// parseJSONFloat parses a JSON number (not NaN, Inf or hex forms, which
// strconv would accept).
func parseJSONFloat(s string, bits int) (float64, error) {
	if !json.Valid([]byte(s)) || s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, fmt.Errorf("not a JSON number")
	}
	return strconv.ParseFloat(s, bits)
}
