package codec

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// multicodecCBOR is the multicodec of plain CBOR ("cbor", 0x51).
const multicodecCBOR = 0x51

// Prefix describes the CIDs Sum makes: CIDv1, multicodec 0x51 ("cbor"),
// multihash sha2-256 with a 32-byte digest.
var Prefix = cid.Prefix{Version: 1, Codec: multicodecCBOR, MhType: mh.SHA2_256, MhLength: sha256.Size}

// cidHeader is the binary CID up to the digest: version 1, codec 0x51,
// multihash sha2-256, length 32 (all single-byte varints).
var cidHeader = [4]byte{1, multicodecCBOR, mh.SHA2_256, sha256.Size}

// Sum returns the CID of encoded bytes (see Prefix). CIDs are computed over
// the bytes as given, so equal values, having equal canonical encodings,
// have equal CIDs.
func Sum(data []byte) cid.Cid {
	d := sha256.Sum256(data)
	return CIDFromDigest(d[:])
}

// Hasher returns a new hash.Hash computing the digest Sum uses (sha2-256),
// for callers that stream bytes; finish with CIDFromDigest(h.Sum(nil)).
func Hasher() hash.Hash { return sha256.New() }

// CIDFromDigest returns the CID (see Prefix) whose sha2-256 digest is digest.
// It returns cid.Undef if digest is not 32 bytes long.
func CIDFromDigest(digest []byte) cid.Cid {
	if len(digest) != sha256.Size {
		return cid.Undef
	}
	b := make([]byte, 0, len(cidHeader)+sha256.Size)
	b = append(b, cidHeader[:]...)
	b = append(b, digest...)
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef
	}
	return c
}

// Verify checks that data hashes to c, recomputing with c's own prefix (so
// CIDs made elsewhere, with another codec or hash function, verify too). A
// mismatch returns a *MismatchError; errors.Is(err, ErrMismatch).
func Verify(c cid.Cid, data []byte) error {
	if !c.Defined() {
		return errors.New("codec: verify: undefined CID")
	}
	p := c.Prefix()
	var got cid.Cid
	if p == Prefix {
		got = Sum(data)
	} else {
		var err error
		if got, err = p.Sum(data); err != nil {
			return fmt.Errorf("codec: verify %s: %w", c, err)
		}
	}
	if !got.Equals(c) {
		return &MismatchError{Want: c, Got: got}
	}
	return nil
}

// Links returns every CID link (tag 42) in an encoded value, in the order
// they appear in data, without decoding the value into Go types; links
// inside Raw values and registered structs are included. data must be one
// well-formed item; errors are *DecodeError.
func Links(data []byte) (links []cid.Cid, err error) {
	defer recoverPanic(&err, "links")
	if err := dmTyped.Wellformed(data); err != nil {
		return nil, syntaxError(data, err)
	}
	var out []cid.Cid
	d := decoder{base: cap(data)}
	var walk func(off int) (int, error)
	walk = func(off int) (int, error) {
		h, _ := readHead(data, off)
		next := off + h.n
		switch h.major {
		case majorBytes, majorText:
			return next + int(h.arg), nil
		case majorArray, majorMap:
			n := h.arg
			if h.major == majorMap {
				n *= 2
			}
			for range n {
				var err error
				if next, err = walk(next); err != nil {
					return 0, err
				}
			}
			return next, nil
		case majorTag:
			if h.arg != tagLink {
				return walk(next)
			}
			end := skipItem(data, off)
			c, err := d.decLink(data[off:end])
			if err != nil {
				return 0, err
			}
			out = append(out, c)
			return end, nil
		}
		return next, nil
	}
	if _, err := walk(0); err != nil {
		return nil, err
	}
	return out, nil
}
