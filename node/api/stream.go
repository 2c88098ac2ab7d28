package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// Values are answered as a stream, so memory stays bounded whatever their
// size: a byte string is read from the store and base64-encoded chunk by
// chunk, never held whole; other values are decoded and converted
// (codec.ToJSONValue), then written element by element. Everything that
// can fail (the wait, the task, the conversion) is checked before the
// status is sent, so an error is still an error answer; a failure after
// that (the store cannot be read) cuts the connection short.

// bytesPrefix and bytesSuffix frame a byte string's base64 in DAG-JSON.
const (
	bytesPrefix = `{"/":{"bytes":"`
	bytesSuffix = `"}}`
)

// answerBuffer is the size of the buffer between a streamed answer and the
// connection.
const answerBuffer = 64 << 10

// answerWriters recycles the answers' write buffers: a small call's answer
// would otherwise allocate answerBuffer bytes (BenchmarkCall: 84 KB and
// 150 µs a call with one each, 18 KB and 89 µs before answers streamed).
var answerWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, answerBuffer) }}

// jsonValue is one value ready to stream: a byte string to read from the
// node (ref, size), or a JSON-ready tree.
type jsonValue struct {
	bytes bool
	ref   node.ObjectRef
	size  int64
	tree  any
}

// isByteString reports whether values of type t (nil: dynamic) print as a
// DAG-JSON byte string when their encoding is one.
func isByteString(t reflect.Type) bool {
	return t == nil || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

// prepare waits for ref's value and makes it ready to stream: a byte
// string is only opened (and closed) to learn it exists and its size;
// anything else is decoded into t (nil: dynamic) and converted.
func (s *Server) prepare(ctx context.Context, ref node.ObjectRef, t reflect.Type, opts []node.GetOption) (jsonValue, error) {
	if isByteString(t) {
		rc, size, err := s.n.OpenBytes(ctx, ref, opts...)
		if err == nil {
			rc.Close()
			return jsonValue{bytes: true, ref: ref, size: size}, nil
		}
		if !errors.Is(err, node.ErrNotBytes) {
			return jsonValue{}, err
		}
	}
	v, err := value(ctx, ref, t, opts)
	if err != nil {
		return jsonValue{}, err
	}
	tree, err := codec.ToJSONValue(v)
	if err == nil {
		tree, err = marshalArrays(tree)
	}
	if err != nil {
		return jsonValue{}, &convError{err}
	}
	return jsonValue{tree: tree}, nil
}

// convError is a value that was computed but cannot be shown as JSON.
type convError struct{ err error }

func (e *convError) Error() string { return e.err.Error() }
func (e *convError) Unwrap() error { return e.err }

// marshalArrays replaces the n-dimensional arrays in a JSON-ready tree by
// their JSON, so an element JSON cannot show (NaN) is found before the
// answer starts.
func marshalArrays(v any) (any, error) {
	switch x := v.(type) {
	case codec.Array:
		b, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return json.RawMessage(b), nil
	case []any:
		for i, e := range x {
			m, err := marshalArrays(e)
			if err != nil {
				return nil, err
			}
			x[i] = m
		}
	case map[string]any:
		for k, e := range x {
			m, err := marshalArrays(e)
			if err != nil {
				return nil, err
			}
			x[k] = m
		}
	}
	return v, nil
}

// writeValue streams one prepared value as JSON.
func (s *Server) writeValue(ctx context.Context, w *bufio.Writer, v jsonValue) error {
	if !v.bytes {
		return writeTree(w, v.tree)
	}
	rc, size, err := s.n.OpenBytes(ctx, v.ref)
	if err != nil {
		return fmt.Errorf("open %s: %w", v.ref.CID(), err)
	}
	defer rc.Close()
	if size != v.size {
		return fmt.Errorf("open %s: %d bytes, was %d", v.ref.CID(), size, v.size)
	}
	return writeBytes(w, rc, size)
}

// writeBytes writes size bytes read from r as a DAG-JSON byte string,
// {"/":{"bytes":"<base64, standard alphabet, no padding>"}}, as
// codec.ToJSONValue renders []byte.
func writeBytes(w io.Writer, r io.Reader, size int64) error {
	if _, err := io.WriteString(w, bytesPrefix); err != nil {
		return err
	}
	enc := base64.NewEncoder(base64.RawStdEncoding, w)
	n, err := io.Copy(enc, r)
	if err == nil && n != size {
		err = fmt.Errorf("%w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
	}
	if err != nil {
		return fmt.Errorf("read value: %w", err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, bytesSuffix)
	return err
}

// writeTree writes a JSON-ready tree as encoding/json would (map keys
// sorted, no HTML escaping), lists and maps element by element.
func writeTree(w *bufio.Writer, v any) error {
	switch x := v.(type) {
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := writeTree(w, e); err != nil {
				return err
			}
		}
		return w.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := writeLeaf(w, k); err != nil {
				return err
			}
			w.WriteByte(':')
			if err := writeTree(w, x[k]); err != nil {
				return err
			}
		}
		return w.WriteByte('}')
	case json.RawMessage:
		_, err := w.Write(x)
		return err
	}
	return writeLeaf(w, v)
}

func writeLeaf(w io.Writer, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// prepareResults waits for the refs of a call of fn and prepares their
// values, in the function's result types.
func (s *Server) prepareResults(ctx context.Context, fn *node.Function, refs []node.ObjectRef, opts []node.GetOption) ([]jsonValue, error) {
	out := make([]jsonValue, len(refs))
	for i, r := range refs {
		var t reflect.Type
		if i < len(fn.Results) {
			t = fn.Results[i]
		}
		v, err := s.prepare(ctx, r, t, opts)
		if err != nil {
			var ce *convError
			if errors.As(err, &ce) {
				err = &ResultError{Func: fn.Name, Index: i, Err: ce.err}
			}
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// preparedCall is one call of an answer: its refs, and its prepared
// values when the request waited.
type preparedCall struct {
	refs   []cid.Cid
	values []jsonValue // nil: not waited
}

func cids(refs []node.ObjectRef) []cid.Cid {
	out := make([]cid.Cid, len(refs))
	for i, r := range refs {
		out[i] = r.CID()
	}
	return out
}

// writeCall writes one call as CallResult's JSON: "refs" first, then
// "results" (which Client.CallStream relies on).
func (s *Server) writeCall(ctx context.Context, w *bufio.Writer, c preparedCall) error {
	refs, err := marshal(c.refs)
	if err != nil {
		return err
	}
	w.WriteString(`{"refs":`)
	w.Write(refs)
	if c.values != nil {
		w.WriteString(`,"results":[`)
		for i, v := range c.values {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := s.writeValue(ctx, w, v); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	}
	return w.WriteByte('}')
}

// stream sends a 200 JSON answer written by body. A failure once the
// status is sent aborts the connection, so the client sees a broken
// answer rather than a short one.
func (s *Server) stream(w http.ResponseWriter, body func(*bufio.Writer) error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := answerWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() { // also when the answer is cut short (the panic below)
		bw.Reset(nil)
		answerWriters.Put(bw)
	}()
	err := body(bw)
	if err == nil {
		err = bw.WriteByte('\n')
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.log.Debug("api: answer cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
}
