package codec

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeErrors(t *testing.T) {
	deep := strings.Repeat("81", MaxDepth+1) + "00"
	okDeep := strings.Repeat("81", MaxDepth) + "00"
	point := "d81b 82 6a" + hx("test.Point")
	tests := []struct {
		name   string
		in     string
		into   func() any
		offset int
		path   string
		msg    string
		is     error
	}{
		{"empty", "", newAny, 0, "", "empty input", nil},
		{"truncated array", "83 01 02", newAny, 3, "", "unexpected end of input", nil},
		{"huge byte string", "5a 40000000 0102030405", newAny, 0, "", "byte string of 1073741824 bytes runs past the end of input (5 bytes left)", nil},
		{"huge array", "9a 3b9aca00 0102030405", newAny, 0, "", "array of 1000000000 elements exceeds the limit", nil},
		{"huge map", "ba 3b9aca00 0102030405", newAny, 0, "", "map of 1000000000 pairs exceeds the limit", nil},
		{"long array short input", "99 ffff 01", newAny, 4, "", "unexpected end of input", nil},
		{"extra data", "01 02", newAny, 1, "", "1 bytes of extra data after the value", nil},
		{"reserved additional info", "82 01 1c", newAny, 2, "", "invalid additional information 28", nil},
		{"indefinite array", "9f ff", newAny, 0, "", "indefinite-length array is not allowed", nil},
		{"indefinite string", "82 00 7f ff", newAny, 2, "", "indefinite-length text string is not allowed", nil},
		{"stray break", "82 00 ff", newAny, 2, "", `unexpected "break" code`, nil},
		{"bad simple value", "f8 10", newAny, 0, "", "invalid simple value 16", nil},
		{"bignum", "82 01 c2 41 01", newAny, 2, "", "bignum tags", nil},
		{"truncated head", "82 19 01", newAny, 1, "", "unexpected end of input in the head of a unsigned integer", nil},
		{"too deep", deep, newAny, MaxDepth, "", "nested deeper than 64 levels", nil},
		{"too deep typed", deep, func() any { return new([]any) }, MaxDepth, "", "nested deeper than 64 levels", nil},
		{"duplicate key", "a2 6161 01 6161 02", newAny, 0, "", "duplicate map key", nil},
		{"invalid utf8", "82 01 62 fffe", newAny, 2, "[1]", "invalid UTF-8", nil},
		{"unsupported tag", "82 01 d9 0100 01", newAny, 2, "[1]", "unsupported CBOR tag 256", nil},
		{"time tag", "c1 01", newAny, 0, "", "unsupported CBOR tag 1", nil},
		{"simple value", "a1 6161 f0", newAny, 3, `["a"]`, "unsupported CBOR item: simple value 16", nil},
		{"negative overflow", "3b ffffffffffffffff", newAny, 0, "", "integer out of range", nil},
		{"unknown name", "82 00 d81b 82 63 666f6f a0", newAny, 2, "[1]", `unknown type name "foo"`, ErrUnregistered},
		{"wrong name", "d81b 82 69" + hx("test.Base") + "a0", func() any { return new(Point) }, 0, "",
			`value of registered type "test.Base" cannot decode into codec.Point (registered as "test.Point")`, nil},
		{"not an object", "01", func() any { return new(Point) }, 0, "", "cannot decode unsigned integer into codec.Point", nil},
		{"bad object shape", "d81b 83 00 00 00", newAny, 0, "", "tag 27 must hold [type name, fields]", nil},
		{"fields not a map", point + "80", func() any { return new(Point) }, 14, "", "fields of codec.Point must be a map, not an array", nil},
		{"bad field", point + "a2 6158 01 6159 6161", func() any { return new(Point) }, 20, "Y", "cannot decode text string into int", nil},
		{"bad field into any", point + "a2 6158 01 6159 6161", newAny, 20, "Y", "cannot decode text string into int", nil},
		{"unknown field", point + "a1 615a 01", func() any { return new(Point) }, 17, "Z", `codec.Point has no field "Z"`, nil},
		{"nested bad field", "d81b 82 69" + hx("test.Line") + "a1 66506f696e7473 81" + strings.TrimPrefix(point, "") + "a1 6158 f5",
			func() any { return new(Line) }, 39, "Points[0].X", "cannot decode bool into int", nil},
		{"element overflow", "83 01 02 190100", func() any { return new([]int8) }, 3, "[2]", "cannot decode unsigned integer into int8 (256 overflows int8)", nil},
		{"map value overflow", "a2 6161 01 6162 190100", func() any { return new(map[string]int8) }, 6, `["b"]`, "overflows", nil},
		{"map key type", "a1 01 01", func() any { return new(map[string]int) }, 0, "", "cannot decode positive integer map key into string", nil},
		{"any map float key", "a1 f93e00 01", func() any { return new(map[any]int) }, 0, "", "map key of type float", nil},
		{"any map bad value", "a2 01 01 6161 f5", func() any { return new(map[any]int) }, 5, `["a"]`, "cannot decode bool into int", nil},
		{"float into int", "fa 3fc00000", func() any { return new(int) }, 0, "", "cannot decode float into int", nil},
		{"tag into int", "d82a 4100", func() any { return new(int) }, 0, "", "cannot decode tag 42 into int", nil},
		{"tag in int list", "82 01 c1 01", func() any { return new([]int) }, 2, "[1]", "cannot decode tag 1 into int", nil},
		{"go array length", "83 01 02 03", func() any { return new([2]int) }, 0, "", "array of 3 elements cannot decode into [2]int", nil},
		{"byte array length", "43 010203", func() any { return new([4]byte) }, 0, "", "byte string of 3 bytes cannot decode into [4]uint8", nil},
		{"bytes into string", "41 00", func() any { return new(string) }, 0, "", "cannot decode byte string into string", nil},
		{"link prefix", "d82a 42 0102", newAny, 0, "", "link must be a byte string of 0x00 and a binary CID", nil},
		{"link not bytes", "82 00 d82a 01", newAny, 2, "[1]", "tag 42 must hold a byte string", nil},
		{"link bad cid", "d82a 43 000102", newAny, 0, "", "invalid CID in link", nil},
		{"array data length", "d828 82 8102 d856 48 0000000000000000", newAny, 0, "", "invalid array: data has 8 bytes, shape [2] of float64 needs 16", ErrInvalidArray},
		{"array negative dim", "d828 82 8120 d856 40", newAny, 0, "", "array shape dimension 0 is negative (-1)", ErrInvalidArray},
		{"array bool byte", "d828 82 8102 42 0102", newAny, 0, "", "bool element 1 is byte 2", ErrInvalidArray},
		{"array unknown typed tag", "d828 82 8101 d854 42 0000", newAny, 0, "", "array data tag 84 is not a supported typed array", ErrInvalidArray},
		{"array of elements", "d828 82 8102 82 01 02", func() any { return new(Array) }, 0, "", "array data must be a typed array tag or a byte string, not an array of 2 items", ErrInvalidArray},
		{"array too many dims", "d828 82 98 41" + strings.Repeat("01", 65) + " d840 41 00", newAny, 0, "", "65 dimensions", nil},
		{"binary payload", "d81b 82 68" + hx("test.Bin") + "41 00", newAny, 12, "", "codec.Bin.UnmarshalBinary: bin: want 8 bytes, got 1", nil},
		{"array into int", "d828 82 8101 d840 41 00", func() any { return new(int) }, 0, "", "cannot decode tag 40 into int", nil},
		{"deep but fine", okDeep, newAny, -1, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal(h(tt.in), tt.into())
			if tt.offset < 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, ErrDecode)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.offset, de.Offset, "offset; error: %v", err)
			assert.Equal(t, tt.path, renderPath(de.Path), "path; error: %v", err)
			assert.Contains(t, err.Error(), tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "codec: decode at offset "), err.Error())
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func newAny() any { return new(any) }

func TestUnmarshalTargets(t *testing.T) {
	var x int
	err := Unmarshal(h("01"), x)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "non-nil pointer")
	require.Error(t, Unmarshal(h("01"), nil))
	require.Error(t, Unmarshal(h("01"), (*int)(nil)))

	type unreg struct{ A int }
	var u unreg
	err = Unmarshal(h("a0"), &u)
	require.ErrorIs(t, err, ErrUnregistered)
	assert.False(t, errors.Is(err, ErrDecode), "a bad target is not a decode error")

	var f func()
	require.ErrorIs(t, Unmarshal(h("f6"), &f), ErrCannotTravel)
}

// allocBytes returns the bytes allocated per call of f, averaged.
func allocBytes(f func()) uint64 {
	const runs = 20
	f()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func TestHostileHeadersAllocateLittle(t *testing.T) {
	inputs := map[string]string{
		"byte string 1 GiB":  "5a 40000000 0102030405",
		"text string 1 GiB":  "7a 40000000 0102030405",
		"array 1e9":          "9a 3b9aca00 0102030405",
		"array 65535":        "99 ffff 010203040506",
		"map 1e9":            "ba 3b9aca00 0102030405",
		"nested array claim": "81 81 81 9a 3b9aca00 0102",
		"ndarray 1 GiB":      "d828 82 81 1a08000000 d856 5a 40000000 01",
		"object claim":       "d81b 82 6a" + hx("test.Point") + "ba 3b9aca00 01",
	}
	targets := map[string]func() any{
		"any":   newAny,
		"bytes": func() any { return new([]byte) },
		"ints":  func() any { return new([]int) },
		"map":   func() any { return new(map[string]any) },
		"array": func() any { return new(Array) },
		"point": func() any { return new(Point) },
	}
	for name, in := range inputs {
		data := h(in)
		require.LessOrEqual(t, len(data), 20)
		for tname, target := range targets {
			t.Run(name+"/"+tname, func(t *testing.T) {
				var err error
				n := allocBytes(func() { err = Unmarshal(data, target()) })
				require.ErrorIs(t, err, ErrDecode)
				assert.Less(t, n, uint64(2048), "allocated %d bytes per decode of %d input bytes", n, len(data))
			})
		}
		t.Run(name+"/links", func(t *testing.T) {
			n := allocBytes(func() { _, _ = Links(data) })
			assert.Less(t, n, uint64(2048))
		})
	}
	allocs := testing.AllocsPerRun(50, func() { _ = Unmarshal(h("5a 40000000 01"), new(any)) })
	assert.Less(t, allocs, 20.0)
}

func TestArrayDecodeCopiesPayloadOnce(t *testing.T) {
	const size = 8 << 20
	a := Array{DType: Float32, Shape: []int{size / 4}, Data: make([]byte, size)}
	b, err := Marshal(a)
	require.NoError(t, err)
	for name, target := range map[string]func() any{
		"array": func() any { return new(Array) },
		"any":   newAny,
		"tuple": func() any { return new(Tuple) },
	} {
		t.Run(name, func(t *testing.T) {
			in := b
			if name == "tuple" {
				in = append([]byte{0x81}, b...)
			}
			n := allocBytes(func() { require.NoError(t, Unmarshal(in, target())) })
			assert.Less(t, n, uint64(size+size/16), "decode allocated %d bytes for a %d-byte payload", n, size)
			assert.GreaterOrEqual(t, n, uint64(size))
		})
	}
	n := allocBytes(func() {
		out, err := Marshal(a)
		require.NoError(t, err)
		require.Len(t, out, size+16)
	})
	assert.Less(t, n, uint64(size+size/16), "Marshal allocated %d bytes for a %d-byte payload", n, size)
}

func TestSlowPathsAgree(t *testing.T) {
	values := []any{
		everything(t), Tuple{1, "a", []any{testCid, Point{X: 1}}, map[string]any{"k": nil}},
		map[int]any{1: []byte{1}, -2: 2.5}, mustArray(t, []int{1}, []int8{1}),
	}
	for _, v := range values {
		b, err := Marshal(v)
		require.NoError(t, err)
		d := decoder{base: cap(b)}
		fast, err := d.decAny(b)
		require.NoError(t, err)
		slow, err := d.decAnySlow(b)
		require.NoError(t, err)
		assert.Equal(t, fast, slow)
	}

	e := everything(t)
	b, err := Marshal(e)
	require.NoError(t, err)
	var od objDec
	require.NoError(t, dmTyped.Unmarshal(b, &od))
	p, err := planFor(typeOf[Everything]())
	require.NoError(t, err)
	var got Everything
	d := decoder{base: cap(b)}
	require.NoError(t, d.decFieldsSlow(p, od.Body, valueOf(&got).Elem()))
	assert.Equal(t, e, got)
}

func TestInterfaceKeyedMaps(t *testing.T) {
	in := map[any]string{"a": "x", 1: "y", false: "z", uint64(1 << 63): "w"}
	b, err := Marshal(in)
	require.NoError(t, err)
	var got map[any]string
	require.NoError(t, Unmarshal(b, &got))
	assert.Equal(t, map[any]string{"a": "x", int64(1): "y", false: "z", uint64(1 << 63): "w"}, got)

	require.ErrorIs(t, CheckType(reflect.TypeFor[map[Shape]int]()), ErrCannotTravel)
}

// Panicky panics in MarshalBinary and SetLink.
type Panicky struct{ X int }

func (Panicky) MarshalBinary() ([]byte, error) { panic("boom") }
func (*Panicky) UnmarshalBinary([]byte) error  { panic("boom") }

func TestPanicsBecomeErrors(t *testing.T) {
	require.NoError(t, Register[Panicky]("test.Panicky"))
	_, err := Marshal(Panicky{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "codec: encode: panic: boom")

	err = Unmarshal(h("d81b 82 6c"+hx("test.Panicky")+"40"), new(any))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "codec: decode: panic: boom")

	_, err = ToJSONValue(Panicky{})
	require.Error(t, err)
}
