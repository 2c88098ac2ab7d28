package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// ArgCountError reports a call with the wrong number of arguments. It
// matches node.ErrArgCount.
type ArgCountError struct {
	Func      string // function name
	Signature string // its signature, as Function.Signature renders it
	Want, Got int
}

// Error implements error.
func (e *ArgCountError) Error() string {
	return fmt.Sprintf("%s takes %d argument(s), got %d (usage: %s)", e.Func, e.Want, e.Got, e.Signature)
}

// Is makes errors.Is(err, node.ErrArgCount) true.
func (e *ArgCountError) Is(target error) bool { return target == node.ErrArgCount }

// ArgumentError reports a JSON argument that cannot be used as the
// function's parameter: malformed JSON, a value of the wrong type, or a ref
// the node does not know.
type ArgumentError struct {
	Func  string // function name
	Index int    // 0-based
	Err   error
}

// Error implements error.
func (e *ArgumentError) Error() string {
	return fmt.Sprintf("%s: argument %d: %v", e.Func, e.Index+1, e.Err)
}

// Unwrap returns the cause.
func (e *ArgumentError) Unwrap() error { return e.Err }

// ArgFromJSON converts one JSON argument into a value of the parameter type
// t. A top-level {"/":"<cid>"} is a ref to that object, resolved with
// n.Resolve (locally, else through the swarm), so the call depends on it;
// refs nested deeper become CID links.
func ArgFromJSON(ctx context.Context, n *node.Node, raw []byte, t reflect.Type) (any, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	if c, ok, err := refOf(v); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return n.Resolve(ctx, c)
	}
	rv, err := convert(v, t, "")
	if err != nil {
		return nil, err
	}
	return rv.Interface(), nil
}

// CheckJSON reports whether raw is exactly one JSON value, with the error
// ArgFromJSON would give if not.
func CheckJSON(raw []byte) error {
	_, err := parseJSON(raw)
	return err
}

// parseJSON decodes one JSON value, numbers as json.Number.
func parseJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON %q: %v", raw, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid JSON %q: more than one value (quote the argument)", raw)
	}
	return v, nil
}

// Args converts JSON arguments to fn's parameter types. It returns an
// *ArgCountError or an *ArgumentError. Arguments that are refs
// (node.ObjectRef) hold their objects until released; a call made with
// them holds them itself, so they can be released once it is submitted.
func Args(ctx context.Context, n *node.Node, fn *node.Function, raw []json.RawMessage) ([]any, error) {
	if len(raw) != len(fn.Params) {
		return nil, &ArgCountError{Func: fn.Name, Signature: fn.Signature(), Want: len(fn.Params), Got: len(raw)}
	}
	args := make([]any, len(raw))
	for i, p := range fn.Params {
		v, err := ArgFromJSON(ctx, n, raw[i], p)
		if err != nil {
			releaseArgs(args[:i])
			return nil, &ArgumentError{Func: fn.Name, Index: i, Err: err}
		}
		args[i] = v
	}
	return args, nil
}

// releaseArgs releases the refs among args (see Args).
func releaseArgs(args []any) {
	for _, a := range args {
		if r, ok := a.(node.ObjectRef); ok {
			r.Release()
		}
	}
}

// Call looks name up in n's registry, converts the JSON arguments and
// submits the call, returning the function and one ref per result. Errors
// are a *node.UnknownFunctionError, an *ArgCountError, an *ArgumentError or
// the node's.
func Call(ctx context.Context, n *node.Node, name string, raw []json.RawMessage, opts node.CallOptions) (*node.Function, []node.ObjectRef, error) {
	fn, err := n.Registry().Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	args, err := Args(ctx, n, fn, raw)
	if err != nil {
		return nil, nil, err
	}
	refs, err := n.CallWith(ctx, opts, fn.Name, args...)
	releaseArgs(args) // the task holds its arguments itself
	if err != nil {
		return nil, nil, err
	}
	return fn, refs, nil
}

// ValueJSON waits for ref's value, decodes it into type t (nil: the
// dynamic form, see codec.Unmarshal into any) and returns it converted by
// codec.ToJSONValue, ready for encoding/json.
func ValueJSON(ctx context.Context, ref node.ObjectRef, t reflect.Type, opts ...node.GetOption) (any, error) {
	v, err := value(ctx, ref, t, opts)
	if err != nil {
		return nil, err
	}
	return codec.ToJSONValue(v)
}

// value waits for ref's value and decodes it into t (nil: dynamic).
func value(ctx context.Context, ref node.ObjectRef, t reflect.Type, opts []node.GetOption) (any, error) {
	if t == nil {
		return ref.Get(ctx, opts...)
	}
	p := reflect.New(t)
	if err := ref.GetInto(ctx, p.Interface(), opts...); err != nil {
		return nil, err
	}
	return p.Elem().Interface(), nil
}

// ResultError reports a result that was computed but cannot be shown as
// JSON (a NaN, say).
type ResultError struct {
	Func  string // function name
	Index int    // 0-based
	Err   error
}

// Error implements error.
func (e *ResultError) Error() string {
	return fmt.Sprintf("%s: result %d: %v", e.Func, e.Index+1, e.Err)
}

// Unwrap returns the cause.
func (e *ResultError) Unwrap() error { return e.Err }

// Results waits for the refs of a call of fn and returns their values as
// JSON-ready values, decoded into fn's result types.
func Results(ctx context.Context, fn *node.Function, refs []node.ObjectRef, opts ...node.GetOption) ([]any, error) {
	out := make([]any, len(refs))
	for i, r := range refs {
		var t reflect.Type
		if i < len(fn.Results) {
			t = fn.Results[i]
		}
		v, err := value(ctx, r, t, opts)
		if err != nil {
			return nil, err
		}
		if out[i], err = codec.ToJSONValue(v); err != nil {
			return nil, &ResultError{Func: fn.Name, Index: i, Err: err}
		}
	}
	return out, nil
}

// refOf recognises the DAG-JSON link form {"/":"<cid>"}.
func refOf(v any) (cid.Cid, bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return cid.Undef, false, nil
	}
	s, ok := m["/"].(string)
	if !ok {
		return cid.Undef, false, nil
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, true, fmt.Errorf("bad ref %q: %v", s, err)
	}
	return c, true, nil
}

// bytesOf recognises the DAG-JSON bytes form {"/":{"bytes":"<base64>"}}.
func bytesOf(v any) ([]byte, bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, false, nil
	}
	inner, ok := m["/"].(map[string]any)
	if !ok || len(inner) != 1 {
		return nil, false, nil
	}
	s, ok := inner["bytes"].(string)
	if !ok {
		return nil, false, nil
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true, nil
		}
	}
	return nil, true, fmt.Errorf("bad bytes %q: not base64", s)
}

var (
	bytesType = reflect.TypeFor[[]byte]()
	arrayType = reflect.TypeFor[codec.Array]()
	cidType   = reflect.TypeFor[cid.Cid]()
)

func describe(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	kind := "object"
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		kind = "boolean"
	case json.Number:
		kind = "number"
	case string:
		kind = "string"
	case []any:
		kind = "list"
	}
	return s + " (" + kind + ")"
}

// convert builds a value of type t from decoded JSON v. path names the
// position for error messages.
func convert(v any, t reflect.Type, path string) (reflect.Value, error) {
	bad := func(why string) (reflect.Value, error) {
		at := ""
		if path != "" {
			at = " at " + path
		}
		if why != "" {
			why = ": " + why
		}
		return reflect.Value{}, fmt.Errorf("cannot use %s as %s%s%s", describe(v), t, at, why)
	}
	out := reflect.New(t).Elem()
	switch {
	case t == bytesType:
		if s, ok := v.(string); ok {
			return reflect.ValueOf([]byte(s)), nil
		}
		b, ok, err := bytesOf(v)
		if err != nil || !ok {
			return bad("want a string or {\"/\":{\"bytes\":\"<base64>\"}}")
		}
		return reflect.ValueOf(b), nil
	case t == arrayType:
		const form = `want {"dtype":"float64","shape":[2,2],"data":[1,2,3,4]}`
		if _, ok := v.(map[string]any); !ok {
			return bad(form)
		}
		raw, _ := json.Marshal(v)
		var a codec.Array
		if err := json.Unmarshal(raw, &a); err != nil {
			var jerr *json.UnmarshalTypeError
			if errors.As(err, &jerr) {
				return bad(fmt.Sprintf("field %q has the wrong type; %s", jerr.Field, form))
			}
			return bad(err.Error())
		}
		return reflect.ValueOf(a), nil
	case t == cidType:
		c, ok, err := refOf(v)
		if err != nil || !ok {
			return bad("want {\"/\":\"<cid>\"}")
		}
		return reflect.ValueOf(c), nil
	}
	switch t.Kind() {
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return bad("")
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		num, ok := v.(json.Number)
		if !ok {
			return bad("")
		}
		i, err := parseInt(num)
		if err != nil || out.OverflowInt(i) {
			return bad(fmt.Sprintf("want an integer that fits %s", t))
		}
		out.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		num, ok := v.(json.Number)
		if !ok {
			return bad("")
		}
		i, err := parseInt(num)
		if err != nil || i < 0 || out.OverflowUint(uint64(i)) {
			u, uerr := strconv.ParseUint(string(num), 10, 64)
			if uerr != nil || out.OverflowUint(u) {
				return bad(fmt.Sprintf("want a non-negative integer that fits %s", t))
			}
			i = int64(u)
		}
		out.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		num, ok := v.(json.Number)
		if !ok {
			return bad("")
		}
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil || (t.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32) {
			return bad("out of range")
		}
		out.SetFloat(f)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return bad("")
		}
		out.SetString(s)
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return bad("want a list")
		}
		if t.Kind() == reflect.Array && len(list) != t.Len() {
			return bad(fmt.Sprintf("want %d elements", t.Len()))
		}
		if t.Kind() == reflect.Slice {
			out = reflect.MakeSlice(t, len(list), len(list))
		}
		for i, e := range list {
			ev, err := convert(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return reflect.Value{}, err
			}
			out.Index(i).Set(ev)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("want an object")
		}
		out = reflect.MakeMapWithSize(t, len(m))
		for k, e := range m {
			kv, err := convert(keyValue(k, t.Key()), t.Key(), path+"."+k)
			if err != nil {
				return reflect.Value{}, err
			}
			ev, err := convert(e, t.Elem(), path+"."+k)
			if err != nil {
				return reflect.Value{}, err
			}
			out.SetMapIndex(kv, ev)
		}
	case reflect.Pointer:
		if v == nil {
			return out, nil
		}
		ev, err := convert(v, t.Elem(), path)
		if err != nil {
			return reflect.Value{}, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(ev)
		return p, nil
	case reflect.Interface:
		dv, err := dynamic(v)
		if err != nil {
			return bad(err.Error())
		}
		if dv == nil {
			return out, nil
		}
		out.Set(reflect.ValueOf(dv))
	case reflect.Struct:
		// Registered structs: their fields by JSON name.
		raw, _ := json.Marshal(v)
		p := reflect.New(t)
		if err := json.Unmarshal(raw, p.Interface()); err != nil {
			return bad(err.Error())
		}
		return p.Elem(), nil
	default:
		return bad("unsupported parameter type")
	}
	return out, nil
}

// parseInt reads an integer written as an integer ("1000") or as an
// integral number in another form ("1e3", "1000.0") that float64 holds
// exactly.
func parseInt(num json.Number) (int64, error) {
	if i, err := strconv.ParseInt(string(num), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("not an integer: %s", num)
	}
	return int64(f), nil
}

// keyValue turns an object key into JSON-decoded form for a key type.
func keyValue(k string, t reflect.Type) any {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return json.Number(k)
	case reflect.Bool:
		b, err := strconv.ParseBool(k)
		if err != nil {
			return k
		}
		return b
	}
	return k
}

// dynamic converts decoded JSON into the values an `any` parameter gets:
// integers become int64, other numbers float64, links cid.Cid, bytes []byte.
func dynamic(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(string(x), 64)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			d, err := dynamic(e)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	case map[string]any:
		if c, ok, err := refOf(x); ok || err != nil {
			return c, err
		}
		if b, ok, err := bytesOf(x); ok || err != nil {
			return b, err
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			d, err := dynamic(e)
			if err != nil {
				return nil, err
			}
			out[k] = d
		}
		return out, nil
	}
	return v, nil
}
