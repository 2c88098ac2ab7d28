package codec

import (
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/ipfs/go-cid"
)

// ToJSONValue converts a value (typically one returned by Unmarshal, dynamic
// or typed) into plain Go values that encoding/json prints as DAG-JSON:
//
//   - cid.Cid and Linker values become {"/": "<cid>"} (an undefined CID null);
//   - []byte and byte arrays become {"/": {"bytes": "<base64, standard
//     alphabet, no padding>"}};
//   - Array stays an Array, which prints as {"dtype":..., "shape":...,
//     "data":...};
//   - registered structs become a map of their fields by wire name, and
//     registered binary types their bytes form;
//   - maps with non-string keys get their keys stringified (integers in
//     decimal, bools as "true"/"false"); two keys with the same string form
//     are an error;
//   - Raw is decoded and converted;
//   - lists become []any, pointers their element (nil is null).
//
// NaN and infinite floats cannot be printed as JSON and are an error, as are
// types that cannot travel.
func ToJSONValue(v any) (jv any, err error) {
	defer recoverPanic(&err, "json")
	j := jsonConv{}
	return j.conv(reflect.ValueOf(v))
}

type jsonConv struct{ level int }

func bytesJSON(b []byte) any {
	return map[string]any{"/": map[string]any{"bytes": base64.RawStdEncoding.EncodeToString(b)}}
}

func linkJSON(c cid.Cid) any {
	if !c.Defined() {
		return nil
	}
	return map[string]any{"/": c.String()}
}

func (j *jsonConv) conv(v reflect.Value) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	j.level++
	defer func() { j.level-- }()
	if j.level > maxRecursion {
		return nil, &EncodeError{Err: errTooDeep}
	}
	p, err := planFor(v.Type())
	if err != nil {
		return nil, err
	}
	switch p.kind {
	case kScalar:
		if k := v.Kind(); k == reflect.Float32 || k == reflect.Float64 {
			f := v.Float()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, &EncodeError{Err: fmt.Errorf("float %v cannot be represented in JSON", f)}
			}
			return f, nil
		}
		if x, ok := scalar(v); ok {
			return x, nil
		}
	case kBytes:
		if v.IsNil() {
			return nil, nil
		}
		return bytesJSON(v.Bytes()), nil
	case kByteArray:
		b := make([]byte, v.Len())
		for i := range b {
			b[i] = byte(v.Index(i).Uint())
		}
		return bytesJSON(b), nil
	case kSlice, kGoArray:
		if p.kind == kSlice && v.IsNil() {
			return nil, nil
		}
		out := make([]any, v.Len())
		for i := range out {
			x, err := j.conv(v.Index(i))
			if err != nil {
				return nil, withPath(err, indexSeg(i))
			}
			out[i] = x
		}
		return out, nil
	case kMap:
		if v.IsNil() {
			return nil, nil
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			k, err := jsonKey(iter.Key())
			if err != nil {
				return nil, err
			}
			if _, dup := out[k]; dup {
				return nil, &EncodeError{Path: "[" + strconv.Quote(k) + "]", Err: errors.New("two map keys have the same JSON form")}
			}
			x, err := j.conv(iter.Value())
			if err != nil {
				return nil, withPath(err, "["+strconv.Quote(k)+"]")
			}
			out[k] = x
		}
		return out, nil
	case kPtr, kIface:
		if v.IsNil() {
			return nil, nil
		}
		return j.conv(v.Elem())
	case kStruct:
		out := make(map[string]any, len(p.fields))
		for _, f := range p.fields {
			x, err := j.conv(v.FieldByIndex(f.index))
			if err != nil {
				return nil, withPath(err, "."+f.name)
			}
			out[f.name] = x
		}
		return out, nil
	case kBinary:
		m, ok := addressable(v).Interface().(encoding.BinaryMarshaler)
		if !ok {
			return nil, &EncodeError{Err: fmt.Errorf("%s does not implement encoding.BinaryMarshaler", p.t)}
		}
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, &EncodeError{Err: fmt.Errorf("%s.MarshalBinary: %w", p.t, err)}
		}
		return bytesJSON(b), nil
	case kCid:
		return linkJSON(v.Interface().(cid.Cid)), nil
	case kLink:
		l, ok := addressable(v).Interface().(Linker)
		if !ok {
			return nil, &EncodeError{Err: fmt.Errorf("%s implements codec.LinkSetter but not codec.Linker", p.t)}
		}
		return linkJSON(l.Link()), nil
	case kNDArray:
		a := v.Interface().(Array)
		if a.IsZero() {
			return nil, nil
		}
		if err := a.Validate(); err != nil {
			return nil, &EncodeError{Err: err}
		}
		return a, nil
	case kRaw:
		if v.Len() == 0 {
			return nil, nil
		}
		var x any
		if err := Unmarshal(v.Bytes(), &x); err != nil {
			return nil, err
		}
		return j.conv(reflect.ValueOf(x))
	}
	return nil, &TypeError{Type: v.Type(), Err: ErrCannotTravel}
}

// jsonKey renders a map key as a JSON object key.
func jsonKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.Interface {
		if k.IsNil() {
			return "", &EncodeError{Err: errors.New("map key is nil")}
		}
		k = k.Elem()
	}
	switch k.Kind() {
	case reflect.String:
		return k.String(), nil
	case reflect.Bool:
		return strconv.FormatBool(k.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", &EncodeError{Err: fmt.Errorf("map key of type %s: keys must be strings, integers or bools", k.Type())}
}
