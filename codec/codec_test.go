package codec

import (
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h decodes hex, ignoring spaces.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func hx(s string) string { return hex.EncodeToString([]byte(s)) }

var (
	testCid  = Sum([]byte("hello"))
	testCid2 = Sum([]byte("world"))
)

func mustArray[T Number](t testing.TB, shape []int, vals []T) Array {
	t.Helper()
	a, err := NewArray(shape, vals)
	require.NoError(t, err)
	return a
}

func TestGoldenEncoding(t *testing.T) {
	cidHex := "00" + hex.EncodeToString(testCid.Bytes())
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"zero", 0, "00"},
		{"minus one", -1, "20"},
		{"24", 24, "1818"},
		{"uint64 max", uint64(math.MaxUint64), "1bffffffffffffffff"},
		{"int64 min", int64(math.MinInt64), "3b7fffffffffffffff"},
		{"int8", int8(-100), "3863"},
		{"float 1.5 shortest", 1.5, "f93e00"},
		{"float32 0.1", float32(0.1), "fa3dcccccd"},
		{"float64 0.1", 0.1, "fb3fb999999999999a"},
		{"float integral", 2.0, "f94000"},
		{"NaN", math.NaN(), "f97e00"},
		{"-Inf", math.Inf(-1), "f9fc00"},
		{"-0", math.Copysign(0, -1), "f98000"},
		{"true", true, "f5"},
		{"nil", nil, "f6"},
		{"string", "a", "6161"},
		{"empty bytes", []byte{}, "40"},
		{"nil bytes", []byte(nil), "f6"},
		{"fixed bytes", [3]byte{1, 2, 3}, "43010203"},
		{"nil slice", []int(nil), "f6"},
		{"empty slice", []int{}, "80"},
		{"int array", [2]int16{1, -1}, "820120"},
		{"map sorted bytewise", map[string]int{"b": 1, "a": 2, "aa": 3}, "a3 6161 02 6162 01 626161 03"},
		{"int keys sorted", map[int]bool{-1: true, 10: false, 1: true}, "a3 01f5 0af4 20f5"},
		{"any keys", map[any]int{"x": 1, 2: 2, true: 3}, "a3 0202 6178 01 f503"},
		{"tuple", Tuple{1, "a", nil}, "83 01 6161 f6"},
		{"registered struct", Point{X: 1, Y: 2}, "d81b 82 6a" + hx("test.Point") + "a2 6158 01 6159 02"},
		{"pointer to struct", &Point{X: 1, Y: 2}, "d81b 82 6a" + hx("test.Point") + "a2 6158 01 6159 02"},
		{"codec tag and skip", Line{Label: "l", Skip: 5, hidden: 6}, "d81b 82 69" + hx("test.Line") + "a2 656c6162656c 616c 66506f696e7473 f6"},
		{"embedded flattened", Derived{Base: Base{ID: 7, Kind: "k"}, base2: base2{Inner: "i"}, Extra: 0.5},
			"d81b 82 6c" + hx("test.Derived") + "a4 624944 07 644b696e64 616b 654578747261 f93800 65496e6e6572 6169"},
		{"tagged embedded is a field", TaggedEmbed{Base: Base{ID: 1}, N: 2},
			"d81b 82 70" + hx("test.TaggedEmbed") + "a2 614e 02 6462617365 d81b 82 69" + hx("test.Base") + "a2 624944 01 644b696e64 60"},
		{"binary type", Bin{a: 1, b: 2}, "d81b 82 68" + hx("test.Bin") + "48 00000001 00000002"},
		{"cid", testCid, "d82a 5825" + cidHex},
		{"undefined cid", cid.Undef, "f6"},
		{"linker", Ref{c: testCid}, "d82a 5825" + cidHex},
		{"undefined linker", Ref{}, "f6"},
		{"float64 array", mustArray(t, []int{2}, []float64{1, 2}), "d828 82 8102 d856 50 000000000000f03f 0000000000000040"},
		{"int32 matrix", mustArray(t, []int{2, 1}, []int32{1, -1}), "d828 82 820201 d84e 48 01000000 ffffffff"},
		{"uint8 array", mustArray(t, []int{3}, []uint8{1, 2, 3}), "d828 82 8103 d840 43 010203"},
		{"0-d array", mustArray(t, nil, []int64{5}), "d828 82 80 d84f 48 0500000000000000"},
		{"empty array", mustArray(t, []int{0, 3}, []float32{}), "d828 82 820003 d855 40"},
		{"bool array", Array{DType: Bool, Shape: []int{2}, Data: []byte{1, 0}}, "d828 82 8102 42 0100"},
		{"zero array", Array{}, "f6"},
		{"raw", Raw(h("820102")), "820102"},
		{"empty raw", Raw(nil), "f6"},
		{"named scalar", Celsius(1.5), "f93e00"},
		{"stringer scalar", Level(3), "03"},
		{"hooked scalar", Hooked(4), "04"},
		{"nil pointer", (*Point)(nil), "f6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.v)
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(tt.want, " ", ""), hex.EncodeToString(got))
		})
	}
}

func everything(t testing.TB) Everything {
	one := 1
	pone := &one
	return Everything{
		B: true, I: -1, I8: -8, I16: -16, I32: -32, I64: math.MinInt64,
		U: 1, U8: 8, U16: 16, U32: 32, U64: math.MaxUint64,
		F32: 1.25, F64: math.Pi, S: "héllo",
		Bytes: []byte{1, 2, 3}, Fixed: [4]byte{4, 5, 6, 7},
		Ints: []int{1, 2, 3}, Arr: [3]int16{-1, 0, 1},
		M:    map[string]int{"a": 1, "b": 2},
		MI:   map[int64]string{-5: "m", 7: "s"},
		MB:   map[bool]float64{true: 1, false: 0.5},
		MAny: map[string]any{"k": int64(1), "l": []any{"x", nil}},
		P:    &Point{X: 3, Y: 4}, PP: &pone,
		Any:   map[string]any{"nested": Point{X: 9}},
		Shape: &Circle{R: 2},
		Cid:   testCid, Ref: Ref{c: testCid2}, RefP: &Ref{c: testCid},
		Nd:  mustArray(t, []int{2, 2}, []float64{1, 2, 3, 4}),
		NdP: &Array{DType: Bool, Shape: []int{1}, Data: []byte{1}},
		Raw: Raw(h("a1616101")),
		Tup: Tuple{int64(1), "two", testCid, Point{X: 1}},
		Bin: Bin{a: 1, b: 2}, BinP: &Bin{a: 3},
		C: -40, L: 2, H: 5, HS: []Hooked{1, 2},
		Nodes: []*Node{{Val: 1, Next: &Node{Val: 2}}, nil},
	}
}

func TestRoundTripTyped(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"int", 42},
		{"negative int8", int8(-128)},
		{"uint64", uint64(math.MaxUint64)},
		{"float32", float32(3.25)},
		{"string", "dray"},
		{"bytes", []byte("bytes")},
		{"fixed bytes", [2]byte{9, 8}},
		{"slice", []string{"a", "b"}},
		{"nested slices", [][]int{{1}, {2, 3}}},
		{"bytes slices", [][]byte{{1}, nil, {}}},
		{"map", map[string][]int{"a": {1}}},
		{"map of structs", map[string]Point{"o": {}, "p": {X: 1, Y: -1}}},
		{"map int keys", map[uint8]string{1: "a", 255: "b"}},
		{"pointer", &Point{X: 1}},
		{"struct", Line{Points: []Point{{1, 2}, {3, 4}}, Label: "line"}},
		{"embedded", Derived{Base: Base{ID: 1, Kind: "k"}, base2: base2{Inner: "in"}, Extra: 2.5}},
		{"tagged embedded", TaggedEmbed{Base: Base{ID: 1, Kind: "k"}, N: 3}},
		{"recursive", Node{Val: 1, Next: &Node{Val: 2, Next: &Node{Val: 3}}}},
		{"binary", Bin{a: 7, b: 8}},
		{"cid", testCid},
		{"ref", Ref{c: testCid}},
		{"array", mustArray(t, []int{3}, []uint16{1, 2, 65535})},
		{"tuple", Tuple{int64(1), "a", []any{true}, map[string]any{"x": 1.5}}},
		{"raw", Raw(h("83010203"))},
		{"everything", everything(t)},
		{"pointer to everything", func() *Everything { e := everything(t); return &e }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			require.NoError(t, err)
			p := reflect.New(reflect.TypeOf(tt.v))
			require.NoError(t, Unmarshal(b, p.Interface()))
			assert.Equal(t, tt.v, p.Elem().Interface())
			b2, err := Marshal(p.Elem().Interface())
			require.NoError(t, err)
			assert.Equal(t, b, b2, "re-encoding changed the bytes")
		})
	}
}

func TestRoundTripDynamic(t *testing.T) {
	arr := mustArray(t, []int{2}, []int8{-1, 1})
	tests := []struct {
		name string
		v    any
		want any
	}{
		{"int", 5, int64(5)},
		{"uint8", uint8(5), int64(5)},
		{"negative", -5, int64(-5)},
		{"big uint", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"float32", float32(1.5), 1.5},
		{"string", "s", "s"},
		{"bytes", []byte{1}, []byte{1}},
		{"fixed bytes", [2]byte{1, 2}, []byte{1, 2}},
		{"nil", nil, nil},
		{"list", []int{1, 2}, []any{int64(1), int64(2)}},
		{"tuple", Tuple{"a", 1}, []any{"a", int64(1)}},
		{"string map", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"int map", map[int]string{1: "a", -1: "b"}, map[any]any{int64(1): "a", int64(-1): "b"}},
		{"bool map", map[bool]int{true: 1}, map[any]any{true: int64(1)}},
		{"struct", Point{X: 1}, Point{X: 1}},
		{"struct pointer", &Point{X: 1}, Point{X: 1}},
		{"binary", Bin{a: 1}, Bin{a: 1}},
		{"cid", testCid, testCid},
		{"linker", Ref{c: testCid}, testCid},
		{"undefined cid", cid.Undef, nil},
		{"array", arr, arr},
		{"zero array", Array{}, nil},
		{"raw", Raw(h("820102")), []any{int64(1), int64(2)}},
		{"nested", map[string]any{"p": []any{Point{Y: 2}, testCid}}, map[string]any{"p": []any{Point{Y: 2}, testCid}}},
		{"struct with interface", Everything{Any: Square{Side: 2}}.Any, Square{Side: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			require.NoError(t, err)
			var got any
			require.NoError(t, Unmarshal(b, &got))
			assert.Equal(t, tt.want, got)
			b2, err := Marshal(got)
			require.NoError(t, err)
			assert.Equal(t, b, b2, "re-encoding the dynamic value changed the bytes")
		})
	}
}

func TestNonCanonicalInputAccepted(t *testing.T) {
	tests := []struct {
		name, in, canon string
	}{
		{"long int head", "1801", "01"},
		{"eight byte int", "1b0000000000000001", "01"},
		{"unsorted keys", "a2 6162 01 6161 02", "a2 6161 02 6162 01"},
		{"float64 for 1.5", "fb3ff8000000000000", "f93e00"},
		{"long length", "5801 ff", "41ff"},
		{"undefined as null", "f7", "f6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			require.NoError(t, Unmarshal(h(tt.in), &v))
			b, err := Marshal(v)
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(tt.canon, " ", ""), hex.EncodeToString(b))
		})
	}
}

func TestNullDecodesToZero(t *testing.T) {
	null := h("f6")
	targets := []any{
		new(int), new(string), new([]int), new(map[string]int), new(*Point), new(Point),
		new(Array), new(cid.Cid), new(Ref), new(any), new(Shape), new([2]int), new([3]byte),
		new(Bin), new(Tuple), new(Celsius), new(Hooked), new([]byte),
	}
	for _, p := range targets {
		t.Run(reflect.TypeOf(p).Elem().String(), func(t *testing.T) {
			rv := reflect.ValueOf(p)
			require.NoError(t, Unmarshal(null, p))
			assert.True(t, rv.Elem().IsZero(), "got %#v", rv.Elem().Interface())
		})
	}
	var r Raw
	require.NoError(t, Unmarshal(null, &r))
	assert.Equal(t, Raw(null), r, "Raw captures the null item")
}

func TestUnmarshalReplacesAndKeepsOnError(t *testing.T) {
	m := map[string]int{"old": 1}
	b, err := Marshal(map[string]int{"new": 2})
	require.NoError(t, err)
	require.NoError(t, Unmarshal(b, &m))
	assert.Equal(t, map[string]int{"new": 2}, m)

	p := Line{Label: "keep", Points: []Point{{1, 1}}}
	b, err = Marshal(Line{Label: "x"})
	require.NoError(t, err)
	require.NoError(t, Unmarshal(b, &p))
	assert.Equal(t, Line{Label: "x"}, p)

	p = Line{Label: "keep"}
	require.Error(t, Unmarshal(h("d81b 82 69"+hx("test.Line")+"a1 656c6162656c 01"), &p))
	assert.Equal(t, Line{Label: "keep"}, p, "unchanged on error")

	n := 7
	require.Error(t, Unmarshal(h("61"), &n))
	assert.Equal(t, 7, n)
}

func TestInterfaceTargets(t *testing.T) {
	b, err := Marshal(Square{Side: 3})
	require.NoError(t, err)
	var s Shape
	require.NoError(t, Unmarshal(b, &s))
	assert.Equal(t, Square{Side: 3}, s)

	b, err = Marshal(&Circle{R: 1})
	require.NoError(t, err)
	require.NoError(t, Unmarshal(b, &s))
	assert.Equal(t, &Circle{R: 1}, s, "pointer receivers get a pointer")

	b, err = Marshal(Point{})
	require.NoError(t, err)
	err = Unmarshal(b, &s)
	require.ErrorIs(t, err, ErrDecode)
	assert.Contains(t, err.Error(), "codec.Point does not implement codec.Shape")
}

func TestLinkTargets(t *testing.T) {
	b, err := Marshal(Tuple{Ref{c: testCid}, testCid})
	require.NoError(t, err)

	var refs []Ref
	require.NoError(t, Unmarshal(b, &refs))
	assert.Equal(t, []Ref{{c: testCid}, {c: testCid}}, refs)

	var cids [2]cid.Cid
	require.NoError(t, Unmarshal(b, &cids))
	assert.Equal(t, [2]cid.Cid{testCid, testCid}, cids)

	// SetLink errors are reported.
	other, err := cid.Prefix{Version: 1, Codec: 0x71, MhType: 0x12, MhLength: 32}.Sum([]byte("x"))
	require.NoError(t, err)
	b, err = Marshal(other)
	require.NoError(t, err)
	var r Ref
	err = Unmarshal(b, &r)
	require.ErrorIs(t, err, ErrDecode)
	assert.Contains(t, err.Error(), "codec.Ref.SetLink: not a cbor CID")

	// A Linker without LinkSetter encodes but cannot be decoded into.
	b, err = Marshal(OnlyLinker{c: testCid})
	require.NoError(t, err)
	var ol OnlyLinker
	err = Unmarshal(b, &ol)
	require.ErrorIs(t, err, ErrDecode)
	assert.Contains(t, err.Error(), "does not implement codec.LinkSetter")
}

func TestRecursionLimits(t *testing.T) {
	var list *Node
	for i := range 20 {
		list = &Node{Val: i, Next: list}
	}
	b, err := Marshal(list)
	require.NoError(t, err)
	var got *Node
	require.NoError(t, Unmarshal(b, &got))
	assert.Equal(t, list, got)

	for i := range 20 {
		list = &Node{Val: i, Next: list}
	}
	_, err = Marshal(list)
	var ee *EncodeError
	require.ErrorAs(t, err, &ee)
	require.ErrorIs(t, err, ErrTooDeep)

	cyc := &Node{Val: 1}
	cyc.Next = cyc
	_, err = Marshal(cyc)
	require.ErrorAs(t, err, &ee)
	require.ErrorIs(t, err, ErrTooDeep)
	assert.Contains(t, err.Error(), "nested too deeply")

	self := []any{nil}
	self[0] = self
	_, err = Marshal(self)
	require.ErrorAs(t, err, &ee)

	m := map[string]any{}
	m["m"] = m
	_, err = Marshal(m)
	require.ErrorAs(t, err, &ee)
}

func TestMapKeyRules(t *testing.T) {
	_, err := Marshal(map[any]int{1: 1, uint8(1): 2})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "two map keys encode the same")

	_, err = Marshal(map[any]int{1.5: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keys must be strings, integers or bools")

	_, err = Marshal(map[float64]int{1.5: 1})
	require.ErrorIs(t, err, ErrCannotTravel)

	// Decoding float keys into any is refused.
	var v any
	err = Unmarshal(h("a1 f93e00 01"), &v)
	require.ErrorIs(t, err, ErrDecode)
	assert.Contains(t, err.Error(), "map key of type float")
}

func TestConcurrentUse(t *testing.T) {
	type Conc struct{ A []int }
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g == 0 {
				assert.NoError(t, Register[Conc]("test.Conc"))
			}
			for i := range 200 {
				v := Tuple{i, everything(t), Point{X: i}}
				b, err := Marshal(v)
				if !assert.NoError(t, err) {
					return
				}
				var got any
				if !assert.NoError(t, Unmarshal(b, &got)) {
					return
				}
				b2, err := Marshal(got)
				assert.NoError(t, err)
				assert.Equal(t, b, b2)
				_, _ = Marshal(Conc{A: []int{i}}) // registered or not, never racy
			}
		}()
	}
	wg.Wait()
	b, err := Marshal(Conc{A: []int{1}})
	require.NoError(t, err)
	var c Conc
	require.NoError(t, Unmarshal(b, &c))
	assert.Equal(t, Conc{A: []int{1}}, c)
}

// TestTooDeep: a value nested past MaxDepth fails with ErrTooDeep in one
// short line that names the limit, however deep it is (no path as long as
// the value), and one at the limit encodes.
func TestTooDeep(t *testing.T) {
	nest := func(depth int) any {
		var v any = 1
		for range depth {
			v = []any{v}
		}
		return v
	}
	for _, tt := range []struct {
		name  string
		v     any
		fails bool
	}{
		{"at the limit", nest(MaxDepth), false},
		{"one past the limit", nest(MaxDepth + 1), true},
		{"far past the limit", nest(1000), true},
		{"typed, far past", func() any {
			var v []any
			for range 5000 {
				v = []any{v}
			}
			return v
		}(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal(tt.v)
			if !tt.fails {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrTooDeep)
			msg := err.Error()
			assert.Contains(t, msg, "64 levels")
			assert.Contains(t, msg, "codec.MaxDepth")
			assert.NotContains(t, msg, "\n")
			assert.Less(t, len(msg), 160, "a short line: %q", msg)

			_, err = ToJSONValue(tt.v)
			if err != nil { // JSON has no depth limit of its own below the recursion bound
				assert.Less(t, len(err.Error()), 160)
			}
		})
	}
}
