package codec

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// fuzzSeeds are encodings of every kind of value, plus a few broken inputs.
func fuzzSeeds(t testing.TB) [][]byte {
	values := []any{
		nil, true, 0, -1, uint64(1 << 63), 1.5, float32(0.1), "text", []byte{0, 1},
		[3]byte{1, 2, 3}, []int{1, 2}, map[string]int{"a": 1}, map[int]any{-1: "x", 2: nil},
		Tuple{1, "a", nil}, Point{X: 1, Y: -1}, &Line{Points: []Point{{}}, Label: "l"},
		Derived{Base: Base{ID: 1}}, TaggedEmbed{N: 1}, Node{Val: 1, Next: &Node{}}, Bin{a: 1},
		testCid, Ref{c: testCid2}, mustArray(t, []int{2, 2}, []float64{1, 2, 3, 4}),
		Array{DType: Bool, Shape: []int{2}, Data: []byte{0, 1}}, mustArray(t, nil, []int8{-1}),
		Raw(h("820102")), everything(t), Square{Side: 1},
	}
	var seeds [][]byte
	for _, v := range values {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("seed %#v: %v", v, err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		"", "83 01 02", "5a 40000000 01", "9a 3b9aca00", "9f ff", "a2 6161 01 6161 02",
		"d81b 82 63 666f6f a0", "d828 82 8120 d856 40", "d82a 42 0102", "c2 41 01", "1801",
		"a2 6162 01 6161 02", "fb3ff8000000000000", strings.Repeat("81", 70) + "00",
		"d828 82 820120 d856 40", "d828 82 8161 61 d856 40", "d828 83 80 40 40", "d828 82 81 01 d863 41 00",
		"d81b 82 01 a0", "d81b 81 61 61", "a1 80 01", "a1 d82a 42 0001 01",
		"d81b 82 6a" + hx("test.Point") + "a3 6141 01 6142 01 6158 01",
	} {
		seeds = append(seeds, h(s))
	}
	return append(seeds, adversarialSeeds()...)
}

// adversarialSeeds are small inputs that ask for much more memory than
// their size when decoded into some fuzz target.
func adversarialSeeds() [][]byte {
	bigObj := h("d81b 82 6e" + hx("test.bigFields") + "a0")
	return [][]byte{
		arrayOf(9000, h("f6")), // [][1024]float64: 70 MiB
		arrayOf(48, bigObj),    // 48 x 1.5 MiB into any
		arrayOf(8000, h("40")), // [][]byte
		append(h("d81b 82 6e"+hx("test.bigHolder")+"a1 64"+hx("Rows")), arrayOf(9000, h("80"))...),
	}
}

// fuzzTargets are the typed targets FuzzDecode decodes into besides any.
var fuzzTargets = []reflect.Type{
	reflect.TypeFor[Everything](), reflect.TypeFor[Point](), reflect.TypeFor[Line](),
	reflect.TypeFor[*Node](), reflect.TypeFor[[]int](), reflect.TypeFor[map[string]any](),
	reflect.TypeFor[map[int8]string](), reflect.TypeFor[Array](), reflect.TypeFor[Tuple](),
	reflect.TypeFor[cid.Cid](), reflect.TypeFor[Ref](), reflect.TypeFor[Shape](),
	reflect.TypeFor[[3]byte](), reflect.TypeFor[[2]int](), reflect.TypeFor[Bin](),
	reflect.TypeFor[string](), reflect.TypeFor[uint16](), reflect.TypeFor[Raw](),
	reflect.TypeFor[[][1024]float64](), reflect.TypeFor[[]map[string][]int](), reflect.TypeFor[[][]byte](),
	reflect.TypeFor[bigHolder](), reflect.TypeFor[map[any]int](),
}

// reencodable reports whether a Marshal error after a successful decode is
// legitimate: a Raw field captured non-canonical bytes as received.
func reencodable(err error) bool {
	return err == nil || !strings.Contains(err.Error(), "raw value is not canonical")
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if (dmTyped.Wellformed(data) == nil) != (scanSyntax(data) == nil) {
			t.Fatalf("scanner and fxamacker disagree on %x", data)
		}

		var x any
		err := Unmarshal(data, &x)
		checkDecodeErr(t, data, err)
		_, lerr := Links(data)
		if err == nil {
			if lerr != nil {
				t.Fatalf("decoded but Links failed: %v", lerr)
			}
			stable(t, x, reflect.TypeFor[any]())
		}

		for _, typ := range fuzzTargets {
			p := reflect.New(typ)
			err := Unmarshal(data, p.Interface())
			checkDecodeErr(t, data, err)
			if err == nil {
				stable(t, p.Elem().Interface(), typ)
			}
		}
	})
}

func checkDecodeErr(t *testing.T, data []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
		t.Fatalf("decode error is not a *DecodeError: %v", err)
	}
	if de.Offset < 0 || de.Offset > len(data) {
		t.Fatalf("offset %d outside input of %d bytes: %v", de.Offset, len(data), err)
	}
	if !strings.HasPrefix(err.Error(), "codec: decode at offset ") {
		t.Fatalf("bad message: %v", err)
	}
	for _, s := range internalNames {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks codec internals (%q): %v", s, err)
		}
	}
}

// stable checks that a decoded value re-encodes, decodes again into the same
// type, and re-encodes to the same bytes.
func stable(t *testing.T, v any, typ reflect.Type) {
	t.Helper()
	b1, err := Marshal(v)
	if err != nil {
		if reencodable(err) {
			t.Fatalf("decoded %T does not re-encode: %v", v, err)
		}
		return
	}
	p := reflect.New(typ)
	if err := Unmarshal(b1, p.Interface()); err != nil {
		t.Fatalf("re-encoded %T (%x) does not decode: %v", v, b1, err)
	}
	b2, err := Marshal(p.Elem().Interface())
	if err != nil {
		t.Fatalf("second encode of %T failed: %v", v, err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("unstable encoding of %T:\n%x\n%x", v, b1, b2)
	}
}

// TestFuzzSeedsPass runs the fuzz property on the seeds in normal test runs.
func TestFuzzSeedsPass(t *testing.T) {
	for _, s := range fuzzSeeds(t) {
		var x any
		err := Unmarshal(s, &x)
		checkDecodeErr(t, s, err)
		if err == nil {
			stable(t, x, reflect.TypeFor[any]())
		}
	}
}
