package codec

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type regOpts struct {
	Retries  int
	Callback func()
}

type regJob struct {
	Name string
	Opts regOpts
}

type regChanList struct{ Chans []map[string]chan int }

type regFloatKeys struct{ M map[float64]int }

type regUnexportedFunc struct {
	A int
	f func() // unexported: never encoded, so fine
}

type regSkippedFunc struct {
	A int
	F func() `codec:"-"`
}

type regEmbedPtr struct {
	*Base
	N int
}

type regDupName struct {
	A int `codec:"x"`
	B int `codec:"x"`
}

type regSelf struct {
	Kids []regSelf
	M    map[string]*regSelf
}

type regIface struct{ V any }

type regUnsafe struct{ P unsafe.Pointer }

type regComplex struct{ C [2]complex64 }

type regUintptr struct{ U *uintptr }

type regA struct{ X int }
type regB struct{ X int }

type regNotBinary int

type regBinUnreg struct{ Bin }

type regHalfBinary struct{ x int }

func (regHalfBinary) MarshalBinary() ([]byte, error) { return nil, nil }

func TestRegisterRefusesWhatCannotTravel(t *testing.T) {
	tests := []struct {
		name string
		reg  func(string) error
		want string
	}{
		{"nested func", Register[regJob], "codec: cannot register codec.regJob: field Opts.Callback has type func() which cannot travel"},
		{"chan in map in slice", Register[regChanList], "codec: cannot register codec.regChanList: field Chans[*][*] has type chan int which cannot travel"},
		{"float map key", Register[regFloatKeys], "codec: cannot register codec.regFloatKeys: field M has map key type float64 which cannot travel"},
		{"unsafe pointer", Register[regUnsafe], "field P has type unsafe.Pointer which cannot travel"},
		{"complex", Register[regComplex], "field C[*] has type complex64 which cannot travel"},
		{"uintptr", Register[regUintptr], "field U has type uintptr which cannot travel"},
		{"embedded pointer", Register[regEmbedPtr], "embedded pointer field Base is not supported"},
		{"duplicate field names", Register[regDupName], `fields A and B both encode as "x"`},
		{"non-struct", Register[regNotBinary], "only struct types"},
		{"half binary", Register[regHalfBinary], "does not implement encoding.BinaryUnmarshaler"},
		{"func type", Register[func()], "only struct types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.reg("test.bad")
			require.ErrorIs(t, err, ErrCannotTravel)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRegisterAccepts(t *testing.T) {
	require.NoError(t, Register[regUnexportedFunc]("test.regUnexportedFunc"))
	require.NoError(t, Register[regSkippedFunc]("test.regSkippedFunc"))
	require.NoError(t, Register[regSelf]("test.regSelf"), "recursive types must not loop")
	require.NoError(t, Register[regIface]("test.regIface"))
	require.NoError(t, Register[time.Time]("time"), "binary types may be registered")
	require.NoError(t, Register[regSelf]("test.regSelf"), "same pair again is a no-op")

	v := regSelf{Kids: []regSelf{{}, {M: map[string]*regSelf{"k": {}}}}}
	b, err := Marshal(v)
	require.NoError(t, err)
	var got regSelf
	require.NoError(t, Unmarshal(b, &got))
	assert.Equal(t, v, got)

	now := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	b, err = Marshal(now)
	require.NoError(t, err)
	var anyT any
	require.NoError(t, Unmarshal(b, &anyT))
	assert.True(t, now.Equal(anyT.(time.Time)))

	b, err = Marshal(regSkippedFunc{A: 1, F: func() {}})
	require.NoError(t, err)
	var s regSkippedFunc
	require.NoError(t, Unmarshal(b, &s))
	assert.Equal(t, 1, s.A)
}

func TestRegisterConflicts(t *testing.T) {
	require.NoError(t, Register[regA]("test.regA"))
	err := Register[regB]("test.regA")
	require.ErrorIs(t, err, ErrUnregistered)
	assert.Contains(t, err.Error(), `name "test.regA" is already registered for codec.regA`)

	err = Register[regA]("test.regA2")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `already registered as "test.regA"`)

	for _, name := range []string{"", string([]byte{0xff}), string(make([]byte, 256))} {
		require.Error(t, Register[regB](name))
	}
	require.Error(t, Register[Array]("arr"))
	require.Error(t, Register[Tuple]("tup"))

	name, ok := RegisteredName(reflect.TypeFor[regA]())
	assert.True(t, ok)
	assert.Equal(t, "test.regA", name)
	_, ok = RegisteredName(reflect.TypeFor[regB]())
	assert.False(t, ok)

	assert.Panics(t, func() { MustRegister[regB]("test.regA") })
}

type chkUnreg struct{ A int }

// Unregistered structs that could never be registered: the error names
// the field at fault, not registration.
type (
	withFunc     struct{ Cb func() }
	withChanDeep struct{ Jobs []struct{ Done chan int } }
	withSkipped  struct {
		A  int
		Cb func() `codec:"-"`
	}
	withFloatKey struct{ M map[float64]int }
)

type chkHolder struct{ Items map[string][]chkUnreg }

func TestCheckType(t *testing.T) {
	require.NoError(t, Register[chkHolder]("test.chkHolder"))
	tests := []struct {
		t        reflect.Type
		sentinel error
		msg      string
	}{
		{reflect.TypeFor[int](), nil, ""},
		{reflect.TypeFor[any](), nil, ""},
		{reflect.TypeFor[Shape](), nil, ""},
		{reflect.TypeFor[[]Point](), nil, ""},
		{reflect.TypeFor[map[string]*Everything](), nil, ""},
		{reflect.TypeFor[Array](), nil, ""},
		{reflect.TypeFor[Ref](), nil, ""},
		{reflect.TypeFor[*Bin](), nil, ""},
		{reflect.TypeFor[chkUnreg](), ErrUnregistered,
			`codec: unregistered type codec.chkUnreg: register it with codec.Register[codec.chkUnreg]("chkUnreg")`},
		{reflect.TypeFor[[]chkUnreg](), ErrUnregistered, "codec: unregistered type codec.chkUnreg at [*]: register it"},
		{reflect.TypeFor[chkHolder](), ErrUnregistered, "unregistered type codec.chkUnreg at Items[*][*]"},
		{reflect.TypeFor[func()](), ErrCannotTravel, "codec: type func() cannot travel"},
		{reflect.TypeFor[chan int](), ErrCannotTravel, "codec: type chan int cannot travel"},
		{reflect.TypeFor[uintptr](), ErrCannotTravel, "codec: type uintptr cannot travel"},
		{reflect.TypeFor[complex128](), ErrCannotTravel, "complex128 cannot travel"},
		{reflect.TypeFor[map[[2]int]int](), ErrCannotTravel, "codec: type [2]int cannot travel at [key]"},
		{reflect.TypeFor[time.Duration](), nil, ""},
		{reflect.TypeFor[regB](), ErrUnregistered, "regB"},
		{reflect.TypeFor[withFunc](), ErrCannotTravel, "codec: type func() cannot travel at Cb"},
		{reflect.TypeFor[map[string]withChanDeep](), ErrCannotTravel, "codec: type chan int cannot travel at [*].Jobs[*].Done"},
	}
	for _, tt := range tests {
		t.Run(tt.t.String(), func(t *testing.T) {
			err := CheckType(tt.t)
			if tt.sentinel == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.sentinel)
			var te *TypeError
			require.ErrorAs(t, err, &te)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	require.Error(t, CheckType(nil))
}

func TestEncodeErrors(t *testing.T) {
	type Unreg struct{ A int }
	tests := []struct {
		name     string
		v        any
		sentinel error
		msg      string
	}{
		{"unregistered", Unreg{}, ErrUnregistered,
			`codec: unregistered type codec.Unreg: register it with codec.Register[codec.Unreg]("Unreg")`},
		{"nested unregistered", Tuple{1, []any{Unreg{}}}, ErrUnregistered, "codec: unregistered type codec.Unreg at [1][0]: register it"},
		{"in a field", Everything{Any: map[string]any{"k": Unreg{}}}, ErrUnregistered, `unregistered type codec.Unreg at Any["k"]`},
		{"func", func() {}, ErrCannotTravel, "codec: type func() cannot travel"},
		{"func field of an unregistered struct", withFunc{}, ErrCannotTravel,
			"codec: type func() cannot travel at Cb: leave the field out with the tag `codec:\"-\"`, or change its type"},
		{"func field, through a pointer", &withFunc{}, ErrCannotTravel, "codec: type func() cannot travel at Cb"},
		{"func field in a list", []withFunc{{}}, ErrCannotTravel, "codec: type func() cannot travel at [*].Cb"},
		{"func field behind any", map[string]any{"k": withFunc{}}, ErrCannotTravel, `codec: type func() cannot travel at ["k"].Cb`},
		{"chan deep inside", withChanDeep{}, ErrCannotTravel, "codec: type chan int cannot travel at Jobs[*].Done"},
		{"float map key field", withFloatKey{}, ErrCannotTravel, "codec: type float64 cannot travel at M[key]"},
		{"func field left out: only unregistered", withSkipped{}, ErrUnregistered, "register it with codec.Register[codec.withSkipped]"},
		{"chan in any", []any{make(chan int)}, ErrCannotTravel, "codec: type chan int cannot travel at [0]"},
		{"complex", complex(1, 2), ErrCannotTravel, "complex128 cannot travel"},
		{"unregistered binary", regBinUnreg{}, ErrUnregistered, "codec: unregistered type codec.regBinUnreg: register it"},
		{"invalid array", Line{Points: nil}, nil, ""},
		{"bad array in struct", Everything{Nd: Array{DType: Float64, Shape: []int{2}}}, ErrInvalidArray,
			"codec: encode at Nd: invalid array: data has 0 bytes, shape [2] of float64 needs 16"},
		{"bad bool array", Array{DType: Bool, Shape: []int{1}, Data: []byte{2}}, ErrInvalidArray, "bool element 0 is byte 2"},
		{"marshal binary error", []Bin{{a: 0xdead}}, nil, "codec: encode at [0]: codec.Bin.MarshalBinary: dead value"},
		{"non-canonical raw", Tuple{Raw(h("a2 6162 01 6161 02"))}, nil, "raw value is not canonical"},
		{"malformed raw", Raw(h("8201")), nil, "raw value is not well-formed CBOR"},
		{"two raw items", Raw(h("0102")), nil, "raw value is not well-formed CBOR"},
		{"list too long", make([]bool, MaxListLen+1), nil, "exceeds the decoding limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal(tt.v)
			if tt.msg == "" && tt.sentinel == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			if tt.sentinel != nil {
				require.ErrorIs(t, err, tt.sentinel)
			}
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestCheckRawCanonical(t *testing.T) {
	tests := []struct {
		name, raw, msg string
	}{
		{"ok", "a2 6161 01 6162 02", ""},
		{"ok tags", "d82a 4400010203", ""},
		{"ok floats", "83 f93e00 fa3dcccccd fb3fb999999999999a", ""},
		{"long int", "1801", "not the shortest form"},
		{"long length", "5801ff", "not the shortest form"},
		{"long tag", "d8 01 00", "not the shortest form"},
		{"unsorted keys", "a2 6162 01 6161 02", "not in canonical order"},
		{"repeated keys", "a2 6161 01 6161 02", ""}, // rejected by the well-formedness check? no: duplicates are well-formed
		{"long float", "fb3ff8000000000000", "float is not the shortest form"},
		{"non-canonical NaN", "fb7ff8000000000001", "float is not the shortest form"},
		{"bad utf8", "62ff00", "not valid UTF-8"},
		{"indefinite", "9fff", "not well-formed"},
		{"reserved tag", "da64726179 00", "tag 1685217657 is reserved"},
		{"time tag content", "c1 40", "tag 1 must hold an integer or float"},
		{"date tag content", "c0 00", "tag 0 must hold a text string"},
		{"time tag ok", "c1 01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRaw(h(tt.raw))
			if tt.name == "repeated keys" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "repeat")
				return
			}
			if tt.msg == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}
