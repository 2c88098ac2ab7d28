package codec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// TestBuilderMatchesMarshal builds random records with Builder and checks
// the bytes equal Marshal of the same record as a Tuple.
func TestBuilderMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	link := Sum([]byte("x"))
	raw, err := Marshal(map[string]any{"k": []any{int64(1), "v"}})
	require.NoError(t, err)
	ints := []int64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -24, -25, -256, -257, -65536, -65537, math.MinInt64}
	for i := range 2000 {
		n := 1 + r.IntN(6)
		b := NewBuilder(0)
		b.Array(n)
		want := make(Tuple, n)
		for j := range n {
			switch r.IntN(7) {
			case 0:
				v := ints[r.IntN(len(ints))]
				b.Int(v)
				want[j] = v
			case 1:
				v := r.Uint64() >> r.IntN(64)
				b.Uint(v)
				want[j] = v
			case 2:
				s := string(make([]byte, r.IntN(300)))
				b.Text(s)
				want[j] = s
			case 3:
				p := make([]byte, r.IntN(70000))
				b.ByteString(p)
				want[j] = p
			case 4:
				b.Link(link)
				want[j] = link
			case 5:
				b.Null()
				want[j] = nil
			case 6:
				b.Raw(Raw(raw))
				want[j] = Raw(raw)
			}
		}
		enc, err := Marshal(want)
		require.NoError(t, err)
		require.Equal(t, enc, b.Bytes(), "record %d: %#v", i, want)
	}
	b := NewBuilder(8)
	b.Link(cid.Undef)
	require.Equal(t, []byte{0xf6}, b.Bytes())
	b.Reset()
	require.Empty(t, b.Bytes())
}

func TestByteStringHead(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 20} {
		p := make([]byte, n)
		enc, err := Marshal(p)
		require.NoError(t, err)
		b := NewBuilder(0)
		b.ByteStringHead(uint64(n))
		require.Equal(t, enc[:len(b.Bytes())], b.Bytes(), "n=%d", n)
		size, hl, err := ReadByteStringHead(enc)
		require.NoError(t, err)
		require.Equal(t, uint64(n), size)
		require.Equal(t, len(b.Bytes()), hl)
	}
	for _, bad := range [][]byte{nil, {0x01}, {0x5f}, {0x5a, 0x00}, {0x60}} {
		_, _, err := ReadByteStringHead(bad)
		require.ErrorIs(t, err, ErrDecode, "%x", bad)
	}
}
