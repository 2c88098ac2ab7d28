package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/ipfs/go-cid"
)

// Types shared by the tests. Registered in init under names unique to the
// test binary.

type Point struct{ X, Y int }

type Line struct {
	Points []Point
	Label  string `codec:"label"`
	Skip   int    `codec:"-"`
	hidden int
}

type Base struct {
	ID   int
	Kind string
}

type base2 struct{ Inner string }

type Derived struct {
	Base
	base2
	Extra float64
}

type Holder struct {
	Named Base `codec:"named"`
}

type Node struct {
	Val  int
	Next *Node
}

type Celsius float64

// Level has a String method, which does not change its encoding.
type Level int

func (l Level) String() string { return fmt.Sprintf("L%d", int(l)) }

// Hooked has MarshalText, a method fxamacker would honour; codec encodes it
// by kind anyway.
type Hooked int

func (h Hooked) MarshalText() ([]byte, error) { return []byte("hooked"), nil }

// Bin carries its own binary encoding.
type Bin struct{ a, b uint32 }

func (v Bin) MarshalBinary() ([]byte, error) {
	if v.a == 0xdead {
		return nil, errors.New("dead value")
	}
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, v.a), v.b), nil
}

func (v *Bin) UnmarshalBinary(b []byte) error {
	if len(b) != 8 {
		return fmt.Errorf("bin: want 8 bytes, got %d", len(b))
	}
	v.a, v.b = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	return nil
}

// Ref travels as a link.
type Ref struct{ c cid.Cid }

func (r Ref) Link() cid.Cid { return r.c }

func (r *Ref) SetLink(c cid.Cid) error {
	if c.Prefix().Codec != multicodecCBOR {
		return errors.New("not a cbor CID")
	}
	r.c = c
	return nil
}

// OnlyLinker has no SetLink.
type OnlyLinker struct{ c cid.Cid }

func (r OnlyLinker) Link() cid.Cid { return r.c }

type Shape interface{ Area() float64 }

type Square struct{ Side float64 }

func (s Square) Area() float64 { return s.Side * s.Side }

type Circle struct{ R float64 }

func (c *Circle) Area() float64 { return 3 * c.R * c.R }

// Everything has a field of every kind.
type Everything struct {
	B     bool
	I     int
	I8    int8
	I16   int16
	I32   int32
	I64   int64
	U     uint
	U8    uint8
	U16   uint16
	U32   uint32
	U64   uint64
	F32   float32
	F64   float64
	S     string
	Bytes []byte
	Fixed [4]byte
	Ints  []int
	Arr   [3]int16
	M     map[string]int
	MI    map[int64]string
	MB    map[bool]float64
	MAny  map[string]any
	P     *Point
	PP    **int
	Any   any
	Shape Shape
	Cid   cid.Cid
	Ref   Ref
	RefP  *Ref
	Nd    Array
	NdP   *Array
	Raw   Raw
	Tup   Tuple
	Bin   Bin
	BinP  *Bin
	C     Celsius
	L     Level
	H     Hooked
	HS    []Hooked
	Nodes []*Node
}

func init() {
	MustRegister[Point]("test.Point")
	MustRegister[Line]("test.Line")
	MustRegister[Base]("test.Base")
	MustRegister[Derived]("test.Derived")
	MustRegister[Holder]("test.Holder")
	MustRegister[Node]("test.Node")
	MustRegister[Bin]("test.Bin")
	MustRegister[Square]("test.Square")
	MustRegister[Circle]("test.Circle")
	MustRegister[Everything]("test.Everything")
}

// TaggedEmbed embeds Base under a tag, so Base is an ordinary field.
type TaggedEmbed struct {
	Base `codec:"base"`
	N    int
}

func init() { MustRegister[TaggedEmbed]("test.TaggedEmbed") }

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
func valueOf(v any) reflect.Value { return reflect.ValueOf(v) }
