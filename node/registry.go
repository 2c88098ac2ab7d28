package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// ErrUnknownFunction is matched (errors.Is) by every *UnknownFunctionError.
var ErrUnknownFunction = errors.New("node: unknown function")

// UnknownFunctionError reports a call to a name no function is registered
// under, with the closest registered names.
type UnknownFunctionError struct {
	Name        string
	Suggestions []string
}

func (e *UnknownFunctionError) Error() string {
	msg := fmt.Sprintf("node: unknown function %q", e.Name)
	if len(e.Suggestions) > 0 {
		msg += " (did you mean " + strings.Join(e.Suggestions, ", ") + "?)"
	} else {
		msg += " (run `dray functions` to list them)"
	}
	return msg
}

// Is makes errors.Is(err, ErrUnknownFunction) true.
func (e *UnknownFunctionError) Is(target error) bool { return target == ErrUnknownFunction }

// invoker runs a function on encoded arguments and returns its results.
type invoker func(ctx context.Context, args [][]byte) ([]any, error)

// Function describes a registered remote function.
type Function struct {
	// Name is the name it is called by.
	Name string
	// Params are the types of its arguments (without a leading
	// context.Context).
	Params []reflect.Type
	// Results are the types of its results (without a trailing error).
	Results []reflect.Type
	// Deterministic functions give equal results for equal arguments: calls
	// with equal arguments share one task and are answered from the store.
	Deterministic bool
	// Doc is a one-line description shown by `dray functions`.
	Doc string
	// MaxRetries, when not negative, replaces the node's MaxRetries for
	// calls of this function (see Config.MaxRetries).
	MaxRetries int
	// RetryErrors: calls are run again, up to their MaxRetries, when the
	// function itself fails (see RetryErrors).
	RetryErrors bool
	// Version is part of the function's identity (see Version).
	Version string
	// Needs are the resources each call needs where it runs (see Needs).
	Needs map[string]int

	invoke invoker
	id     sched.FuncID
	// remote: known from another peer's table only (FuncInfo): it never
	// runs here, and its types are codec names (paramNames).
	remote     bool
	paramNames []string
}

// ID is the function's identity — its name, the codec names of its
// parameter and result types, and its version — as the hash that task
// specs carry and peers advertise: peers place a task only where a
// function of the same ID is registered.
func (f *Function) ID() sched.FuncID { return f.id }

// identity hashes f's identity (see ID).
func (f *Function) identity() sched.FuncID {
	h := sha256.New()
	fmt.Fprintf(h, "dray.func/1\n%s\n%s", f.Signature(), f.Version)
	id := sched.FuncID(binary.BigEndian.Uint64(h.Sum(nil)))
	if id == 0 {
		id = 1 // 0 means any function to the scheduler
	}
	return id
}

// info describes f for other peers' tables.
func (f *Function) info() wire.FuncInfo {
	fi := wire.FuncInfo{ID: uint64(f.id), Name: f.Name, Version: f.Version, Deterministic: f.Deterministic, Doc: f.Doc}
	for _, p := range f.Params {
		fi.Params = append(fi.Params, typeName(p))
	}
	for _, r := range f.Results {
		fi.Results = append(fi.Results, typeName(r))
	}
	return fi
}

// Signature renders the function as "name(int, int) int", with its
// version if it has one: "name(int) int v2".
func (f *Function) Signature() string {
	fi := f.info()
	return signature(fi.Name, fi.Params, fi.Results, fi.Version)
}

// signature renders a function from the codec names of its types.
func signature(name string, params, results []string, version string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	b.WriteString(strings.Join(params, ", "))
	b.WriteByte(')')
	switch len(results) {
	case 0:
	case 1:
		b.WriteString(" " + results[0])
	default:
		b.WriteString(" (" + strings.Join(results, ", ") + ")")
	}
	if version != "" {
		b.WriteString(" v" + version)
	}
	return b.String()
}

func typeName(t reflect.Type) string {
	if name, ok := codec.RegisteredName(t); ok {
		return name
	}
	switch t {
	case reflect.TypeFor[any]():
		return "any"
	case reflect.TypeFor[[]byte]():
		return "bytes"
	case reflect.TypeFor[codec.Array]():
		return "ndarray"
	}
	return t.String()
}

// FuncOption changes how a function is registered.
type FuncOption func(*Function)

// Deterministic declares that equal arguments give equal results, so equal
// calls share a task CID and repeated calls are answered without running.
func Deterministic() FuncOption { return func(f *Function) { f.Deterministic = true } }

// MaxRetries sets how many times a call of the function is placed again
// when its executor is lost (see Config.MaxRetries).
func MaxRetries(n int) FuncOption { return func(f *Function) { f.MaxRetries = max(n, 0) } }

// RetryErrors makes the function's own failures (a returned error, a
// panic) retried like lost executors, up to the call's MaxRetries, as
// Ray's retry_exceptions. Use it for functions whose failures are
// transient (a flaky service, a file not there yet).
func RetryErrors() FuncOption { return func(f *Function) { f.RetryErrors = true } }

// Version sets the function's version, part of its identity: peers with
// another version of a function of the same name and signature run none
// of this one's calls (and refuse them, saying so).
func Version(v string) FuncOption { return func(f *Function) { f.Version = v } }

// Needs makes every call of the function need n of the resource name
// where it runs (Config.Resources): it runs only on peers that have it,
// while it is free there, as Ray's custom resources.
func Needs(name string, n int) FuncOption {
	return func(f *Function) {
		if f.Needs == nil {
			f.Needs = make(map[string]int)
		}
		f.Needs[name] = n
	}
}

// Doc attaches a one-line description.
func Doc(s string) FuncOption { return func(f *Function) { f.Doc = s } }

// Registry holds remote functions by name. Every peer must register the
// same functions before its node starts. It is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]*Function
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{funcs: make(map[string]*Function)} }

var defaultRegistry = NewRegistry()

// Default returns the process-wide registry used when Config.Functions is nil.
func Default() *Registry { return defaultRegistry }

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// Register adds fn under name, through reflection. fn must be a function;
// it may take a context.Context first and may return an error last; every
// other parameter and result must be a type that can travel (see codec).
func (r *Registry) Register(name string, fn any, opts ...FuncOption) error {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return fmt.Errorf("node: register %q: %T is not a function", name, fn)
	}
	t := v.Type()
	if t.IsVariadic() {
		return fmt.Errorf("node: register %q: variadic functions are not supported (take a slice instead)", name)
	}
	withCtx := t.NumIn() > 0 && t.In(0) == ctxType
	withErr := t.NumOut() > 0 && t.Out(t.NumOut()-1) == errType
	f := &Function{Name: name, MaxRetries: -1}
	for i := 0; i < t.NumIn(); i++ {
		if i == 0 && withCtx {
			continue
		}
		f.Params = append(f.Params, t.In(i))
	}
	for i := 0; i < t.NumOut(); i++ {
		if i == t.NumOut()-1 && withErr {
			continue
		}
		f.Results = append(f.Results, t.Out(i))
	}
	params := f.Params
	f.invoke = func(ctx context.Context, args [][]byte) ([]any, error) {
		in := make([]reflect.Value, 0, len(args)+1)
		if withCtx {
			in = append(in, reflect.ValueOf(ctx))
		}
		for i, raw := range args {
			p := reflect.New(params[i])
			if err := codec.Unmarshal(raw, p.Interface()); err != nil {
				return nil, &ArgumentError{Index: i, Want: params[i], Err: err}
			}
			in = append(in, p.Elem())
		}
		out := v.Call(in)
		if withErr {
			if e := out[len(out)-1]; !e.IsNil() {
				return nil, e.Interface().(error)
			}
			out = out[:len(out)-1]
		}
		res := make([]any, len(out))
		for i, o := range out {
			res[i] = o.Interface()
		}
		return res, nil
	}
	return r.add(f, opts)
}

// MustRegister is Register for package initialisation: it panics on error.
func (r *Registry) MustRegister(name string, fn any, opts ...FuncOption) {
	if err := r.Register(name, fn, opts...); err != nil {
		panic(err)
	}
}

func (r *Registry) add(f *Function, opts []FuncOption) error {
	if err := validName(f.Name); err != nil {
		return err
	}
	for _, o := range opts {
		o(f)
	}
	f.id = f.identity()
	for i, p := range f.Params {
		if err := codec.CheckType(p); err != nil {
			return fmt.Errorf("node: register %q: parameter %d: %w", f.Name, i+1, err)
		}
	}
	for i, p := range f.Results {
		if err := codec.CheckType(p); err != nil {
			return fmt.Errorf("node: register %q: result %d: %w", f.Name, i+1, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.funcs[f.Name]; ok {
		return fmt.Errorf("node: register %q: a function is already registered under that name", f.Name)
	}
	r.funcs[f.Name] = f
	return nil
}

func validName(name string) error {
	if name == "" {
		return errors.New("node: register: empty function name")
	}
	for _, c := range name {
		ok := c == '.' || c == '_' || c == '-' || c == '/' ||
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("node: register %q: names may hold letters, digits and . _ - / only", name)
		}
	}
	return nil
}

// Lookup returns the function registered under name, or an
// *UnknownFunctionError that lists close matches.
func (r *Registry) Lookup(name string) (*Function, error) {
	r.mu.RLock()
	f, ok := r.funcs[name]
	r.mu.RUnlock()
	if ok {
		return f, nil
	}
	return nil, &UnknownFunctionError{Name: name, Suggestions: r.closest(name)}
}

// closest returns registered names within a small edit distance of name,
// nearest first, or sharing its prefix.
func (r *Registry) closest(name string) []string {
	var names []string
	for _, f := range r.Functions() {
		names = append(names, f.Name)
	}
	return closestNames(name, names)
}

// Functions lists the registered functions sorted by name.
func (r *Registry) Functions() []*Function {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fs := make([]*Function, 0, len(r.funcs))
	for _, f := range r.funcs {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *Function) int { return strings.Compare(a.Name, b.Name) })
	return fs
}

// tableDigest is the digest of r's table.
func tableDigest(r *Registry) uint64 {
	t, _ := r.table()
	return t.Digest
}

// table fixes each function's identity — a type registered with codec
// after the function counts by its codec name from now on — and returns
// the registry as other peers see it: its functions and their IDs, and
// the table's digest, which beacons carry.
func (r *Registry) table() (wire.Table, []sched.FuncID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.funcs))
	for name := range r.funcs {
		names = append(names, name)
	}
	slices.Sort(names)
	var t wire.Table
	ids := make([]sched.FuncID, 0, len(names))
	h := sha256.New()
	h.Write([]byte("dray.table/1"))
	for _, name := range names {
		f := r.funcs[name]
		if !f.remote {
			f.id = f.identity()
		}
		t.Funcs = append(t.Funcs, f.info())
		ids = append(ids, f.id)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(f.id))
		h.Write(b[:])
	}
	t.Digest = binary.BigEndian.Uint64(h.Sum(nil))
	if t.Digest == 0 {
		t.Digest = 1
	}
	return t, ids
}

// withResources mixes a peer's resources into its table digest, so peers
// with the same functions and other resources fetch each other's tables.
func withResources(digest uint64, res map[string]int) uint64 {
	if len(res) == 0 {
		return digest
	}
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], digest)
	h.Write(b[:])
	for _, name := range names {
		fmt.Fprintf(h, "%s=%d;", name, res[name])
	}
	if d := binary.BigEndian.Uint64(h.Sum(nil)); d != 0 {
		return d
	}
	return 1
}
