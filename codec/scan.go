package codec

// This file walks CBOR heads for the few jobs fxamacker has no API for:
// locating the offset of a syntax error (fxamacker's errors carry none),
// listing links in encounter order, checking that a Raw is canonical, and
// finding splice points in our own encoder output. Decoding proper is
// fxamacker's; except in syntaxError, inputs here have already passed
// fxamacker's well-formedness check.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// CBOR major types.
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

var majorNames = [8]string{"unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag", "simple value or float"}

// head is a decoded CBOR head.
type head struct {
	major byte
	ai    byte   // additional information (low 5 bits of the initial byte)
	arg   uint64 // the argument: value, length, count or tag number
	n     int    // length of the head in bytes
}

// readHead decodes the head at data[off:]. ok is false when the head is
// truncated or uses a reserved additional information value (28-30);
// indefinite lengths (31) come back with ok true and ai 31.
func readHead(data []byte, off int) (h head, ok bool) {
	if off >= len(data) {
		return h, false
	}
	b := data[off]
	h.major, h.ai = b>>5, b&0x1f
	rest := data[off+1:]
	switch {
	case h.ai < 24:
		h.arg, h.n = uint64(h.ai), 1
	case h.ai == 24:
		if len(rest) < 1 {
			return h, false
		}
		h.arg, h.n = uint64(rest[0]), 2
	case h.ai == 25:
		if len(rest) < 2 {
			return h, false
		}
		h.arg, h.n = uint64(binary.BigEndian.Uint16(rest)), 3
	case h.ai == 26:
		if len(rest) < 4 {
			return h, false
		}
		h.arg, h.n = uint64(binary.BigEndian.Uint32(rest)), 5
	case h.ai == 27:
		if len(rest) < 8 {
			return h, false
		}
		h.arg, h.n = binary.BigEndian.Uint64(rest), 9
	case h.ai == 31:
		h.n = 1
	default:
		return h, false
	}
	return h, true
}

// syntaxProblem is a well-formedness problem found by scanSyntax.
type syntaxProblem struct {
	off int
	msg string
}

// scanSyntax checks data as one CBOR item with the rules and limits of our
// decoders (mirroring fxamacker's well-formedness check) and returns the
// first problem, or nil.
func scanSyntax(data []byte) *syntaxProblem {
	if len(data) == 0 {
		return &syntaxProblem{0, "empty input"}
	}
	end, p := syntaxItem(data, 0, 0)
	if p != nil {
		return p
	}
	if end != len(data) {
		return &syntaxProblem{end, fmt.Sprintf("%d bytes of extra data after the value", len(data)-end)}
	}
	return nil
}

func syntaxItem(data []byte, off, depth int) (int, *syntaxProblem) {
	if off >= len(data) {
		return 0, &syntaxProblem{off, "unexpected end of input"}
	}
	h, ok := readHead(data, off)
	if !ok {
		if ai := data[off] & 0x1f; ai >= 28 && ai <= 30 {
			return 0, &syntaxProblem{off, fmt.Sprintf("invalid additional information %d in initial byte 0x%02x", ai, data[off])}
		}
		return 0, &syntaxProblem{off, "unexpected end of input in the head of a " + majorNames[data[off]>>5]}
	}
	if h.ai == 31 {
		switch h.major {
		case majorSimple:
			return 0, &syntaxProblem{off, `unexpected "break" code`}
		case majorUint, majorNeg, majorTag:
			return 0, &syntaxProblem{off, fmt.Sprintf("invalid additional information 31 for a %s", majorNames[h.major])}
		}
		return 0, &syntaxProblem{off, "indefinite-length " + majorNames[h.major] + " is not allowed"}
	}
	next := off + h.n
	switch h.major {
	case majorBytes, majorText:
		if h.arg > uint64(len(data)-next) {
			return 0, &syntaxProblem{off, fmt.Sprintf("%s of %d bytes runs past the end of input (%d bytes left)", majorNames[h.major], h.arg, len(data)-next)}
		}
		return next + int(h.arg), nil
	case majorArray, majorMap:
		depth++
		if depth > MaxDepth {
			return 0, &syntaxProblem{off, fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
		}
		n := h.arg
		if h.major == majorArray && n > MaxListLen {
			return 0, &syntaxProblem{off, fmt.Sprintf("array of %d elements exceeds the limit of %d", n, MaxListLen)}
		}
		if h.major == majorMap {
			if n > MaxMapLen {
				return 0, &syntaxProblem{off, fmt.Sprintf("map of %d pairs exceeds the limit of %d", n, MaxMapLen)}
			}
			n *= 2
		}
		for range n {
			var p *syntaxProblem
			if next, p = syntaxItem(data, next, depth); p != nil {
				return 0, p
			}
		}
		return next, nil
	case majorTag:
		start := off
		for {
			if next >= len(data) {
				return 0, &syntaxProblem{next, "unexpected end of input: tag without content"}
			}
			if h.arg == 2 || h.arg == 3 {
				return 0, &syntaxProblem{start, "bignum tags (2, 3) are not supported"}
			}
			if data[next]>>5 != majorTag {
				break
			}
			start = next
			if h, ok = readHead(data, next); !ok || h.ai == 31 {
				return syntaxItem(data, next, depth) // reports the bad head
			}
			next += h.n
			depth++
			if depth > MaxDepth {
				return 0, &syntaxProblem{start, fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
			}
		}
		return syntaxItem(data, next, depth)
	case majorSimple:
		if h.ai == 24 && h.arg < 32 {
			return 0, &syntaxProblem{off, fmt.Sprintf("invalid simple value %d", h.arg)}
		}
	}
	return next, nil
}

// skipItem returns the end of the well-formed item at off.
func skipItem(data []byte, off int) int {
	h, _ := readHead(data, off)
	next := off + h.n
	switch h.major {
	case majorBytes, majorText:
		return next + int(h.arg)
	case majorArray, majorMap:
		n := h.arg
		if h.major == majorMap {
			n *= 2
		}
		for range n {
			next = skipItem(data, next)
		}
		return next
	case majorTag:
		return skipItem(data, next)
	}
	return next
}

// checkRaw verifies that r is exactly one well-formed item in canonical form
// (shortest heads and floats, sorted unique map keys, valid UTF-8, no
// indefinite lengths) that respects the decoding limits.
func checkRaw(r []byte) error {
	if err := dmTyped.Wellformed(r); err != nil {
		if p := scanSyntax(r); p != nil {
			return fmt.Errorf("raw value is not well-formed CBOR: at offset %d: %s", p.off, p.msg)
		}
		return fmt.Errorf("raw value is not well-formed CBOR: %s", causeText(err))
	}
	if _, err := canonItem(r, 0); err != nil {
		return fmt.Errorf("raw value is not canonical: %w", err)
	}
	return nil
}

var errNotShortest = errors.New("not the shortest form")

func canonItem(data []byte, off int) (int, error) {
	h, _ := readHead(data, off)
	if h.major != majorSimple {
		if (h.ai == 24 && h.arg < 24) || (h.ai == 25 && h.arg <= 0xff) ||
			(h.ai == 26 && h.arg <= 0xffff) || (h.ai == 27 && h.arg <= 0xffffffff) {
			return 0, fmt.Errorf("at offset %d: %s head is %w", off, majorNames[h.major], errNotShortest)
		}
	}
	next := off + h.n
	switch h.major {
	case majorBytes:
		return next + int(h.arg), nil
	case majorText:
		end := next + int(h.arg)
		if !utf8.Valid(data[next:end]) {
			return 0, fmt.Errorf("at offset %d: text string is not valid UTF-8", off)
		}
		return end, nil
	case majorArray:
		for range h.arg {
			var err error
			if next, err = canonItem(data, next); err != nil {
				return 0, err
			}
		}
		return next, nil
	case majorMap:
		var prev []byte
		for range h.arg {
			kend, err := canonItem(data, next)
			if err != nil {
				return 0, err
			}
			key := data[next:kend]
			if prev != nil && bytes.Compare(prev, key) >= 0 {
				return 0, fmt.Errorf("at offset %d: map keys are not in canonical order or repeat", next)
			}
			prev = key
			if next, err = canonItem(data, kend); err != nil {
				return 0, err
			}
		}
		return next, nil
	case majorTag:
		c := data[next]
		switch {
		case h.arg == tagPlaceholder:
			return 0, fmt.Errorf("at offset %d: tag %d is reserved", off, h.arg)
		case h.arg == 0 && c>>5 != majorText:
			return 0, fmt.Errorf("at offset %d: tag 0 must hold a text string", off)
		case h.arg == 1 && c>>5 != majorUint && c>>5 != majorNeg && (c < 0xf9 || c > 0xfb):
			return 0, fmt.Errorf("at offset %d: tag 1 must hold an integer or float", off)
		}
		return canonItem(data, next)
	case majorSimple:
		if h.ai >= 25 && h.ai <= 27 {
			var f float64
			if err := cbor.Unmarshal(data[off:next], &f); err != nil {
				return 0, fmt.Errorf("at offset %d: %s", off, causeText(err))
			}
			want, err := em.Marshal(f)
			if err != nil {
				return 0, err
			}
			if !bytes.Equal(want, data[off:next]) {
				return 0, fmt.Errorf("at offset %d: float is %w", off, errNotShortest)
			}
		}
	}
	return next, nil
}

// describe names the kind of the CBOR item starting item, for messages.
func describe(item []byte) string {
	h, ok := readHead(item, 0)
	if !ok {
		return "malformed item"
	}
	switch h.major {
	case majorTag:
		return fmt.Sprintf("tag %d", h.arg)
	case majorSimple:
		switch {
		case h.ai == 20 || h.ai == 21:
			return "bool"
		case h.ai == 22:
			return "null"
		case h.ai == 23:
			return "undefined"
		case h.ai >= 25 && h.ai <= 27:
			return "float"
		}
		return "simple value"
	}
	return majorNames[h.major]
}
