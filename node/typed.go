package node

import (
	"context"
	"reflect"

	"github.com/dray-project/dray/codec"
)

// Arg is an argument of type T to a typed remote function: either a value
// (Val) or a Ref[T] to one, which makes the task wait for it.
type Arg[T any] interface {
	callArg() any
}

type valArg[T any] struct{ v T }

func (a valArg[T]) callArg() any { return a.v }

// Val wraps a plain value as an argument.
func Val[T any](v T) Arg[T] { return valArg[T]{v} }

func decodeArg[T any](args [][]byte, i int) (T, error) {
	var v T
	if err := codec.Unmarshal(args[i], &v); err != nil {
		return v, &ArgumentError{Index: i, Want: reflect.TypeFor[T](), Err: err}
	}
	return v, nil
}

func typed(name string, params []reflect.Type, result reflect.Type, inv invoker) *Function {
	return &Function{Name: name, Params: params, Results: []reflect.Type{result}, invoke: inv, MaxRetries: -1}
}

// Func0 is a registered remote function with no arguments and one result.
type Func0[R any] struct{ name string }

// Func1 is a registered remote function with one argument and one result.
type Func1[A, R any] struct{ name string }

// Func2 is a registered remote function with two arguments and one result.
type Func2[A, B, R any] struct{ name string }

// Func3 is a registered remote function with three arguments and one result.
type Func3[A, B, C, R any] struct{ name string }

// Register0 registers fn under name in r and returns a typed handle to call it.
func Register0[R any](r *Registry, name string, fn func(context.Context) (R, error), opts ...FuncOption) (Func0[R], error) {
	f := typed(name, nil, reflect.TypeFor[R](), func(ctx context.Context, args [][]byte) ([]any, error) {
		res, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		return []any{res}, nil
	})
	return Func0[R]{name}, r.add(f, opts)
}

// Register1 registers fn under name in r and returns a typed handle to call it.
func Register1[A, R any](r *Registry, name string, fn func(context.Context, A) (R, error), opts ...FuncOption) (Func1[A, R], error) {
	f := typed(name, []reflect.Type{reflect.TypeFor[A]()}, reflect.TypeFor[R](), func(ctx context.Context, args [][]byte) ([]any, error) {
		a, err := decodeArg[A](args, 0)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a)
		if err != nil {
			return nil, err
		}
		return []any{res}, nil
	})
	return Func1[A, R]{name}, r.add(f, opts)
}

// Register2 registers fn under name in r and returns a typed handle to call it.
func Register2[A, B, R any](r *Registry, name string, fn func(context.Context, A, B) (R, error), opts ...FuncOption) (Func2[A, B, R], error) {
	f := typed(name, []reflect.Type{reflect.TypeFor[A](), reflect.TypeFor[B]()}, reflect.TypeFor[R](), func(ctx context.Context, args [][]byte) ([]any, error) {
		a, err := decodeArg[A](args, 0)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg[B](args, 1)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b)
		if err != nil {
			return nil, err
		}
		return []any{res}, nil
	})
	return Func2[A, B, R]{name}, r.add(f, opts)
}

// Register3 registers fn under name in r and returns a typed handle to call it.
func Register3[A, B, C, R any](r *Registry, name string, fn func(context.Context, A, B, C) (R, error), opts ...FuncOption) (Func3[A, B, C, R], error) {
	f := typed(name, []reflect.Type{reflect.TypeFor[A](), reflect.TypeFor[B](), reflect.TypeFor[C]()}, reflect.TypeFor[R](), func(ctx context.Context, args [][]byte) ([]any, error) {
		a, err := decodeArg[A](args, 0)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg[B](args, 1)
		if err != nil {
			return nil, err
		}
		c, err := decodeArg[C](args, 2)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b, c)
		if err != nil {
			return nil, err
		}
		return []any{res}, nil
	})
	return Func3[A, B, C, R]{name}, r.add(f, opts)
}

// Name returns the name the function is registered under.
func (f Func0[R]) Name() string { return f.name }

// Name returns the name the function is registered under.
func (f Func1[A, R]) Name() string { return f.name }

// Name returns the name the function is registered under.
func (f Func2[A, B, R]) Name() string { return f.name }

// Name returns the name the function is registered under.
func (f Func3[A, B, C, R]) Name() string { return f.name }

// Call submits the function on n and returns the ref of its result at once.
func (f Func0[R]) Call(ctx context.Context, n *Node) (Ref[R], error) {
	return call1[R](ctx, n, f.name)
}

// Call submits the function on n and returns the ref of its result at once.
func (f Func1[A, R]) Call(ctx context.Context, n *Node, a Arg[A]) (Ref[R], error) {
	return call1[R](ctx, n, f.name, a.callArg())
}

// Call submits the function on n and returns the ref of its result at once.
func (f Func2[A, B, R]) Call(ctx context.Context, n *Node, a Arg[A], b Arg[B]) (Ref[R], error) {
	return call1[R](ctx, n, f.name, a.callArg(), b.callArg())
}

// Call submits the function on n and returns the ref of its result at once.
func (f Func3[A, B, C, R]) Call(ctx context.Context, n *Node, a Arg[A], b Arg[B], c Arg[C]) (Ref[R], error) {
	return call1[R](ctx, n, f.name, a.callArg(), b.callArg(), c.callArg())
}

func call1[R any](ctx context.Context, n *Node, name string, args ...any) (Ref[R], error) {
	refs, err := n.call(ctx, name, args, true)
	if err != nil {
		return Ref[R]{}, err
	}
	return Ref[R]{refs[0]}, nil
}
