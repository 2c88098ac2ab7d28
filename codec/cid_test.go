package codec

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSum(t *testing.T) {
	data := []byte("some encoded bytes")
	c := Sum(data)
	assert.Equal(t, Prefix, c.Prefix())
	assert.Equal(t, uint64(1), c.Version())
	assert.Equal(t, uint64(0x51), c.Type())

	want, err := Prefix.Sum(data)
	require.NoError(t, err)
	assert.True(t, want.Equals(c), "Sum agrees with go-cid")

	d := sha256.Sum256(data)
	dec, err := mh.Decode(c.Hash())
	require.NoError(t, err)
	assert.Equal(t, d[:], dec.Digest)

	hs := Hasher()
	hs.Write(data[:5])
	hs.Write(data[5:])
	assert.True(t, c.Equals(CIDFromDigest(hs.Sum(nil))))
	assert.False(t, CIDFromDigest([]byte{1, 2}).Defined())

	assert.NotEqual(t, Sum([]byte("a")), Sum([]byte("b")))
	// Known answer: sha256("") under the cbor codec.
	assert.Equal(t, "bafireihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", Sum(nil).String())
}

func TestVerify(t *testing.T) {
	data := []byte("payload")
	require.NoError(t, Verify(Sum(data), data))

	err := Verify(Sum(data), []byte("tampered"))
	require.ErrorIs(t, err, ErrMismatch)
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, Sum(data), me.Want)
	assert.Equal(t, Sum([]byte("tampered")), me.Got)
	assert.Contains(t, err.Error(), "codec: CID mismatch: want bafi")

	// Other prefixes verify with their own hash function and codec.
	dagCBOR, err := cid.Prefix{Version: 1, Codec: 0x71, MhType: mh.SHA2_512, MhLength: 64}.Sum(data)
	require.NoError(t, err)
	require.NoError(t, Verify(dagCBOR, data))
	require.ErrorIs(t, Verify(dagCBOR, []byte("x")), ErrMismatch)

	v0, err := cid.Prefix{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: 32}.Sum(data)
	require.NoError(t, err)
	require.NoError(t, Verify(v0, data))

	err = Verify(cid.Undef, data)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrMismatch))
}

func TestLinks(t *testing.T) {
	c1, c2, c3 := Sum([]byte("1")), Sum([]byte("2")), Sum([]byte("3"))
	inner, err := Marshal(Tuple{c3})
	require.NoError(t, err)
	v := Tuple{
		c1,
		map[string]any{"z": c2, "a": Ref{c: c1}},
		Everything{Cid: c3, RefP: &Ref{c: c2}},
		Raw(inner),
		mustArray(t, []int{1}, []uint8{42}),
		nil, Ref{},
	}
	b, err := Marshal(v)
	require.NoError(t, err)
	got, err := Links(b)
	require.NoError(t, err)
	// Encounter order: map keys sorted ("a" before "z"); Everything's fields
	// sorted by encoded name ("Cid" before "RefP").
	assert.Equal(t, []cid.Cid{c1, c1, c2, c3, c2, c3}, got)

	none, err := Links(h("82 01 02"))
	require.NoError(t, err)
	assert.Empty(t, none)

	_, err = Links(h("82 01"))
	require.ErrorIs(t, err, ErrDecode)

	_, err = Links(h("82 00 d82a 42 0102"))
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, 2, de.Offset)
	assert.Contains(t, err.Error(), "link must be a byte string of 0x00")
}
