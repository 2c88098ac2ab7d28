package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gen builds random values in the form Unmarshal into any returns them, so
// that decoding gives back an equal value.
type gen struct {
	rng *rand.Rand
	nan bool // allow NaN (breaks equality, not byte stability)
}

func (g *gen) str() string {
	const alphabet = "abcXYZ019 _-é世界\u00ff\U0001F600"
	r := []rune(alphabet)
	n := g.rng.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteRune(r[g.rng.IntN(len(r))])
	}
	return b.String()
}

func (g *gen) bytes() []byte {
	n := g.rng.IntN(40)
	if g.rng.IntN(20) == 0 {
		n = 20000 + g.rng.IntN(5000) // above bigPayload
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

func (g *gen) float() float64 {
	switch g.rng.IntN(8) {
	case 0:
		return float64(float32(g.rng.NormFloat64()))
	case 1:
		return math.Inf(1 - 2*g.rng.IntN(2))
	case 2:
		if g.nan {
			return math.NaN()
		}
		return 0
	case 3:
		return float64(g.rng.IntN(100)) / 4
	case 4:
		return math.Copysign(0, -1)
	}
	return g.rng.NormFloat64() * math.Pow(10, float64(g.rng.IntN(40)-20))
}

func (g *gen) int() any {
	switch g.rng.IntN(6) {
	case 0:
		return int64(g.rng.IntN(24))
	case 1:
		return -int64(g.rng.IntN(300))
	case 2:
		return int64(math.MinInt64)
	case 3:
		return uint64(math.MaxInt64) + 1 + g.rng.Uint64N(math.MaxInt64)
	case 4:
		return int64(math.MaxInt64)
	}
	return g.rng.Int64() - math.MaxInt64/2
}

func (g *gen) array() Array {
	dt := DType(1 + g.rng.IntN(int(Float64)))
	shape := make([]int, g.rng.IntN(4))
	for i := range shape {
		shape[i] = g.rng.IntN(5)
	}
	if g.rng.IntN(15) == 0 {
		shape = []int{5000 + g.rng.IntN(5000)}
	}
	n, _ := byteLen(dt, shape)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(g.rng.Uint32())
		if dt == Bool {
			data[i] &= 1
		}
	}
	return Array{DType: dt, Shape: shape, Data: data}
}

func (g *gen) value(depth int) any {
	leaf := depth <= 0
	k := g.rng.IntN(20)
	if leaf {
		k = g.rng.IntN(10)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return g.rng.IntN(2) == 0
	case 2, 3:
		return g.int()
	case 4:
		return g.float()
	case 5:
		return g.str()
	case 6:
		return g.bytes()
	case 7:
		return Sum(g.bytes())
	case 8:
		return g.array()
	case 9:
		return Bin{a: g.rng.Uint32(), b: g.rng.Uint32()}
	case 10, 11:
		l := make([]any, g.rng.IntN(5))
		for i := range l {
			l[i] = g.value(depth - 1)
		}
		return l
	case 12, 13:
		m := map[string]any{}
		for range g.rng.IntN(5) {
			m[g.str()] = g.value(depth - 1)
		}
		return m
	case 14:
		m := map[any]any{int64(g.rng.IntN(10) - 5): g.value(depth - 1)}
		for range g.rng.IntN(4) {
			switch g.rng.IntN(3) {
			case 0:
				m[g.str()] = g.value(depth - 1)
			case 1:
				m[g.rng.IntN(2) == 0] = g.value(depth - 1)
			default:
				m[g.rng.Int64()] = g.value(depth - 1)
			}
		}
		return m
	case 15:
		pts := make([]Point, g.rng.IntN(3))
		for i := range pts {
			pts[i] = Point{X: g.rng.IntN(100), Y: -g.rng.IntN(100)}
		}
		return Line{Points: pts, Label: g.str()}
	case 16:
		return Derived{Base: Base{ID: g.rng.Int(), Kind: g.str()}, base2: base2{Inner: g.str()}, Extra: g.float()}
	case 17:
		var n *Node
		for range g.rng.IntN(4) {
			n = &Node{Val: g.rng.Int(), Next: n}
		}
		if n == nil {
			return Node{}
		}
		return *n
	case 18:
		return Square{Side: g.float()}
	}
	return TaggedEmbed{Base: Base{ID: g.rng.IntN(9)}, N: g.rng.IntN(9)}
}

// TestPropertyRoundTrip: for random values of every kind, encode -> decode
// gives an equal value, and encode -> decode -> encode gives identical bytes,
// with large payloads spliced or not.
func TestPropertyRoundTrip(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, nan := range []bool{false, true} {
		g := &gen{rng: rand.New(rand.NewPCG(42, uint64(n))), nan: nan}
		for i := range n {
			v := g.value(4)
			b1, err := Marshal(v)
			require.NoError(t, err, "value %d: %#v", i, v)
			var x any
			require.NoError(t, Unmarshal(b1, &x), "value %d: %x", i, b1)
			if !nan {
				require.Equal(t, v, x, "value %d", i)
			}
			b2, err := Marshal(x)
			require.NoError(t, err)
			require.True(t, bytes.Equal(b1, b2), "value %d: re-encoding changed the bytes\n%x\n%x", i, b1, b2)

			// Decoding as Raw and re-embedding keeps the bytes.
			var r Raw
			require.NoError(t, Unmarshal(b1, &r))
			b3, err := Marshal(r)
			require.NoError(t, err)
			require.True(t, bytes.Equal(b1, b3))

			// Splicing does not change the bytes.
			old := bigPayload
			bigPayload = 1
			b4, err := Marshal(v)
			bigPayload = old
			require.NoError(t, err)
			require.True(t, bytes.Equal(b1, b4), "value %d: splicing changed the bytes", i)
		}
	}
}

// TestPropertyTyped fills Everything randomly and round-trips it typed.
func TestPropertyTyped(t *testing.T) {
	g := &gen{rng: rand.New(rand.NewPCG(7, 7))}
	for i := range 300 {
		e := everything(t)
		e.I, e.I64, e.U64 = g.rng.Int(), g.rng.Int64(), g.rng.Uint64()
		e.F32, e.F64 = float32(g.rng.NormFloat64()), g.float()
		e.S, e.Bytes = g.str(), g.bytes()
		e.Any = g.value(3)
		e.MAny = map[string]any{g.str(): g.value(2)}
		e.Tup = Tuple{g.value(2), g.value(2)}
		e.Nd = g.array()
		if g.rng.IntN(2) == 0 {
			e.Shape = Square{Side: 1}
		}
		b, err := Marshal(e)
		require.NoError(t, err)
		var got Everything
		require.NoError(t, Unmarshal(b, &got), "value %d", i)
		require.Equal(t, e, got, "value %d", i)
		b2, err := Marshal(got)
		require.NoError(t, err)
		require.True(t, bytes.Equal(b, b2), "value %d", i)
	}
}

func TestQuickPrimitives(t *testing.T) {
	roundTrip := func(v any, into any) bool {
		b, err := Marshal(v)
		if err != nil {
			return false
		}
		if err := Unmarshal(b, into); err != nil {
			return false
		}
		b2, err := Marshal(into)
		return err == nil && bytes.Equal(b, b2)
	}
	f := func(i int64, u uint64, i8 int8, u16 uint16, f32 float32, f64 float64, s string, bs []byte, xs []int32, m map[string]uint8) bool {
		var (
			gi   int64
			gu   uint64
			gi8  int8
			gu16 uint16
			gf32 float32
			gf64 float64
			gs   string
			gbs  []byte
			gxs  []int32
			gm   map[string]uint8
		)
		return roundTrip(i, &gi) && gi == i &&
			roundTrip(u, &gu) && gu == u &&
			roundTrip(i8, &gi8) && gi8 == i8 &&
			roundTrip(u16, &gu16) && gu16 == u16 &&
			roundTrip(f32, &gf32) && (gf32 == f32 || f32 != f32) &&
			roundTrip(f64, &gf64) && (gf64 == f64 || f64 != f64) &&
			roundTrip(s, &gs) && gs == s &&
			roundTrip(bs, &gbs) && bytes.Equal(gbs, bs) &&
			roundTrip(xs, &gxs) && assert.ObjectsAreEqual(xs, gxs) &&
			roundTrip(m, &gm) && assert.ObjectsAreEqual(m, gm)
	}
	require.NoError(t, quick.Check(f, &quick.Config{MaxCount: 500, Rand: nil}))
}

// TestScannerAgreesWithFxamacker mutates valid encodings at random: our
// offset finder must call an input malformed exactly when fxamacker does,
// and point inside it.
func TestScannerAgreesWithFxamacker(t *testing.T) {
	g := &gen{rng: rand.New(rand.NewPCG(3, 4))}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		b, err := Marshal(g.value(3))
		require.NoError(t, err)
		if len(b) > 3000 {
			continue
		}
		for range 1 + g.rng.IntN(3) {
			switch g.rng.IntN(4) {
			case 0:
				b = b[:g.rng.IntN(len(b)+1)]
			case 1:
				if len(b) > 0 {
					b[g.rng.IntN(len(b))] = byte(g.rng.Uint32())
				}
			case 2:
				b = append(b, byte(g.rng.Uint32()))
			case 3:
				if len(b) > 0 {
					b[g.rng.IntN(len(b))] ^= 1 << g.rng.IntN(8)
				}
			}
		}
		want := dmTyped.Wellformed(b)
		got := scanSyntax(b)
		require.Equal(t, want == nil, got == nil, "input %d %x: fxamacker %v, scanner %+v", i, b, want, got)
		if got != nil {
			require.True(t, got.off >= 0 && got.off <= len(b), "offset %d outside input", got.off)
		}
	}
}
