package codec

// This file bounds the memory a decode may allocate. Well-formedness checks
// already stop inputs that claim more items or bytes than they hold, but a
// typed target multiplies: every 1-byte null in a list decoded into
// [][1024]float64 makes an 8 KiB element, every tiny tag 27 item a value of
// the registered type. Before decoding, Unmarshal therefore walks the input's
// heads along the target's plan and adds up the Go memory the decode will
// create (slices from their element size, maps from their slot size, pointed-to
// values, boxed dynamic values, strings and payloads from their length, and
// codec's and fxamacker's intermediate buffers). If the total exceeds
// allocLimit(len(input)) the input is refused before anything is allocated.
// The walk reads heads only and allocates nothing; it is skipped for flat
// targets, whose decode allocates at most a fixed amount set by the type plus
// about the input's size. The top-level value itself (the caller's choice of
// type, not the input's) is not counted. The estimate covers the successful
// path; a decode that fails part way may redo work on its slow path and
// allocate up to about twice the estimate before returning the error.

import (
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
)

// allocLimit is the most memory a decode of an n-byte input may allocate:
// DecodeAllocFactor times the input size, and at least DecodeAllocFloor.
func allocLimit(n int) uint64 {
	return max(DecodeAllocFloor, DecodeAllocFactor*uint64(n))
}

// Cost model constants, in bytes. They are deliberately generous upper
// bounds, not exact sizes; TestBudgetEstimateBoundsAllocation checks them
// against what decoding really allocates.
const (
	costRawItem  = 24  // a rawItem slice header (codec splits containers into them)
	costHeader   = 24  // a slice header that escapes to the heap
	costBox      = 16  // boxing a value in an interface
	costMapHead  = 64  // a Go map's header
	costObject   = 128 // objDec, its name and friends for one tag 27 item
	costArray    = 128 // an Array boxed in an interface, its span and shape
	costLink     = 96  // a CID, its span and box, besides twice its bytes
	costMapEntry = 48  // a mapEntry in codec's sorted entries
	costSplit    = 64  // fixed cost of codec splitting a container into rawItems
)

// heap bounds what allocating n bytes takes from the heap: small objects are
// rounded up to a size class (at most 12.5% more), large ones to 8 KiB pages.
func heap(n uint64) uint64 {
	switch {
	case n == 0:
		return 0
	case n <= 32<<10:
		return n + n/8 + 8
	case n >= math.MaxUint64-8192:
		return math.MaxUint64
	}
	return (n + 8191) &^ 8191
}

// mapCost bounds the memory of a Go map of n entries with slotSize bytes per
// key and value: Swiss tables keep groups of 8 slots plus a control byte per
// slot, at most 7/8 full and sized in powers of two (so up to 2.3 slots per
// entry). Maps grown without a size hint also leave their outgrown tables
// behind, as much again.
func mapCost(n uint64, slotSize uintptr, hinted bool) uint64 {
	slot := uint64(slotSize) + 1
	per := uint64(5) // slots per entry, doubled: 2.5 with a hint, 4 without
	if !hinted {
		per = 8
	}
	return costMapHead + 8*slot + mulSat(n, mulSat(slot, per)/2)
}

// mulSat multiplies, saturating at math.MaxUint64.
func mulSat(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// sizer estimates the memory a decode of data will allocate and stops as soon
// as the estimate passes limit.
type sizer struct {
	data  []byte
	used  uint64
	limit uint64
	depth int // containers entered; fixed costs of the top-level item are not counted
}

// budgetError says that decoding an input would allocate too much.
type budgetError struct {
	what  string // the item that went over, e.g. "array of 8 elements into []int"
	need  uint64 // its own cost
	total uint64 // the estimate including it
	limit uint64
	input int
}

func (e *budgetError) Error() string {
	if e.total == e.need {
		return fmt.Sprintf("%s needs %s of memory, over the limit of %s for a %d-byte input",
			e.what, sizeText(e.need), sizeText(e.limit), e.input)
	}
	return fmt.Sprintf("%s needs %s of memory, bringing the decode to %s, over the limit of %s for a %d-byte input",
		e.what, sizeText(e.need), sizeText(e.total), sizeText(e.limit), e.input)
}

func (e *budgetError) Unwrap() error { return ErrAllocLimit }

// sizeText renders a byte count for messages: "512 B", "64 MiB", "1.5 GiB".
func sizeText(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, u := float64(n)/1024, 0
	for f >= 1024 && u < 5 {
		f /= 1024
		u++
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + " " + "KMGTPE"[u:u+1] + "iB"
}

// add charges n bytes to the item at off, decoded into t.
func (s *sizer) add(off int, n uint64, t reflect.Type) error {
	s.used += n
	if s.used >= n && s.used <= s.limit {
		return nil
	}
	if s.used < n {
		s.used = math.MaxUint64
	}
	what := describeSized(s.data[off:])
	switch t {
	case nil:
	case typeAny:
		what += " into any"
	default:
		what += " into " + t.String()
	}
	err := &budgetError{what: what, need: n, total: s.used, limit: s.limit, input: len(s.data)}
	return &DecodeError{Offset: off, Err: err}
}

// describeSized names an item with its size, e.g. "array of 3 elements".
func describeSized(item []byte) string {
	h, _ := readHead(item, 0)
	switch h.major {
	case majorArray:
		return fmt.Sprintf("array of %d %s", h.arg, plural(h.arg, "element"))
	case majorMap:
		return fmt.Sprintf("map of %d %s", h.arg, plural(h.arg, "pair"))
	case majorBytes, majorText:
		return fmt.Sprintf("%s of %d %s", majorNames[h.major], h.arg, plural(h.arg, "byte"))
	}
	return describe(item)
}

func plural(n uint64, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// checkBudget walks data (well-formed) as it would be decoded into p (nil
// for any) and returns a *DecodeError matching ErrAllocLimit if that would
// allocate more than allocLimit(len(data)).
func checkBudget(p *plan, data []byte) error {
	s := sizer{data: data, limit: allocLimit(len(data))}
	var err error
	if p == nil {
		_, err = s.dyn(0)
	} else {
		_, err = s.typed(p, 0)
	}
	return err
}

// end returns the end of the item at off whose head is h.
func (s *sizer) end(h head, off int) int {
	switch h.major {
	case majorBytes, majorText:
		return off + h.n + int(h.arg)
	case majorArray, majorMap, majorTag:
		return skipItem(s.data, off)
	}
	return off + h.n
}

// flatCost computes plan.flatCost: the fixed costs of decoding an item of
// flat plan p; strings and payloads are counted as twice the item's size.
func flatCost(p *plan) uint64 {
	switch p.kind {
	case kScalar:
		n := uint64(16) // rounding of a string
		if !p.native {
			n += heap(uint64(p.base.Size())) + costBox
		}
		return n
	case kBytes, kByteArray:
		return costHeader + 16
	case kCid, kLink:
		return costLink + 32
	case kNDArray:
		return costArray + 2*heap(8*MaxDims) + 16
	case kRaw:
		return 16
	case kBinary:
		return costObject + heap(uint64(p.t.Size())) + costHeader + 16
	case kGoArray:
		return costSplit + heap(uint64(p.n)*costRawItem) + mulSat(uint64(p.n), p.elem.flatCost)
	case kPtr:
		return heap(uint64(p.elem.t.Size())) + p.elem.flatCost
	case kStruct:
		n := costObject + heap(uint64(p.wDec.Size())) + 16
		for _, f := range p.fields {
			n += f.p.flatCost
		}
		return n
	}
	return 0
}

// typed sizes the item at off decoded into p and returns its end.
func (s *sizer) typed(p *plan, off int) (int, error) {
	data := s.data
	h, _ := readHead(data, off)
	if p.kind == kRaw {
		end := skipItem(data, off)
		return end, s.add(off, uint64(end-off), p.t)
	}
	if h.major == majorSimple && (h.ai == 22 || h.ai == 23) {
		return off + 1, nil // null: the zero value
	}
	switch p.kind {
	case kScalar:
		var n uint64
		if h.major == majorText && p.t.Kind() == reflect.String {
			n = heap(h.arg)
		}
		if !p.native {
			n += heap(uint64(p.base.Size())) + costBox
		}
		return s.end(h, off), s.add(off, n, p.t)
	case kBytes, kByteArray:
		var n uint64
		if h.major == majorBytes {
			n = costHeader + heap(h.arg)
		}
		return s.end(h, off), s.add(off, n, p.t)
	case kSlice, kGoArray:
		if h.major != majorArray {
			return s.end(h, off), nil // decoding fails there
		}
		var n uint64
		if p.kind == kGoArray && !p.native && h.arg != uint64(p.n) {
			return s.end(h, off), nil // refused before it is split
		}
		if p.kind == kSlice {
			// reflect.MakeSlice puts the slice header on the heap.
			n = costHeader + heap(mulSat(h.arg, uint64(p.elem.t.Size())))
		}
		if !p.native {
			n += costSplit + heap(mulSat(h.arg, costRawItem))
		}
		if err := s.add(off, n, p.t); err != nil {
			return 0, err
		}
		s.depth++
		next := off + h.n
		for i := range h.arg {
			if p.kind == kGoArray && i >= uint64(p.n) {
				next = skipItem(data, next) // fxamacker skips extra elements
				continue
			}
			var err error
			if next, err = s.typed(p.elem, next); err != nil {
				return 0, withPath(err, indexSeg(int(i)))
			}
		}
		s.depth--
		return next, nil
	case kMap:
		if h.major != majorMap {
			return s.end(h, off), nil
		}
		kt, vt := p.t.Key(), p.t.Elem()
		n := mapCost(h.arg, kt.Size()+vt.Size(), true) + costMapHead +
			heap(uint64(kt.Size())) + heap(uint64(vt.Size()))
		if !p.native {
			// codec's map[K]rawItem, sorted entries, and per entry a new
			// value, a boxed rawItem and a boxed key.
			n += costSplit + mapCost(h.arg, kt.Size()+costRawItem, true)
			n += heap(mulSat(h.arg, costMapEntry))
			n += mulSat(h.arg, heap(uint64(vt.Size()))+costRawItem+costBox)
		}
		if err := s.add(off, n, p.t); err != nil {
			return 0, err
		}
		s.depth++
		next := off + h.n
		for range h.arg {
			kOff := next
			var err error
			if next, err = s.typed(p.key, next); err != nil {
				return 0, err
			}
			if next, err = s.typed(p.elem, next); err != nil {
				return 0, withPath(err, keyAt(data, kOff))
			}
		}
		s.depth--
		return next, nil
	case kPtr:
		if s.depth > 0 {
			if err := s.add(off, heap(uint64(p.elem.t.Size())), p.t); err != nil {
				return 0, err
			}
		}
		return s.typed(p.elem, off)
	case kIface:
		// decAny's result escapes to the heap.
		if err := s.add(off, costBox, p.t); err != nil {
			return 0, err
		}
		return s.dyn(off)
	case kStruct, kBinary:
		return s.object(p, off)
	case kCid, kLink:
		return s.link(off, p.t)
	case kNDArray:
		return s.ndarray(off, p.t)
	}
	return s.end(h, off), nil
}

// object sizes a tag 27 item decoded into p, or into the type registered
// under its name when p is nil.
func (s *sizer) object(p *plan, off int) (int, error) {
	data := s.data
	h, _ := readHead(data, off)
	if h.major != majorTag || h.arg != tagObject {
		return s.end(h, off), nil
	}
	ha, _ := readHead(data, off+h.n)
	if ha.major != majorArray || ha.arg != 2 {
		return s.end(h, off), nil
	}
	c := off + h.n + ha.n
	hn, _ := readHead(data, c)
	if hn.major != majorText {
		return s.end(h, off), nil
	}
	body := c + hn.n + int(hn.arg)
	if p == nil {
		rt := lookupName(string(data[c+hn.n : body]))
		if rt == nil {
			return s.end(h, off), nil
		}
		var err error
		if p, err = rt.planOf(); err != nil {
			return s.end(h, off), nil
		}
		// decObjectAny's new value, its copy in an interface, and a
		// pointer to it if the interface needs one.
		if err := s.add(off, mulSat(3, heap(uint64(p.t.Size()))), p.t); err != nil {
			return 0, err
		}
	}
	if s.depth > 0 || p.kind == kBinary {
		n := costObject + heap(uint64(len(data[c+hn.n:body])))
		if p.wDec != nil {
			n += heap(uint64(p.wDec.Size()))
		}
		if p.kind == kBinary {
			n += heap(uint64(p.t.Size()))
		}
		if err := s.add(off, n, p.t); err != nil {
			return 0, err
		}
	}
	hb, _ := readHead(data, body)
	if p.kind == kBinary {
		if hb.major == majorBytes {
			return s.end(hb, body), s.add(body, costHeader+heap(hb.arg), p.t)
		}
		return s.end(hb, body), nil
	}
	if hb.major != majorMap {
		return s.end(hb, body), nil
	}
	// Fields decode in place (decFieldsSlow's map of them is built only
	// on the way to an error, for at most as many entries as fields).
	if p.flat {
		end := s.end(hb, body)
		return end, s.add(off, p.flatCost+2*uint64(end-body), p.t)
	}
	s.depth += 2
	next := body + hb.n
	for range hb.arg {
		hk, _ := readHead(data, next)
		kEnd := s.end(hk, next)
		if hk.major != majorText {
			next = skipItem(data, kEnd)
			continue
		}
		name := data[next+hk.n : kEnd]
		i, ok := p.byName[string(name)]
		if !ok {
			next = skipItem(data, kEnd)
			continue
		}
		var err error
		if next, err = s.typed(p.fields[i].p, kEnd); err != nil {
			return 0, withPath(err, "."+string(name))
		}
	}
	s.depth -= 2
	return next, nil
}

// link sizes a tag 42 item: the link bytes, copied twice, and a CID.
func (s *sizer) link(off int, t reflect.Type) (int, error) {
	end := skipItem(s.data, off)
	return end, s.add(off, costLink+2*heap(uint64(end-off)), t)
}

// ndarray sizes a tag 40 item: its shape and one copy of its payload.
func (s *sizer) ndarray(off int, t reflect.Type) (int, error) {
	end := skipItem(s.data, off)
	// Everything inside is shape (refused beyond MaxDims) or payload.
	return end, s.add(off, costArray+heap(uint64(end-off))+2*heap(8*MaxDims), t)
}

// dyn sizes the item at off decoded into any and returns its end.
func (s *sizer) dyn(off int) (int, error) {
	data := s.data
	h, _ := readHead(data, off)
	var n uint64
	switch h.major {
	case majorUint, majorNeg:
		if h.arg >= 256 {
			n = 2 * costBox // boxed, and boxed again as int64
		}
	case majorBytes:
		n = costHeader + heap(h.arg)
	case majorText:
		n = costBox + heap(h.arg)
	case majorSimple:
		if h.ai >= 25 && h.ai <= 27 {
			n = 8
		}
	case majorArray:
		// fxamacker's []any and its box.
		if err := s.add(off, costHeader+heap(mulSat(h.arg, costBox)), typeAny); err != nil {
			return 0, err
		}
		s.depth++
		next := off + h.n
		for i := range h.arg {
			var err error
			if next, err = s.dyn(next); err != nil {
				return 0, withPath(err, indexSeg(int(i)))
			}
		}
		s.depth--
		return next, nil
	case majorMap:
		// fxamacker's map[any]any, grown without a hint, then fix's
		// map[string]any (or map[any]any).
		c := mapCost(h.arg, 2*costBox, false) + mapCost(h.arg, 2*costBox, true) + costBox + costMapHead +
			mulSat(h.arg, 8)
		if err := s.add(off, c, typeAny); err != nil {
			return 0, err
		}
		s.depth++
		next := off + h.n
		for range h.arg {
			kOff := next
			var err error
			if next, err = s.dyn(next); err != nil {
				return 0, err
			}
			if next, err = s.dyn(next); err != nil {
				return 0, withPath(err, keyAt(data, kOff))
			}
		}
		s.depth--
		return next, nil
	case majorTag:
		switch h.arg {
		case tagObject:
			s.depth++ // a dynamic object is never the caller's own value
			end, err := s.object(nil, off)
			s.depth--
			return end, err
		case tagNDArray:
			return s.ndarray(off, typeAny)
		case tagLink:
			return s.link(off, typeAny)
		}
		return skipItem(data, off), nil // refused when decoding
	}
	return s.end(h, off), s.add(off, n, typeAny)
}

// keyAt is the path segment of the map key at off, for error messages.
func keyAt(data []byte, off int) string {
	h, _ := readHead(data, off)
	switch h.major {
	case majorText:
		return keySeg(string(data[off+h.n : off+h.n+int(h.arg)]))
	case majorUint:
		return keySeg(h.arg)
	case majorNeg:
		if h.arg <= math.MaxInt64 {
			return keySeg(-1 - int64(h.arg))
		}
	case majorSimple:
		if h.ai == 20 || h.ai == 21 {
			return keySeg(h.ai == 21)
		}
	}
	return "[?]"
}
