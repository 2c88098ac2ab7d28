package store

import (
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// codecCBOR is the multicodec code of objects stored with Put ("cbor").
const codecCBOR = 0x51

// defaultPrefix is the CID prefix of objects stored with Put and PutStream:
// CIDv1, codec cbor, sha2-256 multihash.
var defaultPrefix = cid.Prefix{Version: 1, Codec: codecCBOR, MhType: multihash.SHA2_256, MhLength: -1}

// sum returns the CID of data under defaultPrefix. It is the one place that
// decides how the store names its own objects.
func sum(data []byte) cid.Cid {
	d := sha256.Sum256(data)
	return sha256CID(1, codecCBOR, d[:])
}

// sha256CID builds a CID (v0 or v1) from a 32-byte sha2-256 digest without
// going through the multihash registry (one allocation).
func sha256CID(version, codec uint64, digest []byte) cid.Cid {
	var mh [2 + sha256.Size]byte
	mh[0], mh[1] = multihash.SHA2_256, sha256.Size
	copy(mh[2:], digest)
	if version == 0 {
		return cid.NewCidV0(mh[:])
	}
	return cid.NewCidV1(codec, mh[:])
}

// allowedHashes are the multihash functions accepted when verifying bytes
// against a CID from outside. Everything else (identity, md5, sha1,
// murmur3, ...) is refused: it would not make verification meaningful.
var allowedHashes = map[uint64]string{
	multihash.SHA2_256:             "sha2-256",
	multihash.SHA2_512:             "sha2-512",
	multihash.SHA3_256:             "sha3-256",
	multihash.SHA3_512:             "sha3-512",
	multihash.BLAKE3:               "blake3",
	multihash.BLAKE2B_MIN + 32 - 1: "blake2b-256",
	multihash.BLAKE2B_MAX:          "blake2b-512",
}

// digester hashes a stream of bytes and names the result with a CID of a
// given prefix.
type digester struct {
	h      hash.Hash
	prefix cid.Prefix
}

// newDigester returns a digester for CIDs with prefix p, or an error
// wrapping ErrUnsupportedHash.
func newDigester(p cid.Prefix) (*digester, error) {
	name, ok := allowedHashes[p.MhType]
	if !ok {
		return nil, fmt.Errorf("%w: multihash code 0x%x is not accepted (accepted: sha2-256, sha2-512, sha3-256, sha3-512, blake2b-256, blake2b-512, blake3)",
			ErrUnsupportedHash, p.MhType)
	}
	switch p.Version {
	case 0:
		if p.MhType != multihash.SHA2_256 {
			return nil, fmt.Errorf("%w: cid v0 with %s", ErrUnsupportedHash, name)
		}
	case 1:
	default:
		return nil, fmt.Errorf("%w: cid version %d", ErrUnsupportedHash, p.Version)
	}
	var h hash.Hash
	if p.MhType == multihash.SHA2_256 {
		h = sha256.New() // crypto/sha256: uses SHA-NI where available
	} else {
		var err error
		if h, err = multihash.GetHasher(p.MhType); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnsupportedHash, name, err)
		}
	}
	if p.MhLength != -1 && p.MhLength != h.Size() {
		return nil, fmt.Errorf("%w: %s digest of %d bytes (only full-length %d-byte digests are accepted)",
			ErrUnsupportedHash, name, p.MhLength, h.Size())
	}
	return &digester{h: h, prefix: p}, nil
}

// Write adds b to the hash; it never fails.
func (d *digester) Write(b []byte) (int, error) { return d.h.Write(b) }

// cid returns the CID of everything written so far.
func (d *digester) cid() (cid.Cid, error) {
	var buf [64]byte
	digest := d.h.Sum(buf[:0])
	if d.prefix.MhType == multihash.SHA2_256 {
		return sha256CID(d.prefix.Version, d.prefix.Codec, digest), nil
	}
	mh, err := multihash.Encode(digest, d.prefix.MhType)
	if err != nil {
		return cid.Undef, fmt.Errorf("store: encode multihash: %w", err)
	}
	return cid.NewCidV1(d.prefix.Codec, mh), nil
}

// sumAs returns the CID of data under the prefix of want, for verifying
// bytes that are claimed to be want.
func sumAs(want cid.Cid, data []byte) (cid.Cid, error) {
	if !want.Defined() {
		return cid.Undef, fmt.Errorf("store: verify: undefined cid")
	}
	p := want.Prefix()
	if p.MhType == multihash.SHA2_256 && (p.MhLength == -1 || p.MhLength == sha256.Size) && p.Version <= 1 {
		d := sha256.Sum256(data)
		return sha256CID(p.Version, p.Codec, d[:]), nil
	}
	dg, err := newDigester(p)
	if err != nil {
		return cid.Undef, err
	}
	_, _ = dg.Write(data)
	return dg.cid()
}
