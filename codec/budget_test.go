package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigFields is a registered struct whose value is large while its encoding
// ([name, {}]) is a dozen bytes.
type bigFields struct {
	M [64][1024]float64 // 512 KiB
	S []int
}

// bigHolder holds large arrays through a slice field.
type bigHolder struct {
	Rows [][1024]float64
}

func init() {
	MustRegister[bigFields]("test.bigFields")
	MustRegister[bigHolder]("test.bigHolder")
}

// arrayOf returns a CBOR array head for n elements followed by n copies of
// elem.
func arrayOf(n int, elem []byte) []byte {
	head := appendHead(nil, majorArray, uint64(n))
	return append(head, bytes.Repeat(elem, n)...)
}

// totalAlloc returns the bytes allocated by one call of f.
func totalAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestAdversarialInputsAllocateBoundedMemory decodes small inputs that ask for
// a lot of Go memory into typed and dynamic targets: each must fail with
// ErrAllocLimit before allocating, rather than succeed after allocating
// hundreds of megabytes.
func TestAdversarialInputsAllocateBoundedMemory(t *testing.T) {
	bigObj := h("d81b 82 6e" + hx("test.bigFields") + "a0") // 19 bytes -> 512 KiB
	holder := func(rows []byte) []byte {
		return append(h("d81b 82 6e"+hx("test.bigHolder")+"a1 64"+hx("Rows")), rows...)
	}
	tests := []struct {
		name string
		in   []byte
		into func() any
		off  int
		path string
		what string
	}{
		// 128 KiB of nulls asks for 1 GiB of [1024]float64.
		{"nulls into [][1024]float64", arrayOf(128<<10, h("f6")),
			func() any { return new([][1024]float64) }, 0, "", "array of 131072 elements into [][1024]float64"},
		// Empty arrays: each element is a 1-byte item and an 8 KiB slot.
		{"empty arrays into [][1024]float64", arrayOf(32<<10, h("80")),
			func() any { return new([][1024]float64) }, 0, "", "array of 32768 elements into [][1024]float64"},
		// 3-byte one-entry maps ({"": []}) each cost a whole Go map.
		// The list is cheap, its maps are not: the error is at the map
		// that goes over.
		{"tiny maps into []map[string][]int", arrayOf(512<<10, h("a1 60 80")),
			func() any { return new([]map[string][]int) }, -1, "", "needs"},
		// The largest list allowed, of empty byte strings (72 bytes each).
		{"empty byte strings into [][]byte", arrayOf(MaxListLen, h("40")),
			func() any { return new([][]byte) }, -1, "", "byte string of 0 bytes into []uint8"},
		{"big objects into []*bigFields", arrayOf(256, bigObj),
			func() any { return new([]*bigFields) }, -1, "", "tag 27 into *codec.bigFields"},
		{"big objects into []bigFields", arrayOf(256, bigObj),
			func() any { return new([]bigFields) }, 0, "", "array of 256 elements into []codec.bigFields"},
		{"big objects into any", arrayOf(256, bigObj),
			newAny, -1, "", "tag 27 into codec.bigFields"},
		{"big objects into Tuple", arrayOf(256, bigObj),
			func() any { return new(Tuple) }, -1, "", "tag 27 into codec.bigFields"},
		{"struct field of big arrays", holder(arrayOf(16<<10, h("f6"))),
			func() any { return new(bigHolder) }, 24, "Rows", "array of 16384 elements into [][1024]float64"},
		{"struct field of big arrays into any", holder(arrayOf(16<<10, h("f6"))),
			newAny, 24, "Rows", "array of 16384 elements into [][1024]float64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := totalAlloc(func() { err = Unmarshal(tt.in, tt.into()) })
			require.Error(t, err)
			require.ErrorIs(t, err, ErrDecode)
			require.ErrorIs(t, err, ErrAllocLimit)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			if tt.off >= 0 {
				assert.Equal(t, tt.off, de.Offset)
				assert.Equal(t, tt.path, renderPath(de.Path))
			} else {
				// Cumulative: somewhere inside the list.
				assert.Positive(t, de.Offset)
				assert.Regexp(t, `^\[\d+\]`, de.Path)
			}
			assert.Contains(t, err.Error(), tt.what)
			assert.Contains(t, err.Error(), "over the limit of "+sizeText(allocLimit(len(tt.in))))
			// The refusal comes before the allocation: what is left is the
			// walk's and the error's own small change.
			assert.Less(t, n, uint64(1<<20), "allocated %d bytes for a %d-byte input: %v", n, len(tt.in), err)
		})
	}
}

// tinyKeyedMap encodes a map of n distinct integer keys to empty arrays.
func tinyKeyedMap(n int) []byte {
	b := appendHead(nil, majorMap, uint64(n))
	for i := range n {
		b = appendHead(b, majorUint, uint64(i))
		b = append(b, 0x80)
	}
	return b
}

// TestLegitimateValuesFitTheBudget checks that ordinary values amplify less
// than DecodeAllocFactor, so they decode at any size: payloads cost about
// their size, lists of numbers and strings and records a small multiple,
// maps of tiny entries decoded into any the most.
func TestLegitimateValuesFitTheBudget(t *testing.T) {
	const n = 1 << 16
	ints := make([]int, n)
	smallInts := make([]any, n)
	strs := make([]string, n)
	floats := make([]float64, n)
	m := make(map[string]any, n)
	im := make(map[int]string, n)
	lines := make([]Line, n/16)
	for i := range n {
		ints[i] = i * 7919
		smallInts[i] = i % 24
		strs[i] = strings.Repeat("x", i%7)
		floats[i] = float64(i) / 3
		m["key"+strconv.Itoa(i)] = i
		im[i] = "v"
	}
	for i := range lines {
		lines[i] = Line{Points: []Point{{X: i}, {Y: i}}, Label: "l"}
	}
	payload := make([]byte, 8<<20)
	tests := []struct {
		name string
		v    any
		into reflect.Type
	}{
		{"ints", ints, reflect.TypeFor[[]int]()},
		{"ints into any", ints, typeAny},
		{"small ints into any", smallInts, typeAny},
		{"small ints into Tuple", smallInts, reflect.TypeFor[Tuple]()},
		{"strings", strs, reflect.TypeFor[[]string]()},
		{"strings into any", strs, typeAny},
		{"floats into any", floats, typeAny},
		{"string map", m, reflect.TypeFor[map[string]any]()},
		{"string map into any", m, typeAny},
		{"int map", im, reflect.TypeFor[map[int]string]()},
		{"int map into any", im, typeAny},
		{"lines", lines, reflect.TypeFor[[]Line]()},
		{"lines into any", lines, typeAny},
		{"payload", payload, reflect.TypeFor[[]byte]()},
		{"payload into any", payload, typeAny},
		{"array", Array{DType: Float64, Shape: []int{1 << 20}, Data: payload}, typeAny},
		{"everything", []Everything{everything(t), everything(t)}, reflect.TypeFor[[]Everything]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			require.NoError(t, err)
			s := sizer{data: b, limit: math.MaxUint64}
			if tt.into == typeAny {
				_, err = s.dyn(0)
			} else {
				p, perr := planFor(tt.into)
				require.NoError(t, perr)
				_, err = s.typed(p, 0)
			}
			require.NoError(t, err)
			ratio := float64(s.used) / float64(len(b))
			got := totalAlloc(func() { require.NoError(t, Unmarshal(b, reflect.New(tt.into).Interface())) })
			t.Logf("%d bytes, estimate %d: %.1fx, real %.1fx", len(b), s.used, ratio, float64(got)/float64(len(b)))
			assert.Less(t, ratio, float64(DecodeAllocFactor), "%d-byte input needs %d bytes", len(b), s.used)
			if len(b) > 64<<10 && !raceEnabled { // the race runtime allocates more
				// The estimate bounds what decoding allocates.
				assert.LessOrEqual(t, got, s.used+s.used/20, "estimated %d bytes, allocated %d", s.used, got)
			}
		})
	}

	// End to end, above the floor.
	big := make([]byte, DecodeAllocFloor+1<<20)
	b, err := Marshal(Tuple{big, 1})
	require.NoError(t, err)
	var x any
	require.NoError(t, Unmarshal(b, &x))
	var bs []byte
	require.NoError(t, Unmarshal(b[1:len(b)-1], &bs))
	assert.Len(t, bs, len(big))
}

func TestAllocLimit(t *testing.T) {
	assert.Equal(t, uint64(DecodeAllocFloor), allocLimit(10))
	assert.Equal(t, uint64(DecodeAllocFloor), allocLimit(DecodeAllocFloor/DecodeAllocFactor))
	assert.Equal(t, uint64(DecodeAllocFactor*(100<<20)), allocLimit(100<<20))
}

// TestArrayDecodeErrorsSpeakWire checks that malformed tag 40 contents are
// described in terms of the wire format, not of codec's Go internals.
func TestArrayDecodeErrorsSpeakWire(t *testing.T) {
	tests := []struct {
		name string
		in   string
		off  int
		msg  string
	}{
		{"negative dimension", "d828 82 8120 d856 40", 0, "array shape dimension 0 is negative (-1)"},
		{"second dimension negative", "d828 82 820120 d856 40", 0, "array shape dimension 1 is negative (-1)"},
		{"text dimension", "d828 82 8161 61 d856 40", 0, "array shape dimension 0 must be an unsigned integer, not a text string"},
		{"float dimension", "d828 82 81 f93c00 d856 40", 0, "array shape dimension 0 must be an unsigned integer, not a float"},
		{"shape not an array", "d828 82 01 d856 40", 0, "array shape must be an array of dimensions, not an unsigned integer"},
		{"too many dimensions", "d828 82 9841" + strings.Repeat("00", 65) + "d856 40", 0, "65 dimensions, at most 64 allowed"},
		{"content not a pair", "d828 83 80 40 40", 0, "tag 40 must hold an array of [shape, data], not an array of 3 items"},
		{"content not an array", "d828 40", 0, "tag 40 must hold an array of [shape, data], not a byte string"},
		{"unknown typed array tag", "d828 82 81 01 d863 41 00", 0, "array data tag 99 is not a supported typed array"},
		{"typed array of text", "d828 82 81 01 d856 61 61", 0, "array data tag 86 must hold a byte string, not a text string"},
		{"data not bytes", "d828 82 81 01 81 01", 0, "array data must be a typed array tag or a byte string, not an array"},
	}
	for _, tt := range tests {
		for _, into := range []func() any{newAny, func() any { return new(Array) }, func() any { return new(Everything) }} {
			in := h(tt.in)
			off := tt.off
			target := into()
			if _, ok := target.(*Everything); ok {
				// As the Nd field of a registered struct.
				prefix := h("d81b 82 6f" + hx("test.Everything") + "a1 62" + hx("Nd"))
				in = append(prefix, in...)
				off += len(prefix)
			}
			t.Run(tt.name+"/"+reflect.TypeOf(target).Elem().String(), func(t *testing.T) {
				err := Unmarshal(in, target)
				require.ErrorIs(t, err, ErrDecode)
				var de *DecodeError
				require.ErrorAs(t, err, &de)
				assert.Equal(t, off, de.Offset, "%v", err)
				assert.Contains(t, err.Error(), tt.msg)
				assertNoInternals(t, err)
			})
		}
	}
}

// internalNames are fragments of fxamacker messages about codec's private
// wire types, which must never reach users.
var internalNames = []string{
	"codec.arrDec", "codec.objDec", "codec.rawItem", "codec.linkWire", "codec.typed",
	"codec.span", "codec.mapEntry", "Go struct field", "Go value of type", "cannot unmarshal",
	"struct {", "invalid map key type",
}

func assertNoInternals(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range internalNames {
		if strings.Contains(msg, s) {
			t.Errorf("error leaks codec internals (%q): %s", s, msg)
		}
	}
}

// TestObjectDecodeErrorsSpeakWire covers tag 27 and fields maps.
func TestObjectDecodeErrorsSpeakWire(t *testing.T) {
	point := "d81b 82 6a" + hx("test.Point")
	tests := []struct {
		name string
		in   string
		into func() any
		off  int
		msg  string
	}{
		{"name not text", "d81b 82 01 a0", newAny, 0, "tag 27 must hold [type name, fields]: the type name must be a text string, not an unsigned integer"},
		{"name not text typed", "d81b 82 01 a0", func() any { return new(Point) }, 0, "the type name must be a text string, not an unsigned integer"},
		{"not a pair", "d81b 81 61 61", func() any { return new(Point) }, 0, "tag 27 must hold [type name, fields], not an array of 1 items"},
		{"content not array", "d81b 01", newAny, 0, "tag 27 must hold [type name, fields], not an unsigned integer"},
		{"integer field name", point + "a1 01 01", func() any { return new(Point) }, 14, "field names must be text strings, not an unsigned integer"},
		{"integer field name into any", point + "a1 01 01", newAny, 14, "field names must be text strings, not an unsigned integer"},
		{"array field name", point + "a1 80 01", func() any { return new(Point) }, 14, "field names must be text strings, not an array"},
		{"many unknown fields", point + "a3 6141 01 6142 01 6158 01", func() any { return new(Point) }, 17, `codec.Point has no field "A"`},
		{"array map key into any", "a1 80 01", newAny, 0, "map key of type array"},
		{"array map key into map", "a1 80 01", func() any { return new(map[string]int) }, 0, "cannot decode array map key into string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal(h(tt.in), tt.into())
			require.ErrorIs(t, err, ErrDecode)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.off, de.Offset, "%v", err)
			assert.Contains(t, err.Error(), tt.msg)
			assertNoInternals(t, err)
		})
	}
}

// TestBudgetEstimateBoundsAllocation checks the cost model against the
// memory decoding really allocates: the estimate must not fall short, or the
// limit would not bound anything.
func TestBudgetEstimateBoundsAllocation(t *testing.T) {
	g := &gen{rng: rand.New(rand.NewPCG(7, 7))}
	randomAnys := make([]any, 200)
	for i := range randomAnys {
		randomAnys[i] = g.value(4)
	}
	lines := make([]*Line, 300)
	for i := range lines {
		lines[i] = &Line{Points: []Point{{X: i}, {Y: i}}, Label: strings.Repeat("l", i%40)}
	}
	strs := make(map[string][]string, 500)
	for i := range 500 {
		strs["k"+strconv.Itoa(i)] = []string{"", strconv.Itoa(i), strings.Repeat("s", i%100)}
	}
	tests := []struct {
		name string
		in   []byte
		into func() any
	}{
		{"nulls into [][1024]float64", arrayOf(1000, h("f6")), func() any { return new([][1024]float64) }},
		{"nulls into [][64]float64", arrayOf(5000, h("f6")), func() any { return new([][64]float64) }},
		{"empty lists into [][]int", arrayOf(5000, h("80")), func() any { return new([][]int) }},
		{"empty lists into [][]Point", arrayOf(5000, h("80")), func() any { return new([][]Point) }},
		{"tiny maps into []map[string][]int", arrayOf(20000, h("a1 60 80")), func() any { return new([]map[string][]int) }},
		{"empty byte strings into [][]byte", arrayOf(50000, h("40")), func() any { return new([][]byte) }},
		{"big objects into []*bigFields", arrayOf(20, h("d81b 82 6e"+hx("test.bigFields")+"a0")), func() any { return new([]*bigFields) }},
		{"big objects into any", arrayOf(20, h("d81b 82 6e"+hx("test.bigFields")+"a0")), newAny},
		{"tiny keyed map into any", tinyKeyedMap(20000), newAny},
		{"tiny keyed map into map[int][]any", tinyKeyedMap(20000), func() any { return new(map[int][]any) }},
		{"random values into any", mustMarshal(t, randomAnys), newAny},
		{"random values into Tuple", mustMarshal(t, randomAnys), func() any { return new(Tuple) }},
		{"lines into []*Line", mustMarshal(t, lines), func() any { return new([]*Line) }},
		{"lines into any", mustMarshal(t, lines), newAny},
		{"strings map", mustMarshal(t, strs), func() any { return new(map[string][]string) }},
		{"strings map into any", mustMarshal(t, strs), newAny},
		{"everything", mustMarshal(t, []Everything{everything(t), everything(t)}), func() any { return new([]Everything) }},
		{"everything into any", mustMarshal(t, []Everything{everything(t), everything(t)}), newAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.into()
			typ := reflect.TypeOf(target).Elem()
			s := sizer{data: tt.in, limit: math.MaxUint64}
			if typ == typeAny {
				_, err := s.dyn(0)
				require.NoError(t, err)
			} else {
				p, err := planFor(typ)
				require.NoError(t, err)
				_, err = s.typed(p, 0)
				require.NoError(t, err)
			}
			var err error
			got := totalAlloc(func() { err = Unmarshal(tt.in, tt.into()) })
			require.NoError(t, err)
			// The target itself and small change are not in the estimate.
			slack := 4*uint64(typ.Size()) + 16<<10
			if raceEnabled {
				slack += s.used / 10 // the race runtime allocates a little more
			}
			assert.LessOrEqual(t, got, s.used+slack, "estimated %d bytes, allocated %d", s.used, got)
			t.Logf("input %d bytes, estimate %d, allocated %d", len(tt.in), s.used, got)
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	require.NoError(t, err)
	return b
}
