package codec

import (
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
)

// Builder appends canonical CBOR items to a buffer, without reflection, for
// hot paths that encode small records of a fixed shape (the node's task
// specs and output descriptors). Its output is byte-identical to Marshal of
// the equivalent value — an array as a Tuple, a link as a cid.Cid — which a
// test checks over random records. The caller is responsible for the
// record's shape: Builder only writes items.
type Builder struct {
	buf []byte
}

// NewBuilder returns a Builder whose buffer starts with room for size bytes.
func NewBuilder(size int) *Builder { return &Builder{buf: make([]byte, 0, size)} }

// NewBuilderOn returns a Builder that appends to buf (which may live on
// the caller's stack).
func NewBuilderOn(buf []byte) Builder { return Builder{buf: buf} }

// Reset empties the buffer, keeping its memory.
func (b *Builder) Reset() { b.buf = b.buf[:0] }

// Bytes returns the encoded items. The slice aliases the buffer until the
// next Reset.
func (b *Builder) Bytes() []byte { return b.buf }

// Array starts an array of n items; the next n items written are its elements.
func (b *Builder) Array(n int) { b.buf = appendHead(b.buf, majorArray, uint64(n)) }

// Uint writes an unsigned integer.
func (b *Builder) Uint(u uint64) { b.buf = appendHead(b.buf, majorUint, u) }

// Int writes a signed integer.
func (b *Builder) Int(i int64) {
	if i >= 0 {
		b.buf = appendHead(b.buf, majorUint, uint64(i))
		return
	}
	b.buf = appendHead(b.buf, majorNeg, uint64(-1-i))
}

// Text writes a text string; it must be valid UTF-8 (invalid bytes are
// replaced by U+FFFD, as Marshal refuses them).
func (b *Builder) Text(s string) {
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	b.buf = appendHead(b.buf, majorText, uint64(len(s)))
	b.buf = append(b.buf, s...)
}

// ByteString writes a byte string; nil writes an empty byte string.
func (b *Builder) ByteString(p []byte) {
	b.buf = appendHead(b.buf, majorBytes, uint64(len(p)))
	b.buf = append(b.buf, p...)
}

// ByteStringHead writes only the head of a byte string of n bytes; the
// caller writes the n payload bytes after it (streaming a large value).
func (b *Builder) ByteStringHead(n uint64) { b.buf = appendHead(b.buf, majorBytes, n) }

// ReadByteStringHead parses the head of a byte string at the start of p
// (which needs at most 9 bytes) and returns the payload size and the head's
// length. It fails if p does not start with a definite-length byte string.
func ReadByteStringHead(p []byte) (size uint64, headLen int, err error) {
	h, ok := readHead(p, 0)
	if !ok || h.major != majorBytes || h.ai == 31 {
		return 0, 0, &DecodeError{Offset: 0, Err: fmt.Errorf("%w: not a byte string", ErrDecode)}
	}
	return h.arg, h.n, nil
}

// Null writes null.
func (b *Builder) Null() { b.buf = append(b.buf, 0xf6) }

// Link writes a CID link (tag 42 around 0x00 + the binary CID); an
// undefined CID writes null, as Marshal does.
func (b *Builder) Link(c cid.Cid) {
	if !c.Defined() {
		b.Null()
		return
	}
	s := c.KeyString()
	b.buf = append(b.buf, 0xd8, 42)
	b.buf = appendHead(b.buf, majorBytes, uint64(len(s)+1))
	b.buf = append(b.buf, 0)
	b.buf = append(b.buf, s...)
}

// Raw writes an already-encoded canonical item verbatim (as Marshal does
// for a Raw value); the caller vouches that it is one well-formed item.
func (b *Builder) Raw(r Raw) { b.buf = append(b.buf, r...) }
