package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDTypeNames(t *testing.T) {
	for d := Bool; d <= Float64; d++ {
		got, err := ParseDType(d.String())
		require.NoError(t, err)
		assert.Equal(t, d, got)
		txt, err := d.MarshalText()
		require.NoError(t, err)
		var back DType
		require.NoError(t, back.UnmarshalText(txt))
		assert.Equal(t, d, back)
	}
	assert.Equal(t, "float64", Float64.String())
	assert.Equal(t, "int32", Int32.String())
	assert.Equal(t, "bool", Bool.String())
	assert.Equal(t, 8, Float64.Size())
	assert.Equal(t, 0, DType(0).Size())
	assert.Equal(t, "DType(0)", DType(0).String())
	_, err := ParseDType("float128")
	require.Error(t, err)
	_, err = DType(99).MarshalText()
	require.ErrorIs(t, err, ErrInvalidArray)
}

func testNewElems[T Number](t *testing.T, dt DType, vals []T) {
	t.Helper()
	a, err := NewArray([]int{len(vals)}, vals)
	require.NoError(t, err)
	assert.Equal(t, dt, a.DType)
	assert.Len(t, a.Data, len(vals)*dt.Size())
	got, err := Elems[T](a)
	require.NoError(t, err)
	assert.Equal(t, vals, got)

	b, err := Marshal(a)
	require.NoError(t, err)
	var back Array
	require.NoError(t, Unmarshal(b, &back))
	assert.Equal(t, a, back)
	h, _ := readHead(b, 0)
	assert.Equal(t, uint64(tagNDArray), h.arg)
	th, _ := readHead(b, 5) // d828 82 81 <len>
	if len(vals) >= 24 {
		th, _ = readHead(b, 6)
	}
	assert.Equal(t, dt.tag(), th.arg, "typed-array tag of %s", dt)
}

func TestNewArrayElemsAllDTypes(t *testing.T) {
	for _, le := range []bool{true, false} {
		old := littleEndian
		littleEndian = le
		t.Run(map[bool]string{true: "memcopy", false: "portable"}[le], func(t *testing.T) {
			testNewElems(t, Int8, []int8{-128, 0, 127})
			testNewElems(t, Int16, []int16{-32768, 1, 32767})
			testNewElems(t, Int32, []int32{math.MinInt32, 2, math.MaxInt32})
			testNewElems(t, Int64, []int64{math.MinInt64, 3, math.MaxInt64})
			testNewElems(t, Int64, []int{-1, 0, 1})
			testNewElems(t, Uint8, []uint8{0, 1, 255})
			testNewElems(t, Uint16, []uint16{0, 65535})
			testNewElems(t, Uint32, []uint32{0, math.MaxUint32})
			testNewElems(t, Uint64, []uint64{0, math.MaxUint64})
			testNewElems(t, Uint64, []uint{0, 7})
			testNewElems(t, Float32, []float32{-1.5, float32(math.Inf(1)), 3})
			testNewElems(t, Float64, []float64{math.Pi, -0.0, math.MaxFloat64})
			testNewElems(t, Float64, []Celsius{1, 2})
			testNewElems(t, Float64, make([]float64, 100))
		})
		littleEndian = old
	}
	// Known little-endian layout.
	a := mustArray(t, []int{2}, []int16{1, -2})
	assert.Equal(t, []byte{1, 0, 0xfe, 0xff}, a.Data)
}

func TestNewArrayCopiesAndChecks(t *testing.T) {
	shape := []int{2, 2}
	vals := []float64{1, 2, 3, 4}
	a, err := NewArray(shape, vals)
	require.NoError(t, err)
	shape[0], vals[0] = 9, 9
	assert.Equal(t, []int{2, 2}, a.Shape)
	f, err := Elems[float64](a)
	require.NoError(t, err)
	assert.Equal(t, 1.0, f[0])
	f[1] = 42
	f2, _ := Elems[float64](a)
	assert.Equal(t, 2.0, f2[1], "Elems returns a copy")
	assert.Equal(t, 4, a.Len())
	assert.Equal(t, 1, mustArray(t, nil, []int8{1}).Len())

	_, err = NewArray([]int{3}, []float64{1})
	require.ErrorIs(t, err, ErrInvalidArray)
	_, err = NewArray([]int{-1}, []float64{})
	require.ErrorIs(t, err, ErrInvalidArray)
	_, err = NewArray([]int{math.MaxInt, 3}, []float64{})
	require.ErrorIs(t, err, ErrInvalidArray)
	_, err = NewArray([]int{math.MaxInt / 4}, []float64{})
	require.ErrorIs(t, err, ErrInvalidArray, "bytes overflow")
	_, err = NewArray(make([]int, MaxDims+1), []float64{})
	require.ErrorIs(t, err, ErrInvalidArray)

	_, err = Elems[int32](a)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "array has dtype float64, not int32")
	_, err = Elems[float64](Array{DType: Float64, Shape: []int{2}, Data: make([]byte, 8)})
	require.ErrorIs(t, err, ErrInvalidArray)

	ba, err := NewBoolArray([]int{3}, []bool{true, false, true})
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 0, 1}, ba.Data)
	bs, err := Bools(ba)
	require.NoError(t, err)
	assert.Equal(t, []bool{true, false, true}, bs)
	_, err = Bools(a)
	require.Error(t, err)
	_, err = NewBoolArray([]int{2}, []bool{true})
	require.ErrorIs(t, err, ErrInvalidArray)
}

func TestArrayValidate(t *testing.T) {
	tests := []struct {
		name string
		a    Array
		msg  string
	}{
		{"ok", Array{DType: Int16, Shape: []int{2, 1}, Data: make([]byte, 4)}, ""},
		{"ok 0-d", Array{DType: Uint8, Data: []byte{1}}, ""},
		{"ok empty", Array{DType: Float32, Shape: []int{0}}, ""},
		{"bad dtype", Array{DType: 0, Shape: []int{1}, Data: []byte{0}}, "unknown dtype 0"},
		{"negative", Array{DType: Int8, Shape: []int{-1}}, "negative dimension"},
		{"overflow", Array{DType: Int8, Shape: []int{math.MaxInt, 2}}, "overflows"},
		{"short data", Array{DType: Int32, Shape: []int{2}, Data: make([]byte, 7)}, "data has 7 bytes, shape [2] of int32 needs 8"},
		{"bool byte", Array{DType: Bool, Shape: []int{2}, Data: []byte{0, 7}}, "bool element 1 is byte 7"},
		{"too many dims", Array{DType: Int8, Shape: make([]int, 65)}, "65 dimensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Validate()
			if tt.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidArray)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestArrayJSON(t *testing.T) {
	tests := []struct {
		name string
		a    Array
		js   string
	}{
		{"float64", mustArray(t, []int{2, 2}, []float64{1, 2.5, -3, 4e20}), `{"dtype":"float64","shape":[2,2],"data":[1,2.5,-3,4e+20]}`},
		{"float32", mustArray(t, []int{1}, []float32{0.1}), `{"dtype":"float32","shape":[1],"data":[0.1]}`},
		{"int8", mustArray(t, []int{2}, []int8{-128, 127}), `{"dtype":"int8","shape":[2],"data":[-128,127]}`},
		{"int16", mustArray(t, []int{1}, []int16{-300}), `{"dtype":"int16","shape":[1],"data":[-300]}`},
		{"int32", mustArray(t, []int{1}, []int32{-70000}), `{"dtype":"int32","shape":[1],"data":[-70000]}`},
		{"int64", mustArray(t, []int{1}, []int64{math.MinInt64}), `{"dtype":"int64","shape":[1],"data":[-9223372036854775808]}`},
		{"uint8", mustArray(t, []int{1}, []uint8{255}), `{"dtype":"uint8","shape":[1],"data":[255]}`},
		{"uint16", mustArray(t, []int{1}, []uint16{65535}), `{"dtype":"uint16","shape":[1],"data":[65535]}`},
		{"uint32", mustArray(t, []int{1}, []uint32{math.MaxUint32}), `{"dtype":"uint32","shape":[1],"data":[4294967295]}`},
		{"uint64", mustArray(t, []int{1}, []uint64{math.MaxUint64}), `{"dtype":"uint64","shape":[1],"data":[18446744073709551615]}`},
		{"bool", Array{DType: Bool, Shape: []int{2}, Data: []byte{1, 0}}, `{"dtype":"bool","shape":[2],"data":[true,false]}`},
		{"0-d", mustArray(t, []int{}, []int64{7}), `{"dtype":"int64","shape":[],"data":[7]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := json.Marshal(tt.a)
			require.NoError(t, err)
			assert.JSONEq(t, tt.js, string(js))
			var back Array
			require.NoError(t, json.Unmarshal(js, &back))
			assert.Equal(t, tt.a, back)
		})
	}

	var a Array
	require.NoError(t, json.Unmarshal([]byte(`{"dtype":"int32","data":[1,2,3]}`), &a))
	assert.Equal(t, mustArray(t, []int{3}, []int32{1, 2, 3}), a, "shape defaults to 1-D")

	bad := map[string]string{
		"no dtype":       `{"data":[1]}`,
		"bad dtype":      `{"dtype":"f8","data":[1]}`,
		"unknown field":  `{"dtype":"int8","data":[1],"x":1}`,
		"shape mismatch": `{"dtype":"int8","shape":[2],"data":[1]}`,
		"int overflow":   `{"dtype":"int8","data":[128]}`,
		"uint negative":  `{"dtype":"uint8","data":[-1]}`,
		"int fraction":   `{"dtype":"int64","data":[1.5]}`,
		"bool number":    `{"dtype":"bool","data":[1]}`,
		"float string":   `{"dtype":"float64","data":["NaN"]}`,
		"float32 range":  `{"dtype":"float32","data":[1e39]}`,
		"data not list":  `{"dtype":"float64","data":1}`,
		"negative dim":   `{"dtype":"float64","shape":[-1],"data":[]}`,
	}
	for name, js := range bad {
		t.Run("bad "+name, func(t *testing.T) {
			var a Array
			require.Error(t, json.Unmarshal([]byte(js), &a))
		})
	}
	_, err := json.Marshal(mustArray(t, []int{1}, []float64{math.NaN()}))
	require.Error(t, err)
	_, err = json.Marshal(Array{DType: Int8, Shape: []int{2}})
	require.Error(t, err)
}

// TestAppendHead proves the byte-string head splice writes is the one
// fxamacker writes, for every head size, comparing directly with encoded
// byte strings where that is cheap and, for larger lengths, with
// fxamacker's unsigned-integer head (same argument encoding, other major
// type).
func TestAppendHead(t *testing.T) {
	lengths := []uint64{0, 1, 23, 24, 25, 255, 256, 257, 65535, 65536, 65537, 1 << 20}
	for _, n := range lengths {
		want, err := em.Marshal(make([]byte, n))
		require.NoError(t, err)
		got := appendHead(nil, majorBytes, n)
		assert.Equal(t, want[:len(want)-int(n)], got, "length %d", n)
	}
	for _, n := range append(lengths, math.MaxUint32, math.MaxUint32+1, 1<<40, math.MaxUint64) {
		want, err := em.Marshal(n)
		require.NoError(t, err)
		want[0] |= majorBytes << 5
		assert.Equal(t, want, appendHead(nil, majorBytes, n), "length %d", n)
	}
}

// TestSpliceMatchesFxamacker encodes values holding byte strings, arrays and
// raws of many sizes with splicing forced on and off: the bytes must not
// change.
func TestSpliceMatchesFxamacker(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var values []any
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536, 70001} {
		raw, err := Marshal(blob(n))
		require.NoError(t, err)
		values = append(values,
			blob(n),
			Array{DType: Uint8, Shape: []int{n}, Data: blob(n)},
			Array{DType: Bool, Shape: []int{n}, Data: make([]byte, n)},
			Tuple{blob(n), map[string]any{"a": blob(n), "b": Raw(raw)}, [][]byte{blob(n), nil}},
			Everything{Bytes: blob(n), Raw: Raw(raw), Nd: Array{DType: Int8, Shape: []int{n}, Data: blob(n)}},
			Bin{a: uint32(n)},
		)
	}
	old := bigPayload
	defer func() { bigPayload = old }()
	for i, v := range values {
		bigPayload = math.MaxInt
		want, err := Marshal(v)
		require.NoError(t, err)
		bigPayload = 1
		got, err := Marshal(v)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "value %d: spliced output differs", i)
	}
}

func TestArrayOnWireIsOneByteString(t *testing.T) {
	a := mustArray(t, []int{1000}, make([]float64, 1000))
	b, err := Marshal(a)
	require.NoError(t, err)
	var tag cbor.RawTag
	require.NoError(t, cbor.Unmarshal(b, &tag))
	assert.Equal(t, uint64(40), tag.Number)
	var parts []cbor.RawMessage
	require.NoError(t, cbor.Unmarshal(tag.Content, &parts))
	require.Len(t, parts, 2)
	var inner cbor.RawTag
	require.NoError(t, cbor.Unmarshal(parts[1], &inner))
	assert.Equal(t, uint64(86), inner.Number)
	var payload []byte
	require.NoError(t, cbor.Unmarshal(inner.Content, &payload))
	assert.Len(t, payload, 8000)
	assert.True(t, strings.HasPrefix(hexOf(parts[0]), "8119"), "shape [1000]")
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
